//! The plan: the ordered changes that make the kernel match a `Desired`, computed by
//! [`crate::engine::diff`] from what [`crate::engine::observe`] saw. An empty plan means "in sync".
//!
//! Steps are ordered by [`Phase`]. Two phases are slots for other layers: OVS port
//! steps (after the host-side links, before anything is moved into the container) and
//! nftables steps (last, once every interface exists).
//!
//! Each kind of object has its own step type in `plan/<kind>.rs`, which holds all
//! there is to say about it: its phase, its sentence and how it reads as drift.

mod address;
#[cfg(test)]
mod every_kind;
mod link;
mod netns;
mod nft;
mod ovs;
mod route;
mod sysctl;

pub use address::AddressStep;
pub use link::{LinkStep, MoveKind};
pub use netns::NetnsStep;
pub use nft::{NftStep, RulesetReason};
pub use ovs::{OvnStep, OvsStep};
pub use route::RouteStep;
pub use sysctl::SysctlStep;

use std::fmt;

use serde::{Serialize, Serializer};

pub use crate::engine::drift::Drift;
use crate::model::ContainerId;

/// The order steps run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Netns,
    /// OVS ports the container no longer wants, before any link is made: removing an
    /// internal port deletes its device (also inside the container), which frees the
    /// name for the veth that replaces it when the port style changes (a kernel-datapath
    /// internal device cannot be deleted over netlink).
    OvsRemovals,
    HostLinks,
    /// Slot: "ensure OVS port" steps (the OVSDB layer) go here, so an OVS internal
    /// device exists before the container-link phase moves it.
    OvsPorts,
    ContainerLinks,
    LinkState,
    Addresses,
    Routes,
    Sysctls,
    /// Slot: nftables steps (container ruleset, host rules).
    Nft,
    /// OVN logical switch ports in the Northbound database, then the waits for
    /// ovn-controller to install them: last, once the port is up (docs/ovn.md).
    Ovn,
}

/// Where a step acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    Host,
    /// The container netns, by container id.
    Netns(ContainerId),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Host => f.write_str("host netns"),
            At::Netns(id) => write!(f, "netns {id}"),
        }
    }
}

impl Serialize for At {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            At::Host => s.serialize_str("host"),
            At::Netns(id) => s.collect_str(id),
        }
    }
}

/// Defines [`Step`] with one variant per kind and dispatches each concern (phase,
/// sentence, drift) to the kind's own step type.
macro_rules! steps {
    ($($kind:ident($t:ty)),* $(,)?) => {
        /// One change. Each kind of object has its own step type, with its phase, its
        /// sentence (Display: the operation named in any error) and its reading as
        /// drift; the JSON of `plan --json` is the inner step's (`{"op": ..., ...}`).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(untagged)]
        pub enum Step {
            $($kind($t)),*
        }

        $(impl From<$t> for Step {
            fn from(s: $t) -> Self {
                Step::$kind(s)
            }
        })*

        impl Step {
            /// The phase the step runs in.
            pub fn phase(&self) -> Phase {
                match self {
                    $(Step::$kind(k) => k.phase()),*
                }
            }

            /// The same step read as a difference between the kernel and the desired
            /// state.
            pub fn as_drift(&self) -> Drift {
                match self {
                    $(Step::$kind(k) => k.as_drift()),*
                }
            }
        }

        impl fmt::Display for Step {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Step::$kind(k) => k.fmt(f)),*
                }
            }
        }
    };
}

steps!(
    Netns(NetnsStep),
    Link(LinkStep),
    Address(AddressStep),
    Route(RouteStep),
    Sysctl(SysctlStep),
    Ovs(OvsStep),
    Ovn(OvnStep),
    Nft(NftStep),
);

/// The ordered steps for one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    #[serde(serialize_with = "crate::ser::display")]
    pub id: ContainerId,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return writeln!(f, "{}: in sync, nothing to do", self.id);
        }
        for (n, s) in self.steps.iter().enumerate() {
            writeln!(f, "{}: {:>2}. {s}", self.id, n + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::route::RouteSpec;
    use crate::model::IfName;

    fn web() -> ContainerId {
        ContainerId::new("web").unwrap()
    }

    fn name(s: &str) -> IfName {
        IfName::new(s).unwrap()
    }

    #[test]
    fn steps_read_as_sentences() {
        let s = Step::from(AddressStep::AddAddress {
            at: At::Netns(web()),
            link: name("lan"),
            addr: "10.0.0.2/31".parse().unwrap(),
        });
        assert_eq!(s.to_string(), "add address 10.0.0.2/31 to lan in netns web");
        let v = Step::from(LinkStep::CreateVeth {
            host: name("ve-web-lan"),
            peer: name("lan"),
            netns: web(),
            host_alias: "netprov:web:lan".into(),
            peer_alias: "netprov:web".into(),
            mtu: None,
            mac: None,
        });
        assert_eq!(
            v.to_string(),
            "create veth ve-web-lan (host) ↔ lan (netns web)"
        );
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["op"], "add_address");
        assert_eq!(j["addr"], "10.0.0.2/31");
    }

    #[test]
    fn drift_reads_as_object_and_problem() {
        let s = Step::from(RouteStep::ReplaceRoute {
            at: At::Netns(web()),
            route: RouteSpec {
                dest: "0.0.0.0/0".parse().unwrap(),
                gateway: Some("70.0.0.1".parse().unwrap()),
                dev: None,
                metric: 0,
            },
            was: Some(RouteSpec {
                dest: "0.0.0.0/0".parse().unwrap(),
                gateway: Some("10.1.0.1".parse().unwrap()),
                dev: Some("lan".into()),
                metric: 0,
            }),
        });
        assert_eq!(
            s.as_drift().to_string(),
            "route default via 10.1.0.1 dev lan in netns web: changed, want default via 70.0.0.1"
        );
    }
}
