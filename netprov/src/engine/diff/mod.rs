//! The diff: compare a `Desired` with what was observed and produce the [`Plan`].
//!
//! Decisions made here: a link with a wanted name that is not netprov's stops the plan
//! with an error (never taken over); links netprov owns get undesired addresses and
//! routes removed; `Existing` links only get things added; a half of a veth pair whose
//! other half is gone is deleted and the pair recreated.

pub(crate) mod existing;
#[cfg(test)]
mod golden_tests;
mod nft;
mod ovs;
#[cfg(test)]
mod renew_tests;

use std::collections::BTreeSet;

use ipnetwork::IpNetwork;

use crate::engine::observe::{NsState, Observed};
use crate::engine::plan::{At, MoveKind, Plan, Step};
use crate::error::OpError;
use crate::kernel::link::{container_alias, host_alias, Kind, LinkState};
use crate::kernel::route::{default_metric, RouteSpec};
use crate::kernel::sysctl;
use crate::model::{ContainerId, Desired, Interface, InterfaceKind, MacAddr, NetnsSpec, OvsStyle};
use crate::ovsdb::OvsChange;

fn foreign(what: &str, l: &LinkState, at: &At, id: &str) -> OpError {
    OpError::new(
        what.to_owned(),
        format!(
            "a link named {} already exists in {at} and is not netprov's for {id} (alias {}); refusing to take it over",
            l.name,
            l.alias.as_deref().map(|a| format!("{a:?}")).unwrap_or_else(|| "none".into())
        ),
    )
}

/// The device route of a veth end duplicates the kernel's own prefix route when it is
/// exactly the network of one of that end's addresses.
fn is_kernel_prefix_route(r: &IpNetwork, own: &[IpNetwork]) -> bool {
    own.iter().any(|a| {
        a.prefix() == r.prefix()
            && a.network() == r.network()
            && a.prefix() < if a.is_ipv4() { 32 } else { 128 }
    })
}

struct Differ<'a> {
    id: String,
    cid: &'a ContainerId,
    o: &'a Observed,
    steps: Vec<Step>,
    /// Desired netprov routes per side.
    host_routes: Vec<RouteSpec>,
    container_routes: Vec<RouteSpec>,
    /// The link being planned is moved in by this plan (not created with its attributes).
    moving: bool,
    /// Links (host side?, name) this plan deletes, re-creates, moves in or out: every
    /// route observed through them vanishes with the old link, so routes are planned
    /// from the state after those steps, not from the observed one.
    renewed: BTreeSet<(bool, String)>,
    /// Links whose every IPv4 address this plan deletes: the kernel then flushes all
    /// IPv4 routes through the link (fib_disable_ip), including ones the plan keeps.
    v4_flushed: BTreeSet<(bool, String)>,
    /// Interfaces whose OVS internal port the OVS part of this plan creates or
    /// re-creates: ovs-vswitchd makes a new device in the host netns (the old one, if
    /// in the container, goes with the old port), which is moved in.
    ovs_new_device: BTreeSet<String>,
    /// OVS ports this plan removes (their host ends leave the switch with them).
    ovs_removed: BTreeSet<String>,
    /// Veth host ends this plan adds as OVS ports: one still in a Linux bridge (a plain
    /// veth on a bridge before) leaves it first. The kernel datapath would refuse a
    /// device with a master; the userspace one takes it and the device stays in both.
    ovs_new_veth_port: BTreeSet<String>,
}

impl Differ<'_> {
    fn ns(&self) -> At {
        At::Netns(self.id.clone())
    }

    fn renew(&mut self, at: &At, name: &str) {
        self.renewed.insert((*at == At::Host, name.to_owned()));
    }

    /// Whether an observed route survives the link steps of this plan.
    fn route_survives(&self, at: &At, r: &RouteSpec) -> bool {
        let Some(dev) = &r.dev else { return true };
        let key = (*at == At::Host, dev.clone());
        !(self.renewed.contains(&key) || r.dest.is_ipv4() && self.v4_flushed.contains(&key))
    }

    /// Container links the props do not name: netprov's own are deleted. Others stay:
    /// the container's processes may make links in their netns (docker0, wg0), and an
    /// unmarked link cannot be told apart from an `Existing` link lent before, so
    /// none is ever moved to the host netns by apply (destroy returns lent links).
    fn unwanted(&mut self, d: &Desired) {
        let wanted: BTreeSet<&str> = d
            .interfaces
            .iter()
            .flat_map(|i| {
                std::iter::once(i.name.as_str()).chain(i.macvlan.iter().map(|m| m.name.as_str()))
            })
            .collect();
        let alias = container_alias(self.cid);
        let mut links: Vec<&LinkState> = self
            .o
            .container
            .links
            .values()
            .filter(|l| l.name != "lo" && !wanted.contains(l.name.as_str()))
            .collect();
        // Macvlans first: their parent may go too.
        links.sort_by_key(|l| l.kind != Kind::Macvlan);
        for l in links {
            // Only the kinds netprov makes over rtnetlink: an OVS internal port's device
            // goes with its port (the OVSDB part of the plan removes it).
            if l.owned_as(&alias) && matches!(l.kind, Kind::Veth | Kind::Macvlan) {
                self.steps.push(Step::RemoveLink {
                    at: self.ns(),
                    link: l.name.clone(),
                });
                self.renew(&self.ns(), &l.name);
            }
        }
    }

    fn link_state(
        &mut self,
        at: At,
        st: Option<&LinkState>,
        name: &str,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
    ) {
        let (mtu_diff, mac_diff, up) = match st {
            Some(l) => (
                mtu.filter(|m| l.mtu != Some(*m)),
                mac.filter(|m| l.mac != Some(m.0)),
                l.up,
            ),
            // Created by this plan with mtu/mac already set; a link moved in by this
            // plan keeps what it had, so set them.
            None if self.moving => (mtu, mac, false),
            None => (None, None, false),
        };
        if mtu_diff.is_some() || mac_diff.is_some() {
            self.steps.push(Step::SetLink {
                at: at.clone(),
                link: name.to_owned(),
                mtu: mtu_diff,
                mac: mac_diff,
            });
        }
        if !up {
            self.steps.push(Step::LinkUp {
                at,
                link: name.to_owned(),
            });
        }
    }

    /// Address steps for one link; `owned`: extra permanent addresses are removed.
    fn addrs(
        &mut self,
        at: At,
        side: &NsState,
        name: &str,
        exists: bool,
        want: &[IpNetwork],
        owned: bool,
    ) {
        let have: &[IpNetwork] = if exists { side.addrs_of(name) } else { &[] };
        let deleted: Vec<&IpNetwork> = if owned {
            have.iter().filter(|a| !want.contains(a)).collect()
        } else {
            Vec::new()
        };
        // IPv4: deleting a primary address deletes the secondaries of its subnet too
        // (unless promote_secondaries is on, which netprov does not read). Kept
        // addresses sharing a subnet with a deleted one are at risk: re-added after
        // the deletes (EEXIST, when promoted, is success).
        let at_risk = |a: &IpNetwork| {
            a.is_ipv4()
                && deleted
                    .iter()
                    .any(|d| d.is_ipv4() && d.prefix() == a.prefix() && d.network() == a.network())
        };
        let survivors = have
            .iter()
            .filter(|a| a.is_ipv4() && !deleted.contains(a) && !at_risk(a))
            .count();
        // With every IPv4 address gone, the kernel flushes every IPv4 route through the
        // link (fib_disable_ip), including routes this plan keeps.
        if deleted.iter().any(|a| a.is_ipv4()) && survivors == 0 {
            self.v4_flushed.insert((at == At::Host, name.to_owned()));
        }
        for a in &deleted {
            self.steps.push(Step::DelAddress {
                at: at.clone(),
                link: name.to_owned(),
                addr: **a,
            });
        }
        for a in want {
            if !have.contains(a) {
                self.steps.push(Step::AddAddress {
                    at: at.clone(),
                    link: name.to_owned(),
                    addr: *a,
                });
            } else if at_risk(a) {
                self.steps.push(Step::ReAddAddress {
                    at: at.clone(),
                    link: name.to_owned(),
                    addr: *a,
                });
            }
        }
    }

    fn peer_routes(own: &[IpNetwork], routes: Vec<IpNetwork>, dev: &str) -> Vec<RouteSpec> {
        routes
            .into_iter()
            .filter(|r| !is_kernel_prefix_route(r, own))
            .map(|r| RouteSpec {
                dest: r,
                gateway: None,
                dev: Some(dev.to_owned()),
                metric: default_metric(&r),
            })
            .collect()
    }

    /// A veth (plain or OVS-veth): host end `host_name`, container side `i.name`.
    fn veth(
        &mut self,
        i: &Interface,
        host_name: &str,
        host_addrs: &[IpNetwork],
        bridge: Option<&str>,
    ) -> Result<(), OpError> {
        let id = self.id.clone();
        let o = self.o;
        let h_alias = host_alias(self.cid, i.name.as_str());
        let c_alias = container_alias(self.cid);
        let host = o.host.links.get(host_name);
        let cont = o.container.links.get(i.name.as_str());
        let create_op = format!("create veth {host_name} (host) ↔ {} (netns {id})", i.name);
        if let Some(h) = host {
            // Also this container's host end of another interface (a `hostName` moved
            // between interfaces): netprov's, re-created below for this one.
            let this_container = format!("netprov:{}:", self.cid);
            let ours = h.owned_as(&h_alias)
                || h.alias
                    .as_deref()
                    .is_some_and(|a| a.starts_with(&this_container));
            if !ours {
                return Err(foreign(&create_op, h, &At::Host, &id));
            }
        }
        if let Some(c) = cont {
            if !c.owned_as(&c_alias) {
                return Err(foreign(&create_op, c, &self.ns(), &id));
            }
        }
        // A pair is whole when the container side's peer is the host end we found.
        let whole = match (host, cont) {
            (Some(h), Some(c)) => c.kind == Kind::Veth && c.link == Some(h.index),
            _ => false,
        };
        if !whole {
            if host.is_some() {
                self.steps.push(Step::DeleteLink {
                    at: At::Host,
                    link: host_name.to_owned(),
                });
            }
            if cont.is_some() {
                self.steps.push(Step::DeleteLink {
                    at: self.ns(),
                    link: i.name.to_string(),
                });
            }
            self.renew(&At::Host, host_name);
            self.renew(&self.ns(), i.name.as_str());
            self.steps.push(Step::CreateVeth {
                host: host_name.to_owned(),
                peer: i.name.to_string(),
                netns: id.clone(),
                host_alias: h_alias,
                peer_alias: c_alias,
                mtu: i.mtu,
                mac: i.mac,
            });
        } else {
            let (h, c) = (host.expect("whole"), cont.expect("whole"));
            if h.alias.as_deref() != Some(h_alias.as_str()) {
                self.steps.push(Step::MarkLink {
                    at: At::Host,
                    link: host_name.to_owned(),
                    alias: h_alias,
                });
            }
            if c.alias.as_deref() != Some(c_alias.as_str()) {
                self.steps.push(Step::MarkLink {
                    at: self.ns(),
                    link: i.name.to_string(),
                    alias: c_alias,
                });
            }
        }
        let host_st = if whole { host } else { None };
        if let Some(b) = bridge {
            let Some(br) = o.host.links.get(b) else {
                return Err(OpError::new(
                    format!("attach {host_name} to bridge {b} in host netns"),
                    "no such bridge in the host netns",
                ));
            };
            if host_st.and_then(|h| h.controller) != Some(br.index) {
                self.steps.push(Step::Enslave {
                    link: host_name.to_owned(),
                    bridge: b.to_owned(),
                });
            }
        } else if host_st.is_some_and(|h| h.controller.is_some_and(|c| c != 0))
            && ((matches!(i.kind, InterfaceKind::Veth(_)) && !self.ovs_removed.contains(host_name))
                || self.ovs_new_veth_port.contains(host_name))
        {
            self.steps.push(Step::Release {
                link: host_name.to_owned(),
            });
        }
        self.link_state(
            At::Host,
            host_st,
            host_name,
            i.mtu.filter(|_| host_st.is_some()),
            None,
        );
        self.addrs(
            At::Host,
            &o.host,
            host_name,
            host_st.is_some(),
            host_addrs,
            true,
        );
        let routes = Self::peer_routes(host_addrs, i.host_peer_routes(), host_name);
        self.host_routes.extend(routes);
        let cont_st = if whole { cont } else { None };
        self.container_side(i, cont_st, true);
        Ok(())
    }

    /// Link state, addresses and peer routes of a container-side interface.
    fn container_side(&mut self, i: &Interface, st: Option<&LinkState>, owned: bool) {
        let o = self.o;
        self.link_state(self.ns(), st, i.name.as_str(), i.mtu, i.mac);
        self.addrs(
            self.ns(),
            &o.container,
            i.name.as_str(),
            st.is_some(),
            &i.addrs,
            owned,
        );
        let routes = Self::peer_routes(&i.addrs, i.container_peer_routes(), i.name.as_str());
        self.container_routes.extend(routes);
    }

    fn moved(&mut self, i: &Interface, kind: MoveKind) -> Result<(), OpError> {
        let id = self.id.clone();
        let o = self.o;
        let alias = match kind {
            MoveKind::OvsInternal => Some(container_alias(self.cid)),
            MoveKind::Existing => None,
        };
        let mut in_container = o.container.links.get(i.name.as_str());
        // The container end of a veth-style OVS port (the style changed to internal):
        // deleting it removes the pair; the new internal device is moved in.
        if let (MoveKind::OvsInternal, Some(c), Some(a)) = (kind, in_container, &alias) {
            if c.owned_as(a) && c.kind == crate::kernel::link::Kind::Veth {
                self.steps.push(Step::DeleteLink {
                    at: self.ns(),
                    link: i.name.to_string(),
                });
                in_container = None;
            }
        }
        // An internal port's device in the container *and* a device of that name in
        // the host: ovs-vswitchd restarted and made a new tap (userspace datapath; see
        // docs/ovs.md). The container's copy is dead: delete it, move the new one in.
        if let (MoveKind::OvsInternal, Some(c), Some(a)) = (kind, in_container, &alias) {
            if c.owned_as(a) && o.host.links.contains_key(i.name.as_str()) {
                self.steps.push(Step::DeleteDeadOvsDevice {
                    netns: id.clone(),
                    link: i.name.to_string(),
                });
                self.renew(&self.ns(), i.name.as_str());
                in_container = None;
            }
        }
        // A link netprov made for this container under that name but of another kind
        // (a veth peer or macvlan; the interface was one before), or the device of an
        // OVS port this plan re-creates (e.g. on another bridge): delete it, then move
        // the wanted link in.
        if let Some(c) = in_container {
            let made_here = c.owned_as(&container_alias(self.cid));
            // Only what netprov can delete over rtnetlink.
            let other_kind = matches!(c.kind, Kind::Veth | Kind::Macvlan);
            let new_port =
                kind == MoveKind::OvsInternal && self.ovs_new_device.contains(i.name.as_str());
            if made_here && (other_kind || new_port) {
                self.steps.push(Step::RemoveLink {
                    at: self.ns(),
                    link: i.name.to_string(),
                });
                self.renew(&self.ns(), i.name.as_str());
                in_container = None;
            }
        }
        match in_container {
            Some(c) => {
                if let Some(a) = &alias {
                    if !c.owned_as(a) && c.alias.is_some() {
                        return Err(foreign(
                            &format!("move {} into netns {id}", i.name),
                            c,
                            &self.ns(),
                            &id,
                        ));
                    }
                    if c.alias.as_deref() != Some(a.as_str()) {
                        self.steps.push(Step::MarkLink {
                            at: self.ns(),
                            link: i.name.to_string(),
                            alias: a.clone(),
                        });
                    }
                }
                self.container_side(i, Some(c), kind == MoveKind::OvsInternal);
            }
            None => {
                if kind == MoveKind::Existing && !o.host.links.contains_key(i.name.as_str()) {
                    return Err(OpError::new(
                        format!("move existing link {} into netns {id}", i.name),
                        "no such link in the host netns or the container netns",
                    ));
                }
                self.renew(&self.ns(), i.name.as_str());
                if let (MoveKind::Existing, Some(l)) = (kind, o.host.links.get(i.name.as_str())) {
                    existing::check_free(l, &o.host, &o.ovsdb_interfaces, &id)?;
                }
                self.steps.push(Step::MoveLinkIn {
                    link: i.name.to_string(),
                    netns: id.clone(),
                    kind,
                    alias,
                });
                self.moving = true;
                self.container_side(i, None, kind == MoveKind::OvsInternal);
                self.moving = false;
            }
        }
        Ok(())
    }

    fn macvlan(&mut self, i: &Interface) -> Result<(), OpError> {
        let Some(m) = &i.macvlan else { return Ok(()) };
        let id = self.id.clone();
        let o = self.o;
        let alias = container_alias(self.cid);
        let mut st = o.container.links.get(m.name.as_str());
        // Kept only on the very parent that stays: a macvlan of another kind, on a
        // parent this plan re-creates or moves, or on another link is made anew.
        if let Some(l) = st.filter(|l| l.owned_as(&alias)) {
            let parent_stays = !self.renewed.contains(&(false, i.name.to_string()));
            let parent = o.container.links.get(i.name.as_str()).map(|p| p.index);
            if l.kind != Kind::Macvlan || !parent_stays || l.link != parent || parent.is_none() {
                self.steps.push(Step::RemoveLink {
                    at: self.ns(),
                    link: m.name.to_string(),
                });
                self.renew(&self.ns(), m.name.as_str());
                st = None;
            }
        }
        if let Some(l) = st {
            if !l.owned_as(&alias) {
                return Err(foreign(
                    &format!("create macvlan {} in netns {id}", m.name),
                    l,
                    &self.ns(),
                    &id,
                ));
            }
            if l.alias.is_none() {
                self.steps.push(Step::MarkLink {
                    at: self.ns(),
                    link: m.name.to_string(),
                    alias: alias.clone(),
                });
            }
        } else {
            self.steps.push(Step::CreateMacvlan {
                link: m.name.to_string(),
                parent: i.name.to_string(),
                netns: id.clone(),
                alias,
                mac: m.mac,
            });
        }
        self.link_state(
            self.ns(),
            st,
            m.name.as_str(),
            None,
            m.mac.filter(|_| st.is_some()),
        );
        self.addrs(
            self.ns(),
            &o.container,
            m.name.as_str(),
            st.is_some(),
            &m.addrs,
            true,
        );
        Ok(())
    }

    fn routes(&mut self, at: At, have: &[RouteSpec], want: &[RouteSpec]) {
        for h in have {
            if !want.iter().any(|w| w.same_key(h)) {
                self.steps.push(Step::DelRoute {
                    at: at.clone(),
                    route: h.clone(),
                });
            }
        }
        for w in want {
            if !have.iter().any(|h| w.satisfied_by(h)) {
                let was = have.iter().find(|h| w.same_key(h)).cloned();
                self.steps.push(Step::ReplaceRoute {
                    at: at.clone(),
                    route: w.clone(),
                    was,
                });
            }
        }
    }
}

/// An existing `/run/netns/<id>` is netprov's only with its owner mark (or, made by an
/// older netprov, with this container's links: then it gets the mark now).
fn owned_netns(d: &Desired, path: &std::path::Path, o: &Observed) -> Result<Option<Step>, OpError> {
    use crate::kernel::netns_owner::{self, Owner};
    match netns_owner::owner(&d.id, &o.container.links) {
        Owner::Ours => Ok(None),
        Owner::Unmarked => Ok(Some(Step::MarkLink {
            at: At::Netns(d.id.to_string()),
            link: "lo".into(),
            alias: netns_owner::mark(&d.id),
        })),
        other => Err(netns_owner::not_ours(&d.id, path, &other)),
    }
}

/// An adopted netns may be anything but another container's own netns.
fn adopted_netns(d: &Desired, path: &std::path::Path, o: &Observed) -> Result<(), OpError> {
    use crate::kernel::netns_owner::{self, Owner};
    match netns_owner::owner(&d.id, &o.container.links) {
        Owner::Other(other) => Err(OpError::new(
            format!("adopt netns {} for {}", path.display(), d.id),
            format!("it is netprov's own netns of container {other}"),
        )),
        _ => Ok(()),
    }
}

/// Computes the plan that makes the kernel (`o`) match `d`.
pub fn diff(d: &Desired, o: &Observed) -> Result<Plan, OpError> {
    let id = d.id.to_string();
    let mut df = Differ {
        id: id.clone(),
        cid: &d.id,
        o,
        steps: Vec::new(),
        host_routes: Vec::new(),
        container_routes: Vec::new(),
        moving: false,
        renewed: BTreeSet::new(),
        v4_flushed: BTreeSet::new(),
        ovs_new_device: BTreeSet::new(),
        ovs_removed: BTreeSet::new(),
        ovs_new_veth_port: BTreeSet::new(),
    };
    let ovs_steps = ovs::steps(d, o)?;
    for s in &ovs_steps {
        if let Step::OvsPort {
            change: OvsChange::Create { spec } | OvsChange::Recreate { spec, .. },
        } = s
        {
            if spec.internal {
                df.ovs_new_device.insert(spec.iface.to_string());
            } else {
                df.ovs_new_veth_port.insert(spec.port.to_string());
            }
        }
        if let Step::OvsPort {
            change: OvsChange::Remove { port, .. },
        } = s
        {
            df.ovs_removed.insert(port.clone());
        }
    }
    match &d.netns {
        NetnsSpec::Owned { path } if !o.netns_exists => df.steps.push(Step::CreateNetns {
            netns: id.clone(),
            path: path.clone(),
        }),
        NetnsSpec::Adopted { path } if !o.netns_exists => {
            return Err(OpError::new(
                format!("open netns {}", path.display()),
                "the adopted netns (netns_path) does not exist",
            ))
        }
        NetnsSpec::Owned { path } => df.steps.extend(owned_netns(d, path, o)?),
        NetnsSpec::Adopted { path } => adopted_netns(d, path, o)?,
    }
    if !o.container.links.get("lo").is_some_and(|l| l.up) {
        df.steps.push(Step::LinkUp {
            at: df.ns(),
            link: "lo".into(),
        });
    }
    df.unwanted(d);
    for i in &d.interfaces {
        match &i.kind {
            InterfaceKind::Veth(h) => df.veth(
                i,
                h.name.as_str(),
                &h.addrs,
                h.bridge.as_ref().map(|b| b.as_str()),
            )?,
            InterfaceKind::Ovs(p) => match &p.style {
                OvsStyle::Veth { host } => df.veth(i, host.as_str(), &[], None)?,
                OvsStyle::Internal => df.moved(i, MoveKind::OvsInternal)?,
            },
            InterfaceKind::Existing => df.moved(i, MoveKind::Existing)?,
        }
        df.macvlan(i)?;
    }
    for r in &d.routes {
        df.container_routes.push(RouteSpec {
            dest: r.dest,
            gateway: r.gateway,
            dev: r.dev.as_ref().map(|x| x.to_string()),
            // IPv6 has no metric 0: the kernel stores 1024 for it, as for none.
            metric: r
                .metric
                .filter(|m| *m != 0 || r.dest.is_ipv4())
                .unwrap_or_else(|| default_metric(&r.dest)),
        });
    }
    let host_want = std::mem::take(&mut df.host_routes);
    let cont_want = std::mem::take(&mut df.container_routes);
    // Routes through links this plan renews or strips of IPv4 are gone by the routes
    // phase: plan them from that state (replace, not "already there"; no delete).
    let surviving = |df: &Differ, at: &At, rs: &[RouteSpec]| -> Vec<RouteSpec> {
        rs.iter()
            .filter(|r| df.route_survives(at, r))
            .cloned()
            .collect()
    };
    let host_have = surviving(&df, &At::Host, &o.host.routes);
    df.routes(At::Host, &host_have, &host_want);
    let cont_have = match d.netns {
        NetnsSpec::Owned { .. } => o.container.routes.clone(),
        // Another container's protocol-77 routes there are not this one's to delete.
        NetnsSpec::Adopted { .. } => {
            crate::kernel::netns_owner::adopted_routes(d, &o.container, &cont_want)
        }
    };
    let cont_have = surviving(&df, &df.ns(), &cont_have);
    df.routes(df.ns(), &cont_have, &cont_want);
    for s in &d.sysctls {
        let cur = o.sysctls.get(&s.key).cloned().flatten();
        if !cur
            .as_deref()
            .is_some_and(|c| sysctl::same_value(c, &s.value))
        {
            df.steps.push(Step::WriteSysctl {
                netns: id.clone(),
                key: s.key.clone(),
                path: s.path.clone(),
                value: s.value.clone(),
                current: cur,
            });
        }
    }
    let mut steps = df.steps;
    steps.extend(ovs_steps);
    if let Some(ovn) = &o.ovn {
        steps.extend(
            crate::ovn::plan(d, ovn)?
                .into_iter()
                .map(|change| Step::OvnPort { change }),
        );
    } else if crate::ovn::wanted(d) {
        return Err(OpError::new(
            format!("plan OVN ports of {}", d.id),
            "the OVN Northbound database was not observed",
        ));
    }
    ovs::skip_deletes_done_by_port_removal(&mut steps, o);
    steps.extend(nft::steps(d, o));
    // Stable: within a phase, steps keep the order they were found in (deletions of
    // addresses before additions, links before the macvlans on top of them).
    steps.sort_by_key(|s| s.phase());
    Ok(Plan { id, steps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::Phase;

    #[test]
    fn kernel_prefix_route_is_skipped_only_for_real_prefixes() {
        let own: Vec<IpNetwork> = vec!["10.0.0.2/24".parse().unwrap()];
        assert!(is_kernel_prefix_route(
            &"10.0.0.0/24".parse().unwrap(),
            &own
        ));
        let own: Vec<IpNetwork> = vec!["10.0.2.2/32".parse().unwrap()];
        assert!(!is_kernel_prefix_route(
            &"10.0.1.1/32".parse().unwrap(),
            &own
        ));
    }

    fn desired(ifaces: Vec<Interface>) -> Desired {
        use crate::model::*;
        Desired {
            id: ContainerId::new("web").unwrap(),
            netns: NetnsSpec::Owned {
                path: "/run/netns/web".into(),
            },
            interfaces: ifaces,
            routes: vec![Route {
                dest: "0.0.0.0/0".parse().unwrap(),
                gateway: Some("10.0.0.1".parse().unwrap()),
                dev: None,
                metric: None,
            }],
            sysctls: vec![Sysctl {
                key: "net.ipv4.ip_forward".into(),
                path: "net/ipv4/ip_forward".into(),
                value: "1".into(),
            }],
            nft: None,
            host_rules: HostRules::default(),
        }
    }

    #[test]
    fn fresh_container_plan_is_ordered_by_phase_with_ovs_move_after_its_slot() {
        use crate::model::*;
        let ovs = Interface {
            name: IfName::new("lan").unwrap(),
            kind: InterfaceKind::Ovs(OvsPort {
                bridge: IfName::new("br0").unwrap(),
                vlan: VlanTag::new(356).unwrap(),
                trunks: vec![],
                vlan_mode: None,
                style: OvsStyle::Internal,
                external_ids: Default::default(),
                ovn: None,
            }),
            addrs: vec!["10.0.0.2/24".parse().unwrap()],
            mtu: None,
            mac: None,
            macvlan: Some(Macvlan {
                name: IfName::new("mv-lan-12").unwrap(),
                addrs: vec!["10.0.0.10/24".parse().unwrap()],
                vrid: Some(12),
                mac: Some(MacAddr([0, 0, 0x5e, 0, 1, 12])),
            }),
        };
        let veth = Interface {
            name: IfName::new("wan").unwrap(),
            kind: InterfaceKind::Veth(VethHost {
                name: IfName::new("ve-web-wan").unwrap(),
                addrs: vec!["70.0.0.1/31".parse().unwrap()],
                bridge: None,
            }),
            addrs: vec!["70.0.0.2/31".parse().unwrap()],
            mtu: None,
            mac: None,
            macvlan: None,
        };
        let p = diff(&desired(vec![ovs, veth]), &Observed::default()).unwrap();
        let phases: Vec<Phase> = p.steps.iter().map(|s| s.phase()).collect();
        let mut sorted = phases.clone();
        sorted.sort();
        assert_eq!(phases, sorted);
        let text = p.to_string();
        assert!(
            text.contains("create netns web at /run/netns/web"),
            "{text}"
        );
        assert!(
            text.contains("move OVS internal port lan into netns web"),
            "{text}"
        );
        assert!(
            text.contains(
                "create macvlan mv-lan-12 (bridge mode) on lan in netns web mac 00:00:5e:00:01:0c"
            ),
            "{text}"
        );
        assert!(
            text.contains("replace route 70.0.0.1/32 dev wan in netns web"),
            "{text}"
        );
        assert!(
            text.contains("replace route 70.0.0.2/32 dev ve-web-wan in host netns"),
            "{text}"
        );
        assert!(
            text.contains("set sysctl net.ipv4.ip_forward=1 in netns web"),
            "{text}"
        );
        let mv = p
            .steps
            .iter()
            .position(|s| matches!(s, Step::MoveLinkIn { .. }))
            .unwrap();
        let mac = p
            .steps
            .iter()
            .position(|s| matches!(s, Step::CreateMacvlan { .. }))
            .unwrap();
        assert!(mv < mac);
        assert!(p.steps[mv].phase() > Phase::OvsPorts);
        // Serialises for --json.
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["steps"][0]["op"], "create_netns");
    }
}
