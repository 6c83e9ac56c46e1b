//! Destroy: remove everything netprov owns for one container, found by its marks.
//!
//! Order: inside the container netns, delete every link netprov created (alias
//! `netprov:<id>` or the netprov group with no alias); deleting the container end of a
//! veth deletes its host end, so host ends need no host-side lookup. When the props are
//! known, veth host ends that still exist (e.g. left by an interrupted run after the
//! container netns vanished) are looked up by name and deleted if they carry this
//! container's alias. For an owned netns, links netprov does not own (existing links
//! moved in) are moved back to the host netns — a netns going away would otherwise
//! destroy virtual ones — and then the handle is unmounted and unlinked. An adopted
//! netns is left in place with its foreign links; only netprov's links, its routes
//! (through links it created or the props name, or the props' routes) and the nftables
//! tables it loaded leave it. A `/run/netns/<id>` that is not netprov's — no owner mark
//! (see `netns_owner`), or a symlink — is left whole, and the report says why. Things
//! already gone are fine: destroy is idempotent.
//!
//! Best effort and complete: a failing part (OVSDB unreachable, a link the kernel will
//! not delete, an nftables error) is recorded and the rest still runs; the failures
//! come back together ([`DestroyFailed`]) after everything else that could go is gone.
//! The one thing held back is an owned netns holding a link netprov could not move
//! back: removing the netns would destroy a link that is not netprov's.
//!
//! An owned netns netprov may remove goes in bulk (see `netns_release`): its routes and
//! netprov's links in it are not deleted one by one; the kernel's netns cleanup takes
//! them, veth host ends included, and destroy waits for those host ends to go. When the
//! netns must be kept, netprov's links in it are deleted one by one instead.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use netlink_packet_route::RouteNetlinkMessage;
use serde::Serialize;

use crate::engine::blocking::blocking;
use crate::engine::observe;
use crate::error::OpError;
use crate::kernel::link::{self, LinkChange};
use crate::kernel::netlink::{MutationCount, Netlink};
use crate::kernel::netns;
use crate::kernel::route;
use crate::model::{ContainerId, Desired, InterfaceKind, NetnsSpec, OvsStyle};
use crate::nft::{self, RulesetState};
use crate::ovsdb::{self, Client, Endpoint};

/// What destroy removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestroyReport {
    pub id: String,
    /// Links deleted, as "name (where)".
    pub links_deleted: Vec<String>,
    /// Links netprov did not own, moved back to the host netns.
    pub links_returned: Vec<String>,
    pub routes_deleted: usize,
    pub netns_removed: bool,
    /// The ruleset netprov loaded in an adopted netns was flushed.
    pub ruleset_removed: bool,
    /// OVS ports (marked as this container's) removed.
    pub ovs_ports_removed: Vec<String>,
    /// OVN logical switch ports (marked as this container's) removed from Northbound.
    pub ovn_ports_removed: Vec<String>,
    /// Why `/run/netns/<id>` was left alone: it is not netprov's (no owner mark, a
    /// symlink, …). Nothing inside it was touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_not_ours: Option<String>,
    /// Mutating netlink messages and nftables transactions sent.
    pub messages: usize,
    /// Host ends of the container's veths that the kernel's netns cleanup deletes
    /// after destroy returned (`destroy --no-wait` only; see `netns_release`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_ends_left_to_kernel: Vec<String>,
}

/// What to destroy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestroyTarget {
    /// From a props file: also finds host ends by name, honours an adopted netns.
    Props(Desired),
    /// Only the id: the netns `/run/netns/<id>`, everything found by marks.
    Id(ContainerId),
}

impl DestroyTarget {
    pub fn id(&self) -> &ContainerId {
        match self {
            DestroyTarget::Props(d) => &d.id,
            DestroyTarget::Id(id) => id,
        }
    }
    fn netns(&self) -> NetnsSpec {
        match self {
            DestroyTarget::Props(d) => d.netns.clone(),
            DestroyTarget::Id(id) => NetnsSpec::Owned {
                path: PathBuf::from("/run/netns").join(id.as_str()),
            },
        }
    }
}

/// A destroy that could not remove everything: what it did remove, and every part that
/// failed (each names its operation and object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestroyFailed {
    /// Boxed: keeps the `Err` of a `Result` small.
    pub report: Box<DestroyReport>,
    pub failures: Vec<OpError>,
}

impl DestroyFailed {
    /// A destroy of `id` that failed before removing anything.
    pub fn new(id: &ContainerId, e: OpError) -> Self {
        Self {
            report: Box::new(DestroyReport {
                id: id.to_string(),
                ..Default::default()
            }),
            failures: vec![e],
        }
    }
}

impl std::fmt::Display for DestroyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DestroyFailed {}

/// How the OVS part went.
enum OvsOutcome {
    /// The database answered: the ports removed, or why the removal failed.
    Done(Result<Vec<String>, OpError>),
    /// No connection. Whether that is a failure depends on whether the container has
    /// OVS interfaces, which is known only after looking at its links.
    Unreachable(OpError),
}

/// Best effort and complete: every part runs even when an earlier one failed (an
/// unreachable OVSDB, a link already gone, an nftables error), and the failures come
/// back together after all that could be removed was.
pub async fn destroy(
    t: &DestroyTarget,
    host: &Netlink,
    host_ns: &File,
    host_path: &Path,
    ovsdb: &Endpoint,
    rt: &tokio::runtime::Handle,
    wait_for_cleanup: bool,
) -> Result<DestroyReport, DestroyFailed> {
    let id = t.id().clone();
    let mut rep = DestroyReport {
        id: id.to_string(),
        ..Default::default()
    };
    let mut fails: Vec<OpError> = Vec::new();
    let count = MutationCount::default();
    let spec = t.netns();
    let path = spec.path().clone();
    let owned = matches!(spec, NetnsSpec::Owned { .. });
    let calias = link::container_alias(&id);
    let label = format!("netns {id}");
    if !owned {
        // Never the host netns (validation checks it too, against this process's).
        if let Err(e) = crate::kernel::netns_owner::refuse_host(&id, &path, host_path) {
            return Err(DestroyFailed::new(&id, e));
        }
    }
    // Whether this container has OVS interfaces: its props say so, or its links show it.
    let mut has_ovs = matches!(t, DestroyTarget::Props(d) if d.interfaces.iter().any(|i| matches!(i.kind, InterfaceKind::Ovs(_))));
    // OVS ports first: with them gone ovs-vswitchd closes their devices, wherever they
    // are.
    let mut unreachable = None;
    {
        let (ep, id) = (ovsdb.clone(), id.clone());
        let r = blocking("remove OVS ports", move || {
            Ok(match Client::connect(&ep) {
                Ok(mut c) => OvsOutcome::Done(ovsdb::destroy(&mut c, &id)),
                Err(e) => OvsOutcome::Unreachable(e),
            })
        })
        .await;
        match r {
            Ok(OvsOutcome::Done(Ok(ports))) => rep.ovs_ports_removed = ports,
            Ok(OvsOutcome::Done(Err(e))) | Err(e) => fails.push(e),
            Ok(OvsOutcome::Unreachable(e)) => unreachable = Some(e),
        }
    }
    // The host table next: it exists only for this container and deleting an absent
    // one is fine, so this needs no observation.
    {
        let (hp, id) = (host_path.to_owned(), id.clone());
        // Looked up first: deleting even an absent table queues work for the kernel's
        // nf_tables destroy list, and closing the socket then waits an RCU grace period.
        match blocking("delete host nftables table", move || {
            if matches!(nft::host::observe_host(&hp, &id)?, nft::HostState::Absent) {
                return Ok(false);
            }
            nft::host::remove_host(&hp, &id).map(|()| true)
        })
        .await
        {
            Ok(true) => count.bump(),
            Ok(false) => {}
            Err(e) => fails.push(e),
        }
    }
    // Whether netprov may work inside the netns: an adopted one, or /run/netns/<id> when
    // it is netprov's (its owner mark, see netns_owner). A foreign handle is left whole.
    // Why an owned netns must stay: removing it would destroy links netprov does not
    // own (an `Existing` link it could not move back, or could not even list).
    let mut keep_netns = false;
    // An owned netns goes in bulk (see netns_release): these host ends go with it.
    let mut peers = Vec::new();
    let handle_ok = if owned {
        match crate::kernel::netns_owner::handle(&path) {
            Ok(h) => h == crate::kernel::netns_owner::Handle::Netns,
            Err(e) => {
                rep.netns_not_ours = Some(e.to_string());
                false
            }
        }
    } else {
        netns::is_handle(&path)
    };
    if handle_ok {
        let st = match Netlink::open(Some(&path), rt, label.clone()) {
            Ok(nl) => observe::container_ns(&nl).await.map(|st| (nl, st)),
            Err(e) => Err(e),
        };
        let st = match st {
            Ok((nl, st)) => {
                let who = crate::kernel::netns_owner::owner(&id, &st.links);
                if owned && !who.is_ours() {
                    rep.netns_not_ours =
                        Some(crate::kernel::netns_owner::not_ours(&id, &path, &who).to_string());
                    None
                } else {
                    Some((nl, st))
                }
            }
            Err(e) => {
                fails.push(e);
                keep_netns = true;
                None
            }
        };
        if st.is_some() && !owned {
            // An adopted netns outlives netprov: remove exactly the tables netprov
            // loaded (recorded in its marker), never the others. An owned netns takes
            // its ruleset with it.
            let ns = path.clone();
            match blocking("list nftables ruleset", move || nft::ruleset::observe(&ns)).await {
                Ok(RulesetState::Absent) => {}
                Ok(_) => {
                    let (ns, sid) = (path.clone(), id.to_string());
                    count.bump();
                    match blocking("remove nftables tables", move || {
                        nft::ruleset::remove_adopted(&ns, &sid)
                    })
                    .await
                    {
                        Ok(removed) => rep.ruleset_removed = removed,
                        Err(e) => fails.push(e),
                    }
                }
                Err(e) => fails.push(e),
            }
        }
        match st {
            None => {}
            Some((nl, st)) => {
                if unreachable.is_some() && !has_ovs {
                    has_ovs = shows_ovs(&st, host, &id, &calias).await;
                }
                if owned {
                    match crate::kernel::netns_release::host_peers(host, &id, &st, &calias).await {
                        Ok(p) => peers = p,
                        Err(e) => fails.push(e),
                    }
                }
                let routes: Vec<_> = match t {
                    DestroyTarget::Props(d) if !owned => {
                        let want: Vec<_> = d
                            .routes
                            .iter()
                            .map(|r| route::RouteSpec {
                                dest: r.dest,
                                gateway: r.gateway,
                                dev: None,
                                metric: r.metric.unwrap_or_else(|| route::default_metric(&r.dest)),
                            })
                            .collect();
                        crate::kernel::netns_owner::adopted_routes(d, &st, &want)
                    }
                    // An owned netns: its routes go with it.
                    _ => Vec::new(),
                };
                for r in &routes {
                    // Routes through links about to be deleted go with them; the rest
                    // (gateway routes) are deleted here so an adopted netns keeps none
                    // of netprov's.
                    let oif = r
                        .dev
                        .as_ref()
                        .and_then(|d| st.links.get(d))
                        .map(|l| l.index);
                    match nl.mutate(route::delete(r, oif), 0, &count).await {
                        Ok(()) => rep.routes_deleted += 1,
                        Err(e) if e == libc::ESRCH || e == libc::ENOENT => {}
                        Err(e) => {
                            fails.push(OpError::errno(format!("delete route {r} in {label}"), e))
                        }
                    }
                }
                // Macvlans first (their parent may be a veth about to go), then the rest.
                let mut links: Vec<_> = st.links.values().filter(|l| l.name != "lo").collect();
                links.sort_by_key(|l| l.kind != link::Kind::Macvlan);
                // In an owned netns, the links netprov does not own go back to the host
                // first: whether the netns may go (and take netprov's links with it, in
                // bulk) depends on it.
                if owned {
                    links.sort_by_key(|l| l.owned_as(&calias));
                }
                for l in links {
                    if l.owned_as(&calias) && owned && !keep_netns {
                        // Deleted by the kernel's netns cleanup, host ends included.
                        rep.links_deleted.push(format!("{} ({label})", l.name));
                    } else if l.owned_as(&calias) {
                        match nl.mutate(link::delete(l.index), 0, &count).await {
                            // ENODEV: it went with its parent or peer.
                            Ok(()) | Err(libc::ENODEV) => {
                                rep.links_deleted.push(format!("{} ({label})", l.name))
                            }
                            // An OVS internal port cannot be deleted through rtnetlink; it
                            // dies with the netns (the OVSDB layer removes its port).
                            Err(libc::EOPNOTSUPP) if owned => {
                                rep.links_deleted.push(format!("{} ({label})", l.name))
                            }
                            Err(e) => fails.push(OpError::errno(
                                format!("delete link {} in {label}", l.name),
                                e,
                            )),
                        }
                    } else if owned {
                        let c = LinkChange {
                            netns_fd: Some(host_ns.as_raw_fd()),
                            ..Default::default()
                        };
                        match nl.mutate(link::set(l.index, &c), 0, &count).await {
                            Ok(()) => rep.links_returned.push(l.name.clone()),
                            // Netns-local devices cannot move; they go with the netns.
                            Err(libc::EINVAL) | Err(libc::EOPNOTSUPP) | Err(libc::ENODEV) => {}
                            Err(e) => {
                                keep_netns = true;
                                fails.push(OpError::errno(
                                    format!("move {} back to the host netns from {label}", l.name),
                                    e,
                                ))
                            }
                        }
                    }
                }
                if owned && !keep_netns {
                    // netprov's routes in an owned netns go with it (reported like the
                    // links that do).
                    rep.routes_deleted += st.routes.len();
                }
            }
        }
    }
    if let DestroyTarget::Props(d) = t {
        for i in &d.interfaces {
            if peers.iter().any(|p| {
                p.alias.as_deref() == Some(link::host_alias(&id, i.name.as_str()).as_str())
            }) {
                continue;
            }
            let host_end = match &i.kind {
                InterfaceKind::Veth(h) => &h.name,
                InterfaceKind::Ovs(p) => match &p.style {
                    OvsStyle::Veth { host } => host,
                    OvsStyle::Internal => continue,
                },
                InterfaceKind::Existing => continue,
            };
            let halias = link::host_alias(&id, i.name.as_str());
            let got = match host.get(link::get_by_name(host_end.as_str())).await {
                Ok(got) => got,
                Err(e) => {
                    fails.push(OpError::errno(
                        format!("get link {host_end} in host netns"),
                        e,
                    ));
                    continue;
                }
            };
            if let Some(RouteNetlinkMessage::NewLink(m)) = got {
                let l = link::LinkState::parse(&m);
                if l.alias.as_deref() == Some(halias.as_str()) {
                    match host.mutate(link::delete(l.index), 0, &count).await {
                        Ok(()) | Err(libc::ENODEV) => {
                            rep.links_deleted.push(format!("{host_end} (host netns)"))
                        }
                        Err(e) => fails.push(OpError::errno(
                            format!("delete link {host_end} in host netns"),
                            e,
                        )),
                    }
                }
            }
        }
    }
    if owned && keep_netns {
        fails.push(OpError::new(
            format!("delete netns {}", path.display()),
            "kept: it holds links netprov does not own that could not be moved back to the host netns (removing it would destroy them)",
        ));
    } else if owned && rep.netns_not_ours.is_none() {
        // Subscribed before the netns is released, so no deletion is missed. (The
        // container socket is gone by now: it was one of the netns's references.)
        let watch = if peers.is_empty() || !wait_for_cleanup {
            None
        } else {
            match crate::kernel::netns_release::LinkWatch::open(host_path) {
                Ok(w) => Some(w),
                Err(e) => {
                    fails.push(e);
                    None
                }
            }
        };
        let existed = path.exists();
        match netns::remove_handle(&path) {
            Ok(()) => {
                rep.netns_removed = existed;
                if !wait_for_cleanup {
                    rep.host_ends_left_to_kernel = peers.iter().map(|p| p.name.clone()).collect();
                }
                if let Some(w) = watch {
                    if let Err(e) =
                        crate::kernel::netns_release::await_peers(host, w, &peers, &count).await
                    {
                        fails.push(e);
                    }
                }
            }
            Err(e) => fails.push(e),
        }
    }
    if let Some(e) = unreachable {
        if has_ovs {
            // Its ports stay in the database (their devices are gone with the links and
            // the netns); a destroy once OVSDB is back removes them.
            fails.push(OpError {
                op: format!("remove OVS ports of {id}"),
                cause: format!("{e} (run destroy again once it is)"),
                errno: e.errno,
            });
        } else if e.errno != Some(libc::ENOENT) {
            // No socket: no OVS on this host. A socket that refuses (a crashed
            // ovsdb-server) does not block a container without OVS interfaces.
            tracing::warn!("{id}: skipped OVS ports: {e}; {id} shows no OVS interface");
        }
    }
    rep.messages = count.get();
    if fails.is_empty() {
        Ok(rep)
    } else {
        Err(DestroyFailed {
            report: Box::new(rep),
            failures: fails,
        })
    }
}

/// Whether the container netns shows OVS interfaces netprov made: an owned link that is
/// neither a veth nor a macvlan (only OVS internal ports are moved in and marked), or
/// an owned veth whose host end is enslaved to the kernel datapath (`ovs-system`). A
/// veth port on a userspace datapath leaves no such trace.
async fn shows_ovs(st: &observe::NsState, host: &Netlink, id: &ContainerId, calias: &str) -> bool {
    for l in st.links.values().filter(|l| l.owned_as(calias)) {
        match &l.kind {
            link::Kind::Veth => {}
            link::Kind::Macvlan => continue,
            _ => return true,
        }
        let (Some(peer), Some(_)) = (l.link, l.link_netnsid) else {
            continue;
        };
        let get = |i| async move {
            match host.get(link::get_by_index(i)).await {
                Ok(Some(RouteNetlinkMessage::NewLink(m))) => Some(link::LinkState::parse(&m)),
                _ => None,
            }
        };
        let Some(h) = get(peer).await else { continue };
        if h.alias.as_deref() != Some(link::host_alias(id, &l.name).as_str()) {
            continue;
        }
        if let Some(m) = h.controller {
            if matches!(get(m).await, Some(c) if c.kind == link::Kind::Other("openvswitch".into()))
            {
                return true;
            }
        }
    }
    false
}
