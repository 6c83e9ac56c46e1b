//! The plan: the ordered changes that make the kernel match a `Desired`, computed by
//! [`crate::engine::diff`] from what [`crate::engine::observe`] saw. An empty plan means "in sync".
//!
//! Steps are ordered by [`Phase`]. Two phases are slots for other layers: OVS port
//! steps (after the host-side links, before anything is moved into the container) and
//! nftables steps (last, once every interface exists).

use std::fmt;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use serde::{Serialize, Serializer};

use crate::kernel::route::RouteSpec;
use crate::model::{MacAddr, Ruleset};
use crate::nft::HostSpec;
use crate::ovsdb::OvsChange;

pub fn ser_display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ser_opt_mac<S: Serializer>(v: &Option<MacAddr>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(m) => s.collect_str(m),
        None => s.serialize_none(),
    }
}

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
    Netns(String),
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
            At::Netns(id) => s.serialize_str(id),
        }
    }
}

/// Why a link is moved into the container netns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveKind {
    /// An OVS internal port (created by OVS in the host netns); netprov marks it.
    OvsInternal,
    /// A link netprov does not own (`InterfaceKind::Existing`); not marked.
    Existing,
}

/// Why the container ruleset is (re)loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RulesetReason {
    /// netprov has not loaded a ruleset in this netns yet.
    Missing,
    /// The props carry a different ruleset than the one loaded.
    Changed,
    /// The live ruleset was modified behind netprov's back (or a load was interrupted).
    Drifted,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    CreateNetns {
        netns: String,
        path: PathBuf,
    },
    /// A veth pair: `host` in the host netns, `peer` created directly in the container
    /// netns; both ends born in the netprov group, then aliased.
    CreateVeth {
        host: String,
        peer: String,
        netns: String,
        host_alias: String,
        peer_alias: String,
        mtu: Option<u32>,
        #[serde(serialize_with = "ser_opt_mac")]
        mac: Option<MacAddr>,
    },
    /// Delete the surviving half of a netprov-owned link whose other half is gone.
    DeleteLink {
        at: At,
        link: String,
    },
    /// Delete a link netprov made for this container that the props no longer want as
    /// it is: not named any more (interface renamed or removed, macvlan dropped) or of
    /// another kind or parent than wanted. Links on top of it go with it.
    RemoveLink {
        at: At,
        link: String,
    },
    /// Detach a veth host end from the Linux bridge it is a port of (the props name
    /// no `hostBridge` any more).
    Release {
        link: String,
    },
    /// Delete the container's copy of an OVS internal device that ovs-vswitchd no longer
    /// drives (it restarted and made a new device in the host netns, moved in next).
    DeleteDeadOvsDevice {
        netns: String,
        link: String,
    },
    /// Set the ownership alias on a netprov-created link (finishing an interrupted run).
    MarkLink {
        at: At,
        link: String,
        alias: String,
    },
    MoveLinkIn {
        link: String,
        netns: String,
        kind: MoveKind,
        alias: Option<String>,
    },
    CreateMacvlan {
        link: String,
        parent: String,
        netns: String,
        alias: String,
        #[serde(serialize_with = "ser_opt_mac")]
        mac: Option<MacAddr>,
    },
    SetLink {
        at: At,
        link: String,
        mtu: Option<u32>,
        #[serde(serialize_with = "ser_opt_mac")]
        mac: Option<MacAddr>,
    },
    Enslave {
        link: String,
        bridge: String,
    },
    LinkUp {
        at: At,
        link: String,
    },
    DelAddress {
        at: At,
        link: String,
        #[serde(serialize_with = "ser_display")]
        addr: IpNetwork,
    },
    AddAddress {
        at: At,
        link: String,
        #[serde(serialize_with = "ser_display")]
        addr: IpNetwork,
    },
    /// Add again a wanted IPv4 address that the kernel may drop with a deleted
    /// address of its subnet (a primary takes its secondaries); present is success.
    ReAddAddress {
        at: At,
        link: String,
        #[serde(serialize_with = "ser_display")]
        addr: IpNetwork,
    },
    DelRoute {
        at: At,
        route: RouteSpec,
    },
    ReplaceRoute {
        at: At,
        route: RouteSpec,
        /// The netprov route with the same key it replaces, if any.
        was: Option<RouteSpec>,
    },
    WriteSysctl {
        netns: String,
        key: String,
        path: String,
        value: String,
        current: Option<String>,
    },
    /// One change to the container's OVS ports (all of a plan's run as one OVSDB
    /// transaction, then waited for until ovs-vswitchd applied them).
    OvsPort {
        change: OvsChange,
    },
    /// One change to the container's OVN logical switch ports, or a wait for one.
    OvnPort {
        change: crate::ovn::OvnChange,
    },
    /// Replace the container netns's whole ruleset with the props' text, atomically.
    LoadRuleset {
        netns: String,
        /// SHA-256 (first 128 bits) of the text, as recorded in netprov's marker table.
        digest: String,
        reason: RulesetReason,
        #[serde(skip)]
        ruleset: Ruleset,
    },
    /// `nft` left the props: flush the ruleset netprov loaded.
    RemoveRuleset {
        netns: String,
    },
    /// Create or atomically replace the container's host table `inet netprov-<id>`.
    InstallHostRules {
        table: String,
        /// The table exists with other rules (replace, not create).
        replace: bool,
        /// How the existing table differs from what the props generate.
        #[serde(skip_serializing_if = "Option::is_none")]
        differs: Option<String>,
        #[serde(skip)]
        spec: HostSpec,
    },
    /// No host rule is wanted any more: delete the container's host table.
    RemoveHostRules {
        table: String,
    },
}

impl Step {
    pub fn phase(&self) -> Phase {
        match self {
            Step::CreateNetns { .. } => Phase::Netns,
            Step::CreateVeth { .. } | Step::Enslave { .. } => Phase::HostLinks,
            Step::DeleteLink { .. } | Step::MarkLink { .. } => Phase::HostLinks,
            Step::DeleteDeadOvsDevice { .. } => Phase::HostLinks,
            Step::RemoveLink { .. } | Step::Release { .. } => Phase::HostLinks,
            // After moves: a link moved in by this plan gets its MTU/MAC in its new netns.
            Step::SetLink { .. } => Phase::LinkState,
            Step::MoveLinkIn { .. } | Step::CreateMacvlan { .. } => Phase::ContainerLinks,
            Step::LinkUp { .. } => Phase::LinkState,
            Step::DelAddress { .. } | Step::AddAddress { .. } | Step::ReAddAddress { .. } => {
                Phase::Addresses
            }
            Step::DelRoute { .. } | Step::ReplaceRoute { .. } => Phase::Routes,
            Step::WriteSysctl { .. } => Phase::Sysctls,
            Step::OvsPort {
                change: OvsChange::Remove { .. },
            } => Phase::OvsRemovals,
            Step::OvsPort { .. } => Phase::OvsPorts,
            Step::OvnPort { .. } => Phase::Ovn,
            Step::LoadRuleset { .. }
            | Step::RemoveRuleset { .. }
            | Step::InstallHostRules { .. }
            | Step::RemoveHostRules { .. } => Phase::Nft,
        }
    }

    /// The same step read as a difference between the kernel and the desired state.
    pub fn as_drift(&self) -> Drift {
        let (object, problem) = match self {
            Step::CreateNetns { path, .. } => {
                (format!("netns {}", path.display()), "missing".to_owned())
            }
            Step::CreateVeth {
                host, peer, netns, ..
            } => (
                format!("veth {host} (host) ↔ {peer} (netns {netns})"),
                "missing".into(),
            ),
            Step::DeleteLink { at, link } => (
                format!("link {link} in {at}"),
                "is half of a netprov veth pair whose other end is gone".into(),
            ),
            Step::RemoveLink { at, link } => (
                format!("link {link} in {at}"),
                "is netprov's but not wanted as it is (not in the props, or of another kind)"
                    .into(),
            ),
            Step::Release { link } => (
                format!("link {link} in host netns"),
                "is a bridge port, the props want none".into(),
            ),
            Step::DeleteDeadOvsDevice { netns, link } => (
                format!("OVS internal device {link} in netns {netns}"),
                "is dead: ovs-vswitchd restarted and made a new one in the host netns".into(),
            ),
            Step::MarkLink { at, link, alias } => (
                format!("link {link} in {at}"),
                format!("lacks its ownership alias {alias}"),
            ),
            Step::MoveLinkIn { link, netns, .. } => (
                format!("interface {link}"),
                format!("is not in netns {netns}"),
            ),
            Step::CreateMacvlan { link, netns, .. } => {
                (format!("macvlan {link} in netns {netns}"), "missing".into())
            }
            Step::SetLink { at, link, mtu, mac } => {
                let mut p = Vec::new();
                if let Some(m) = mtu {
                    p.push(format!("mtu differs (want {m})"));
                }
                if let Some(m) = mac {
                    p.push(format!("MAC differs (want {m})"));
                }
                (format!("link {link} in {at}"), p.join(", "))
            }
            Step::Enslave { link, bridge } => (
                format!("link {link} in host netns"),
                format!("is not a port of bridge {bridge}"),
            ),
            Step::LinkUp { at, link } => (format!("link {link} in {at}"), "is down".into()),
            Step::DelAddress { at, link, addr } => (
                format!("address {addr} on {link} in {at}"),
                "is not desired".into(),
            ),
            Step::AddAddress { at, link, addr } => (
                format!("address {addr} on {link} in {at}"),
                "missing".into(),
            ),
            Step::ReAddAddress { at, link, addr } => (
                format!("address {addr} on {link} in {at}"),
                "shares its subnet with an address that is not desired (the kernel drops it with that one)".into(),
            ),
            Step::DelRoute { at, route } => {
                (format!("route {route} in {at}"), "is not desired".into())
            }
            Step::ReplaceRoute { at, route, was } => match was {
                Some(w) => (
                    format!("route {w} in {at}"),
                    format!("changed, want {route}"),
                ),
                None => (format!("route {route} in {at}"), "missing".into()),
            },
            Step::WriteSysctl {
                netns,
                key,
                value,
                current,
                ..
            } => (
                format!("sysctl {key} in netns {netns}"),
                match current {
                    Some(c) => format!("is {c:?}, want {value:?}"),
                    None => format!("is unset, want {value:?}"),
                },
            ),
            Step::OvsPort { change } => ovs_drift(change),
            Step::OvnPort { change } => change.as_drift(),
            Step::LoadRuleset { netns, reason, .. } => (
                format!("nftables ruleset in netns {netns}"),
                match reason {
                    RulesetReason::Missing => "missing".into(),
                    RulesetReason::Changed => "differs from the props".into(),
                    RulesetReason::Drifted => "modified behind netprov's back".into(),
                },
            ),
            Step::RemoveRuleset { netns } => (
                format!("nftables ruleset in netns {netns}"),
                "is loaded but the props have none".into(),
            ),
            Step::InstallHostRules {
                table,
                replace,
                differs,
                ..
            } => (
                format!("host rules table inet {table}"),
                match (replace, differs) {
                    (true, Some(d)) => format!("differs from the props: {d}"),
                    (true, None) => "differs from the props".into(),
                    (false, _) => "missing".into(),
                },
            ),
            Step::RemoveHostRules { table } => (
                format!("host rules table inet {table}"),
                "exists but no host rule is wanted".into(),
            ),
        };
        Drift { object, problem }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateNetns { netns, path } => {
                write!(f, "create netns {netns} at {}", path.display())
            }
            Step::CreateVeth {
                host,
                peer,
                netns,
                mtu,
                mac,
                ..
            } => {
                write!(f, "create veth {host} (host) ↔ {peer} (netns {netns})")?;
                if let Some(m) = mtu {
                    write!(f, " mtu {m}")?;
                }
                if let Some(m) = mac {
                    write!(f, " mac {m}")?;
                }
                Ok(())
            }
            Step::DeleteLink { at, link } => write!(f, "delete stale link {link} in {at}"),
            Step::RemoveLink { at, link } => {
                write!(f, "delete link {link} in {at} (not wanted as it is)")
            }
            Step::Release { link } => write!(f, "detach {link} from its bridge in host netns"),
            Step::DeleteDeadOvsDevice { netns, link } => write!(
                f,
                "delete dead OVS internal device {link} in netns {netns} (ovs-vswitchd made a new one)"
            ),
            Step::MarkLink { at, link, alias } => {
                write!(f, "set alias {alias} on {link} in {at}")
            }
            Step::MoveLinkIn {
                link, netns, kind, ..
            } => {
                let what = match kind {
                    MoveKind::OvsInternal => "OVS internal port",
                    MoveKind::Existing => "existing link",
                };
                write!(f, "move {what} {link} into netns {netns}")
            }
            Step::CreateMacvlan {
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
                if let Some(m) = mac {
                    write!(f, " mac {m}")?;
                }
                Ok(())
            }
            Step::SetLink { at, link, mtu, mac } => {
                write!(f, "set")?;
                if let Some(m) = mtu {
                    write!(f, " mtu {m}")?;
                }
                if let Some(m) = mac {
                    write!(f, " mac {m}")?;
                }
                write!(f, " on {link} in {at}")
            }
            Step::Enslave { link, bridge } => {
                write!(f, "attach {link} to bridge {bridge} in host netns")
            }
            Step::LinkUp { at, link } => write!(f, "set {link} up in {at}"),
            Step::DelAddress { at, link, addr } => {
                write!(f, "delete address {addr} from {link} in {at}")
            }
            Step::AddAddress { at, link, addr } => {
                write!(f, "add address {addr} to {link} in {at}")
            }
            Step::ReAddAddress { at, link, addr } => {
                write!(f, "re-add address {addr} to {link} in {at}")
            }
            Step::DelRoute { at, route } => write!(f, "delete route {route} in {at}"),
            Step::ReplaceRoute { at, route, .. } => write!(f, "replace route {route} in {at}"),
            Step::WriteSysctl {
                netns, key, value, ..
            } => write!(f, "set sysctl {key}={value} in netns {netns}"),
            Step::OvsPort { change } => write!(f, "{change}"),
            Step::OvnPort { change } => write!(f, "{change}"),
            Step::LoadRuleset {
                netns,
                digest,
                reason,
                ..
            } => match reason {
                RulesetReason::Drifted => write!(
                    f,
                    "reload nftables ruleset in netns {netns} (sha256 {digest}; modified behind netprov's back)"
                ),
                _ => write!(f, "load nftables ruleset in netns {netns} (sha256 {digest})"),
            },
            Step::RemoveRuleset { netns } => {
                write!(f, "remove nftables ruleset netprov loaded in netns {netns}")
            }
            Step::InstallHostRules { table, replace, .. } => {
                let verb = if *replace { "replace" } else { "install" };
                write!(f, "{verb} host rules table inet {table} in host netns")
            }
            Step::RemoveHostRules { table } => {
                write!(f, "remove host rules table inet {table} in host netns")
            }
        }
    }
}

use crate::ovsdb::port::show_tag;

/// An OVS change read as a difference.
fn ovs_drift(c: &OvsChange) -> (String, String) {
    match c {
        OvsChange::Create { spec } => (
            format!("OVS port {} on bridge {}", spec.port, spec.bridge),
            "missing".into(),
        ),
        OvsChange::Recreate { spec, reason, .. } => (
            format!("OVS port {} on bridge {}", spec.port, spec.bridge),
            format!("broken: {reason}"),
        ),
        OvsChange::SetVlan { port, from, to, .. } => (
            format!("OVS port {port}"),
            format!("VLAN is {}, want {}", show_tag(from), show_tag(to)),
        ),
        OvsChange::SetTrunks { port, from, to, .. } => (
            format!("OVS port {port}"),
            format!("trunks are {from:?}, want {to:?}"),
        ),
        OvsChange::SetVlanMode { port, from, to, .. } => (
            format!("OVS port {port}"),
            format!(
                "vlan_mode is {}, want {}",
                from.as_deref().unwrap_or("default"),
                to.as_deref().unwrap_or("default")
            ),
        ),
        OvsChange::SetExternalIds { port, from, to, .. } => (
            format!("OVS interface {port}"),
            format!("external_ids are {from:?}, want {to:?}"),
        ),
        OvsChange::Remove { port, .. } => (
            format!("OVS port {port}"),
            "is netprov's for this container but not in the props".into(),
        ),
    }
}

/// One difference between the kernel and the desired state (`check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub object: String,
    pub problem: String,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.problem)
    }
}

/// The ordered steps for one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub id: String,
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

    #[test]
    fn steps_read_as_sentences() {
        let s = Step::AddAddress {
            at: At::Netns("web".into()),
            link: "lan".into(),
            addr: "10.0.0.2/31".parse().unwrap(),
        };
        assert_eq!(s.to_string(), "add address 10.0.0.2/31 to lan in netns web");
        let v = Step::CreateVeth {
            host: "ve-web-lan".into(),
            peer: "lan".into(),
            netns: "web".into(),
            host_alias: "netprov:web:lan".into(),
            peer_alias: "netprov:web".into(),
            mtu: None,
            mac: None,
        };
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
        let s = Step::ReplaceRoute {
            at: At::Netns("web".into()),
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
        };
        assert_eq!(
            s.as_drift().to_string(),
            "route default via 10.1.0.1 dev lan in netns web: changed, want default via 70.0.0.1"
        );
    }
}
