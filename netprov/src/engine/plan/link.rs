//! Link steps: veth pairs, macvlans, links moved in, their marks and state.

use std::fmt;

use serde::Serialize;

use crate::engine::drift::{Drift, Object};
use crate::engine::plan::{At, Phase};
use crate::model::{ContainerId, IfName, MacAddr};

/// Why a link is moved into the container netns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveKind {
    /// An OVS internal port (created by OVS in the host netns); netprov marks it.
    OvsInternal,
    /// A link netprov does not own (`InterfaceKind::Existing`); not marked.
    Existing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LinkStep {
    /// A veth pair: `host` in the host netns, `peer` created directly in the container
    /// netns; both ends born in the netprov group, then aliased.
    CreateVeth {
        #[serde(serialize_with = "crate::ser::display")]
        host: IfName,
        #[serde(serialize_with = "crate::ser::display")]
        peer: IfName,
        #[serde(serialize_with = "crate::ser::display")]
        netns: ContainerId,
        host_alias: String,
        peer_alias: String,
        mtu: Option<u32>,
        #[serde(serialize_with = "crate::ser::opt_display")]
        mac: Option<MacAddr>,
    },
    /// Delete the surviving half of a netprov-owned link whose other half is gone.
    DeleteLink {
        at: At,
        #[serde(serialize_with = "crate::ser::display")]
        link: IfName,
    },
    /// Delete a link netprov made for this container that the props no longer want as
    /// it is: not named any more (interface renamed or removed, macvlan dropped) or of
    /// another kind or parent than wanted. Links on top of it go with it. `link` is any
    /// name the kernel reports (a link the props no longer name), hence not an `IfName`.
    RemoveLink { at: At, link: String },
    /// Detach a veth host end from the Linux bridge it is a port of (the props name
    /// no `hostBridge` any more).
    Release {
        #[serde(serialize_with = "crate::ser::display")]
        link: IfName,
    },
    /// Delete the container's copy of an OVS internal device that ovs-vswitchd no longer
    /// drives (it restarted and made a new device in the host netns, moved in next).
    DeleteDeadOvsDevice {
        #[serde(serialize_with = "crate::ser::display")]
        netns: ContainerId,
        #[serde(serialize_with = "crate::ser::display")]
        link: IfName,
    },
    /// Set the ownership alias on a netprov-created link (finishing an interrupted run).
    /// `link` may be `lo` (the owner mark of a netns), which no `IfName` is.
    MarkLink { at: At, link: String, alias: String },
    MoveLinkIn {
        #[serde(serialize_with = "crate::ser::display")]
        link: IfName,
        #[serde(serialize_with = "crate::ser::display")]
        netns: ContainerId,
        kind: MoveKind,
        alias: Option<String>,
    },
    CreateMacvlan {
        #[serde(serialize_with = "crate::ser::display")]
        link: IfName,
        #[serde(serialize_with = "crate::ser::display")]
        parent: IfName,
        #[serde(serialize_with = "crate::ser::display")]
        netns: ContainerId,
        alias: String,
        #[serde(serialize_with = "crate::ser::opt_display")]
        mac: Option<MacAddr>,
    },
    SetLink {
        at: At,
        #[serde(serialize_with = "crate::ser::display")]
        link: IfName,
        mtu: Option<u32>,
        #[serde(serialize_with = "crate::ser::opt_display")]
        mac: Option<MacAddr>,
    },
    Enslave {
        #[serde(serialize_with = "crate::ser::display")]
        link: IfName,
        #[serde(serialize_with = "crate::ser::display")]
        bridge: IfName,
    },
    /// `link` may be `lo`, which no `IfName` is.
    LinkUp { at: At, link: String },
}

impl LinkStep {
    /// Whether the step may leave a name naming another index, or none: a link
    /// deleted (with its peer or the links on top of it) or moved between netns. Making
    /// a link adds a name; settings, marks and ports leave indexes as they are.
    pub fn changes_indexes(&self) -> bool {
        match self {
            LinkStep::DeleteLink { .. }
            | LinkStep::RemoveLink { .. }
            | LinkStep::DeleteDeadOvsDevice { .. }
            | LinkStep::MoveLinkIn { .. } => true,
            LinkStep::CreateVeth { .. }
            | LinkStep::CreateMacvlan { .. }
            | LinkStep::Release { .. }
            | LinkStep::MarkLink { .. }
            | LinkStep::SetLink { .. }
            | LinkStep::Enslave { .. }
            | LinkStep::LinkUp { .. } => false,
        }
    }
}

/// " mtu M mac X", for what is set.
fn mtu_mac(f: &mut fmt::Formatter<'_>, mtu: &Option<u32>, mac: &Option<MacAddr>) -> fmt::Result {
    if let Some(m) = mtu {
        write!(f, " mtu {m}")?;
    }
    if let Some(m) = mac {
        write!(f, " mac {m}")?;
    }
    Ok(())
}

impl LinkStep {
    pub fn phase(&self) -> Phase {
        match self {
            LinkStep::MoveLinkIn { .. } | LinkStep::CreateMacvlan { .. } => Phase::ContainerLinks,
            // After moves: a link moved in by this plan gets its MTU/MAC in its new netns.
            LinkStep::SetLink { .. } | LinkStep::LinkUp { .. } => Phase::LinkState,
            _ => Phase::HostLinks,
        }
    }

    pub fn as_drift(&self) -> Drift {
        use Object::Link;
        match self {
            LinkStep::CreateVeth {
                host, peer, netns, ..
            } => Drift::missing(
                Object::Veth,
                format!("veth {host} (host) ↔ {peer} (netns {netns})"),
            ),
            LinkStep::DeleteLink { at, link } => Drift::extra(
                Link,
                format!("link {link} in {at}"),
                "is half of a netprov veth pair whose other end is gone",
            ),
            LinkStep::RemoveLink { at, link } => Drift::extra(
                Link,
                format!("link {link} in {at}"),
                "is netprov's but not wanted as it is (not in the props, or of another kind)",
            ),
            LinkStep::Release { link } => Drift::differs(
                Link,
                format!("link {link} in host netns"),
                "is a bridge port, the props want none",
            ),
            LinkStep::DeleteDeadOvsDevice { netns, link } => Drift::extra(
                Object::OvsDevice,
                format!("OVS internal device {link} in netns {netns}"),
                "is dead: ovs-vswitchd restarted and made a new one in the host netns",
            ),
            LinkStep::MarkLink { at, link, alias } => Drift::differs(
                Link,
                format!("link {link} in {at}"),
                format!("lacks its ownership alias {alias}"),
            ),
            LinkStep::MoveLinkIn { link, netns, .. } => Drift::differs(
                Object::Interface,
                format!("interface {link}"),
                format!("is not in netns {netns}"),
            ),
            LinkStep::CreateMacvlan { link, netns, .. } => {
                Drift::missing(Object::Macvlan, format!("macvlan {link} in netns {netns}"))
            }
            LinkStep::SetLink { at, link, mtu, mac } => {
                let mut p = Vec::new();
                if let Some(m) = mtu {
                    p.push(format!("mtu differs (want {m})"));
                }
                if let Some(m) = mac {
                    p.push(format!("MAC differs (want {m})"));
                }
                Drift::differs(Link, format!("link {link} in {at}"), p.join(", "))
            }
            LinkStep::Enslave { link, bridge } => Drift::differs(
                Link,
                format!("link {link} in host netns"),
                format!("is not a port of bridge {bridge}"),
            ),
            LinkStep::LinkUp { at, link } => {
                Drift::differs(Link, format!("link {link} in {at}"), "is down")
            }
        }
    }
}

impl fmt::Display for LinkStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkStep::CreateVeth {
                host,
                peer,
                netns,
                mtu,
                mac,
                ..
            } => {
                write!(f, "create veth {host} (host) ↔ {peer} (netns {netns})")?;
                mtu_mac(f, mtu, mac)
            }
            LinkStep::DeleteLink { at, link } => write!(f, "delete stale link {link} in {at}"),
            LinkStep::RemoveLink { at, link } => {
                write!(f, "delete link {link} in {at} (not wanted as it is)")
            }
            LinkStep::Release { link } => write!(f, "detach {link} from its bridge in host netns"),
            LinkStep::DeleteDeadOvsDevice { netns, link } => write!(
                f,
                "delete dead OVS internal device {link} in netns {netns} (ovs-vswitchd made a new one)"
            ),
            LinkStep::MarkLink { at, link, alias } => {
                write!(f, "set alias {alias} on {link} in {at}")
            }
            LinkStep::MoveLinkIn {
                link, netns, kind, ..
            } => {
                let what = match kind {
                    MoveKind::OvsInternal => "OVS internal port",
                    MoveKind::Existing => "existing link",
                };
                write!(f, "move {what} {link} into netns {netns}")
            }
            LinkStep::CreateMacvlan {
                link,
                parent,
                netns,
                mac,
                ..
            } => {
                write!(
                    f,
                    "create macvlan {link} (bridge mode) on {parent} in netns {netns}"
                )?;
                mtu_mac(f, &None, mac)
            }
            LinkStep::SetLink { at, link, mtu, mac } => {
                write!(f, "set")?;
                mtu_mac(f, mtu, mac)?;
                write!(f, " on {link} in {at}")
            }
            LinkStep::Enslave { link, bridge } => {
                write!(f, "attach {link} to bridge {bridge} in host netns")
            }
            LinkStep::LinkUp { at, link } => write!(f, "set {link} up in {at}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerId, IfName};

    /// Which link steps make the executor forget the interface indexes it knows: those
    /// after which a name may name another index or none. Listed by hand on purpose —
    /// a new step must be classified here too.
    #[test]
    fn only_deleting_or_moving_a_link_changes_indexes() {
        let ct = || ContainerId::new("web").unwrap();
        let name = |s: &str| IfName::new(s).unwrap();
        let at = || At::Netns(ct());
        let changing = [
            LinkStep::DeleteLink {
                at: At::Host,
                link: name("ve-web"),
            },
            LinkStep::RemoveLink {
                at: at(),
                link: "old".into(),
            },
            LinkStep::DeleteDeadOvsDevice {
                netns: ct(),
                link: name("eth1"),
            },
            LinkStep::MoveLinkIn {
                link: name("eth1"),
                netns: ct(),
                kind: MoveKind::Existing,
                alias: None,
            },
        ];
        let keeping = [
            LinkStep::CreateVeth {
                host: name("ve-web"),
                peer: name("eth0"),
                netns: ct(),
                host_alias: "netprov:web:eth0".into(),
                peer_alias: "netprov:web".into(),
                mtu: None,
                mac: None,
            },
            LinkStep::CreateMacvlan {
                link: name("mv0"),
                parent: name("eth9"),
                netns: ct(),
                alias: "netprov:web".into(),
                mac: None,
            },
            LinkStep::Release {
                link: name("ve-web"),
            },
            LinkStep::MarkLink {
                at: at(),
                link: "lo".into(),
                alias: "netprov-netns:web".into(),
            },
            LinkStep::SetLink {
                at: at(),
                link: name("eth0"),
                mtu: Some(1400),
                mac: None,
            },
            LinkStep::Enslave {
                link: name("ve-web"),
                bridge: name("br0"),
            },
            LinkStep::LinkUp {
                at: at(),
                link: "eth0".into(),
            },
        ];
        assert!(changing.iter().all(LinkStep::changes_indexes));
        assert!(!keeping.iter().any(LinkStep::changes_indexes));
    }
}
