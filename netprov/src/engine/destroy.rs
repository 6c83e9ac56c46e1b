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
//! (see `marks`), or a symlink — is left whole, and the report says why. Things
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
//! them, veth host ends included, and destroy waits for those host ends to go. The
//! exception is netprov's macvlans on lent links: deleted before their link goes back,
//! since the cleanup would leave them holding their MACs on it for a while. When the
//! netns must be kept, netprov's links in it are deleted one by one instead.

mod engine;
pub mod host_links;
mod ovs;
mod report;

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::blocking::blocking;
use crate::engine::observe;
use crate::error::OpError;
use crate::kernel::link::{self, LinkChange};
use crate::kernel::netlink::{MutationCount, Netlink};
use crate::kernel::netns;
use crate::kernel::route;
use crate::model::{ContainerId, Desired, InterfaceKind, NetnsSpec, OvsStyle};
use crate::nft::{self, RulesetState};
use crate::ovsdb::{self, Client, Endpoint};

pub use report::{DestroyFailed, DestroyReport, DestroyTarget};

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
    wait_for_cleanup: bool,
) -> Result<DestroyReport, DestroyFailed> {
    let id = t.id().clone();
    let spec = t.netns();
    let path = spec.path().clone();
    let owned = matches!(spec, NetnsSpec::Owned { .. });
    if !owned {
        // Never the host netns (validation checks it too, against this process's).
        if let Err(e) = crate::kernel::netns_owner::refuse_host(&id, &path, host_path) {
            return Err(DestroyFailed::new(&id, e));
        }
    }
    let mut run = Run {
        t,
        host,
        host_ns,
        host_path,
        rep: DestroyReport {
            id: id.to_string(),
            ..Default::default()
        },
        fails: Vec::new(),
        count: MutationCount::default(),
        calias: crate::marks::container_alias(&id),
        label: format!("netns {id}"),
        id,
        path,
        owned,
        // Whether this container has OVS interfaces: its props say so, or its links show it.
        has_ovs: matches!(t, DestroyTarget::Props(d) if d.interfaces.iter().any(|i| matches!(i.kind, InterfaceKind::Ovs(_)))),
        unreachable: None,
        keep_netns: false,
        peers: Vec::new(),
        wait_for_cleanup,
    };
    // OVS ports first: with them gone ovs-vswitchd closes their devices, wherever they
    // are.
    run.ovs_ports(ovsdb).await;
    run.host_table().await;
    if run.handle_ok() {
        run.container_netns().await;
    }
    if let DestroyTarget::Props(d) = t {
        run.host_ends(d).await;
    }
    run.release_netns().await;
    run.ovs_unreachable();
    run.finish()
}

/// One destroy under way: what it has found and done so far.
struct Run<'a> {
    t: &'a DestroyTarget,
    host: &'a Netlink,
    /// The host netns, for moving links back.
    host_ns: &'a File,
    host_path: &'a Path,
    id: ContainerId,
    rep: DestroyReport,
    fails: Vec<OpError>,
    count: MutationCount,
    /// The container netns handle.
    path: PathBuf,
    /// Wait for the kernel's netns cleanup to delete the host ends (`destroy` without
    /// `--no-wait`).
    wait_for_cleanup: bool,
    owned: bool,
    calias: String,
    label: String,
    has_ovs: bool,
    /// OVSDB could not be reached (a failure only if the container has OVS interfaces).
    unreachable: Option<OpError>,
    /// Why an owned netns must stay: removing it would destroy links netprov does not
    /// own (an `Existing` link it could not move back, or could not even list).
    keep_netns: bool,
    /// An owned netns goes in bulk (see netns_release): these host ends go with it.
    peers: Vec<crate::kernel::netns_release::HostPeer>,
}

impl Run<'_> {
    async fn ovs_ports(&mut self, ovsdb: &Endpoint) {
        let (ep, id) = (ovsdb.clone(), self.id.clone());
        let r = blocking("remove OVS ports", move || {
            Ok(match Client::connect(&ep) {
                Ok(mut c) => OvsOutcome::Done(ovsdb::destroy(&mut c, &id)),
                Err(e) => OvsOutcome::Unreachable(e),
            })
        })
        .await;
        match r {
            Ok(OvsOutcome::Done(Ok(ports))) => self.rep.ovs_ports_removed = ports,
            Ok(OvsOutcome::Done(Err(e))) | Err(e) => self.fails.push(e),
            Ok(OvsOutcome::Unreachable(e)) => self.unreachable = Some(e),
        }
    }

    /// The host table next: it exists only for this container and deleting an absent
    /// one is fine, so this needs no observation.
    async fn host_table(&mut self) {
        let (hp, id) = (self.host_path.to_owned(), self.id.clone());
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
            Ok(true) => self.count.bump(),
            Ok(false) => {}
            Err(e) => self.fails.push(e),
        }
    }

    /// Whether netprov may work inside the netns: an adopted one, or /run/netns/<id> when
    /// it is netprov's (its owner mark, see marks.rs). A foreign handle is left whole.
    fn handle_ok(&mut self) -> bool {
        if self.owned {
            match crate::kernel::netns_owner::handle(&self.path) {
                Ok(h) => h == crate::kernel::netns_owner::Handle::Netns,
                Err(e) => {
                    self.rep.netns_not_ours = Some(e.to_string());
                    false
                }
            }
        } else {
            crate::kernel::netns_owner::is_handle(&self.path)
        }
    }

    /// Everything netprov has inside the container netns.
    async fn container_netns(&mut self) {
        let (id, path, owned) = (self.id.clone(), self.path.clone(), self.owned);
        let st = match Netlink::open(Some(&path), self.label.clone()) {
            Ok(nl) => observe::container_ns(&nl).await.map(|st| (nl, st)),
            Err(e) => Err(e),
        };
        let st = match st {
            Ok((nl, st)) => {
                let who = crate::kernel::owned::netns_owner(&id, &st.links);
                if owned && !who.is_ours() {
                    self.rep.netns_not_ours =
                        Some(crate::marks::netns_not_ours(&id, &path, &who).to_string());
                    None
                } else {
                    Some((nl, st))
                }
            }
            Err(e) => {
                self.fails.push(e);
                self.keep_netns = true;
                None
            }
        };
        if st.is_some() && !owned {
            self.adopted_ruleset().await;
        }
        if let Some((nl, st)) = st {
            self.inside(&nl, &st).await;
        }
    }

    /// An adopted netns outlives netprov: remove exactly the tables netprov
    /// loaded (recorded in its marker), never the others. An owned netns takes
    /// its ruleset with it.
    async fn adopted_ruleset(&mut self) {
        let (path, id) = (&self.path, &self.id);
        let ns = path.clone();
        match blocking("list nftables ruleset", move || nft::ruleset::observe(&ns)).await {
            Ok(RulesetState::Absent) => {}
            Ok(_) => {
                let (ns, sid) = (path.clone(), id.to_string());
                self.count.bump();
                match blocking("remove nftables tables", move || {
                    nft::ruleset::remove_adopted(&ns, &sid)
                })
                .await
                {
                    Ok(removed) => self.rep.ruleset_removed = removed,
                    Err(e) => self.fails.push(e),
                }
            }
            Err(e) => self.fails.push(e),
        }
    }

    /// Routes and links in the container netns the destroy could look into.
    async fn inside(&mut self, nl: &Netlink, st: &observe::NsState) {
        let (host, id, owned) = (self.host, self.id.clone(), self.owned);
        if self.unreachable.is_some() && !self.has_ovs {
            self.has_ovs = ovs::shows_ovs(st, host, &id, &self.calias).await;
        }
        if owned {
            match crate::kernel::netns_release::host_peers(host, &id, st, &self.calias).await {
                Ok(p) => self.peers = p,
                Err(e) => self.fails.push(e),
            }
        }
        self.adopted_routes(nl, st).await;
        // Macvlans first (their parent may be a veth about to go), then the rest.
        let mut links: Vec<_> = st.links.values().filter(|l| l.name != "lo").collect();
        links.sort_by_key(|l| l.kind != link::Kind::Macvlan);
        // netprov's macvlans on links it does not own (lent links, which go back to
        // the host) are deleted before those links go, even from a netns about to go
        // in bulk: the kernel's cleanup of the netns deletes them only later, and
        // until then each holds its MAC on the returned link, where the kernel refuses
        // a second macvlan with that MAC (EADDRINUSE) — the next container lent the
        // link, with the same VRRP id, could not bring its own up.
        let lent: BTreeSet<u32> = st
            .links
            .values()
            .filter(|l| !l.owned_as(&self.calias))
            .map(|l| l.index)
            .collect();
        let calias = self.calias.clone();
        let on_lent = |l: &link::LinkState| {
            l.kind == link::Kind::Macvlan
                && l.owned_as(&calias)
                && l.link_netnsid.is_none()
                && l.link.is_some_and(|p| lent.contains(&p))
        };
        // In an owned netns, the links netprov does not own go back to the host
        // first (after the macvlans on them): whether the netns may go (and take
        // netprov's other links with it, in bulk) depends on it.
        if owned {
            links.sort_by_key(|l| (!on_lent(l), l.owned_as(&self.calias)));
        }
        let links: Vec<_> = links.into_iter().map(|l| (l, on_lent(l))).collect();
        for (l, delete_now) in links {
            self.link(nl, l, delete_now).await;
        }
        if owned && !self.keep_netns {
            // netprov's routes in an owned netns go with it (reported like the
            // links that do).
            self.rep.routes_deleted += st.routes.len();
        }
    }

    /// netprov's routes in an adopted netns (an owned netns takes its routes with it).
    async fn adopted_routes(&mut self, nl: &Netlink, st: &observe::NsState) {
        let (owned, label) = (self.owned, &self.label);
        let routes: Vec<_> = match self.t {
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
                crate::kernel::owned::adopted_routes(d, st, &want)
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
            match nl.mutate(route::delete(r, oif), 0, &self.count).await {
                Ok(()) => self.rep.routes_deleted += 1,
                Err(e) if e == libc::ESRCH || e == libc::ENOENT => {}
                Err(e) => self
                    .fails
                    .push(OpError::errno(format!("delete route {r} in {label}"), e)),
            }
        }
    }

    /// One link of the container netns: netprov's goes (in bulk with an owned netns,
    /// unless `delete_now`), another is moved back to the host netns from an owned one.
    async fn link(&mut self, nl: &Netlink, l: &link::LinkState, delete_now: bool) {
        let (owned, label, count) = (self.owned, &self.label, &self.count);
        if l.owned_as(&self.calias) && owned && !self.keep_netns && !delete_now {
            // Deleted by the kernel's netns cleanup, host ends included.
            self.rep.links_deleted.push(format!("{} ({label})", l.name));
        } else if l.owned_as(&self.calias) {
            match nl.mutate(link::delete(l.index), 0, count).await {
                // ENODEV: it went with its parent or peer.
                Ok(()) | Err(libc::ENODEV) => {
                    self.rep.links_deleted.push(format!("{} ({label})", l.name))
                }
                // An OVS internal port cannot be deleted through rtnetlink; it
                // dies with the netns (the OVSDB layer removes its port).
                Err(libc::EOPNOTSUPP) if owned => {
                    self.rep.links_deleted.push(format!("{} ({label})", l.name))
                }
                Err(e) => self.fails.push(OpError::errno(
                    format!("delete link {} in {label}", l.name),
                    e,
                )),
            }
        } else if owned {
            let c = LinkChange {
                netns_fd: Some(self.host_ns.as_raw_fd()),
                ..Default::default()
            };
            match nl.mutate(link::set(l.index, &c), 0, count).await {
                Ok(()) => self.rep.links_returned.push(l.name.clone()),
                // Netns-local devices cannot move; they go with the netns.
                Err(libc::EINVAL) | Err(libc::EOPNOTSUPP) | Err(libc::ENODEV) => {}
                Err(e) => {
                    self.keep_netns = true;
                    self.fails.push(OpError::errno(
                        format!("move {} back to the host netns from {label}", l.name),
                        e,
                    ))
                }
            }
        }
    }

    /// Veth host ends the props name that are left (not gone with the netns), deleted
    /// by name when they carry this container's alias.
    async fn host_ends(&mut self, d: &Desired) {
        let (id, host) = (self.id.clone(), self.host);
        for i in &d.interfaces {
            if self.peers.iter().any(|p| {
                p.alias.as_deref() == Some(crate::marks::host_alias(&id, i.name.as_str()).as_str())
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
            let halias = crate::marks::host_alias(&id, i.name.as_str());
            let got = match host.get_link(link::get_by_name(host_end.as_str())).await {
                Ok(got) => got,
                Err(e) => {
                    self.fails.push(OpError::errno(
                        format!("get link {host_end} in host netns"),
                        e,
                    ));
                    continue;
                }
            };
            if let Some(l) = got {
                if l.alias.as_deref() == Some(halias.as_str()) {
                    match host.mutate(link::delete(l.index), 0, &self.count).await {
                        Ok(()) | Err(libc::ENODEV) => self
                            .rep
                            .links_deleted
                            .push(format!("{host_end} (host netns)")),
                        Err(e) => self.fails.push(OpError::errno(
                            format!("delete link {host_end} in host netns"),
                            e,
                        )),
                    }
                }
            }
        }
    }

    /// An owned netns netprov may remove: its handle goes, and the destroy waits for
    /// the host ends the kernel's cleanup takes with it.
    async fn release_netns(&mut self) {
        let (owned, path, host) = (self.owned, &self.path, self.host);
        if owned && self.keep_netns {
            self.fails.push(OpError::new(
                format!("delete netns {}", path.display()),
                "kept: it holds links netprov does not own that could not be moved back to the host netns (removing it would destroy them)",
            ));
        } else if owned && self.rep.netns_not_ours.is_none() {
            // Subscribed before the netns is released, so no deletion is missed. (The
            // container socket is gone by now: it was one of the netns's references.)
            let watch = if self.peers.is_empty() || !self.wait_for_cleanup {
                None
            } else {
                match crate::kernel::netns_release::LinkWatch::open(self.host_path) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        self.fails.push(e);
                        None
                    }
                }
            };
            let existed = path.exists();
            match netns::remove_handle(path) {
                Ok(()) => {
                    self.rep.netns_removed = existed;
                    if !self.wait_for_cleanup {
                        self.rep.host_ends_left_to_kernel =
                            self.peers.iter().map(|p| p.name.clone()).collect();
                    }
                    if let Some(w) = watch {
                        if let Err(e) = crate::kernel::netns_release::await_peers(
                            host,
                            w,
                            &self.peers,
                            &self.count,
                        )
                        .await
                        {
                            self.fails.push(e);
                        }
                    }
                }
                Err(e) => self.fails.push(e),
            }
        }
    }

    /// OVSDB was unreachable: a failure only for a container with OVS interfaces.
    fn ovs_unreachable(&mut self) {
        let id = &self.id;
        if let Some(e) = self.unreachable.take() {
            if self.has_ovs {
                // Its ports stay in the database (their devices are gone with the links and
                // the netns); a destroy once OVSDB is back removes them.
                self.fails.push(OpError {
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
    }

    fn finish(mut self) -> Result<DestroyReport, DestroyFailed> {
        self.rep.messages = self.count.get();
        if self.fails.is_empty() {
            Ok(self.rep)
        } else {
            Err(DestroyFailed {
                report: Box::new(self.rep),
                failures: self.fails,
            })
        }
    }
}
