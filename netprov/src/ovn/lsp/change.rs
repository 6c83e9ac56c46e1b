//! One change to NB (or the wait for the chassis), as the plan and `check` show it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::LspSpec;
use crate::model::IfName;
use crate::ovsdb::port::display;

/// One change to NB (or the wait for the chassis).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OvnChange {
    /// Insert the Logical_Switch_Port and add it to its switch, in one transaction.
    Create {
        spec: LspSpec,
        options: BTreeMap<String, String>,
    },
    /// Set addresses, port_security, options of a port netprov owns, in place.
    Update {
        name: String,
        uuid: String,
        what: String,
        addresses: Vec<String>,
        port_security: Vec<String>,
        options: BTreeMap<String, String>,
    },
    /// Remove a port netprov owns from its switch and delete it.
    Remove { name: String, uuid: String },
    /// Wait until ovn-controller reports the OVS interface `ovs_port` installed.
    WaitInstalled {
        name: String,
        #[serde(serialize_with = "display")]
        ovs_port: IfName,
    },
}

impl std::fmt::Display for OvnChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OvnChange::Create { spec, .. } => write!(
                f,
                "create OVN logical switch port {} on switch {} (addresses {:?})",
                spec.name, spec.switch, spec.addresses
            ),
            OvnChange::Update { name, what, .. } => {
                write!(f, "update OVN logical switch port {name}: {what}")
            }
            OvnChange::Remove { name, .. } => write!(f, "remove OVN logical switch port {name}"),
            OvnChange::WaitInstalled { name, ovs_port } => write!(
                f,
                "wait for ovn-controller to install OVN port {name} (OVS interface {ovs_port})"
            ),
        }
    }
}

impl OvnChange {
    /// The change read as drift (object, problem).
    pub fn as_drift(&self) -> (String, String) {
        match self {
            OvnChange::Create { spec, .. } => (
                format!("OVN logical switch port {}", spec.name),
                format!("missing on switch {}", spec.switch),
            ),
            OvnChange::Update { name, what, .. } => {
                (format!("OVN logical switch port {name}"), what.clone())
            }
            OvnChange::Remove { name, .. } => (
                format!("OVN logical switch port {name}"),
                "is netprov's but not in the props".into(),
            ),
            OvnChange::WaitInstalled { name, ovs_port } => (
                format!("OVN port {name} (OVS interface {ovs_port})"),
                "not installed by ovn-controller (no external_ids:ovn-installed=true)".into(),
            ),
        }
    }
}
