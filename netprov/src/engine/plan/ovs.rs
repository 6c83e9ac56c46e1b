//! OVS port and OVN logical port steps: the changes are the OVSDB layers' own types;
//! here they get their phase and read as drift.

use std::fmt;

use serde::Serialize;

use crate::engine::drift::{Drift, Object};
use crate::engine::plan::Phase;
use crate::ovn::OvnChange;
use crate::ovsdb::port::show_tag;
use crate::ovsdb::OvsChange;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OvsStep {
    /// One change to the container's OVS ports (all of a plan's run as one OVSDB
    /// transaction, then waited for until ovs-vswitchd applied them).
    OvsPort { change: OvsChange },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OvnStep {
    /// One change to the container's OVN logical switch ports, or a wait for one.
    OvnPort { change: OvnChange },
}

impl OvsStep {
    pub fn change(&self) -> &OvsChange {
        let OvsStep::OvsPort { change } = self;
        change
    }

    pub fn phase(&self) -> Phase {
        match self.change() {
            OvsChange::Remove { .. } => Phase::OvsRemovals,
            _ => Phase::OvsPorts,
        }
    }

    /// An OVS change read as a difference.
    pub fn as_drift(&self) -> Drift {
        let port = |p: &dyn fmt::Display| format!("OVS port {p}");
        match self.change() {
            OvsChange::Create { spec } => Drift::missing(
                Object::OvsPort,
                format!("OVS port {} on bridge {}", spec.port, spec.bridge),
            ),
            OvsChange::Recreate { spec, reason, .. } => Drift::differs(
                Object::OvsPort,
                format!("OVS port {} on bridge {}", spec.port, spec.bridge),
                format!("broken: {reason}"),
            ),
            OvsChange::SetVlan {
                port: p, from, to, ..
            } => Drift::differs(
                Object::OvsPort,
                port(p),
                format!("VLAN is {}, want {}", show_tag(from), show_tag(to)),
            ),
            OvsChange::SetTrunks {
                port: p, from, to, ..
            } => Drift::differs(
                Object::OvsPort,
                port(p),
                format!("trunks are {from:?}, want {to:?}"),
            ),
            OvsChange::SetVlanMode {
                port: p, from, to, ..
            } => Drift::differs(
                Object::OvsPort,
                port(p),
                format!(
                    "vlan_mode is {}, want {}",
                    from.as_deref().unwrap_or("default"),
                    to.as_deref().unwrap_or("default")
                ),
            ),
            OvsChange::SetExternalIds {
                port: p, from, to, ..
            } => Drift::differs(
                Object::OvsInterface,
                format!("OVS interface {p}"),
                format!("external_ids are {from:?}, want {to:?}"),
            ),
            OvsChange::Remove { port: p, .. } => Drift::extra(
                Object::OvsPort,
                port(p),
                "is netprov's for this container but not in the props",
            ),
        }
    }
}

impl OvnStep {
    pub fn change(&self) -> &OvnChange {
        let OvnStep::OvnPort { change } = self;
        change
    }

    pub fn phase(&self) -> Phase {
        Phase::Ovn
    }

    /// The OVN layer's words, with the kind of difference.
    pub fn as_drift(&self) -> Drift {
        let (label, how) = self.change().as_drift();
        let problem = match self.change() {
            OvnChange::Create { .. } => crate::engine::drift::Problem::Missing,
            OvnChange::Remove { .. } => crate::engine::drift::Problem::Extra,
            OvnChange::Update { .. } | OvnChange::WaitInstalled { .. } => {
                crate::engine::drift::Problem::Differs
            }
        };
        Drift {
            object: Object::OvnPort,
            problem,
            label,
            how: Some(how),
        }
    }
}

impl fmt::Display for OvsStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.change())
    }
}

impl fmt::Display for OvnStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.change())
    }
}
