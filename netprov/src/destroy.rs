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

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use netlink_packet_route::RouteNetlinkMessage;
use serde::Serialize;

use crate::error::OpError;
use crate::link::{self, LinkChange};
use crate::model::{ContainerId, Desired, InterfaceKind, NetnsSpec, OvsStyle};
use crate::netlink::{MutationCount, Netlink};
use crate::netns;
use crate::nft::{self, RulesetState};
use crate::observe::{self, blocking};
use crate::ovsdb::{self, Client, Endpoint};
use crate::route;

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
    /// Why `/run/netns/<id>` was left alone: it is not netprov's (no owner mark, a
    /// symlink, …). Nothing inside it was touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_not_ours: Option<String>,
    /// Mutating netlink messages and nftables transactions sent.
    pub messages: usize,
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

pub async fn destroy(
    t: &DestroyTarget,
    host: &Netlink,
    host_ns: &File,
    host_path: &Path,
    ovsdb: &Endpoint,
    rt: &tokio::runtime::Handle,
) -> Result<DestroyReport, OpError> {
    let id = t.id().clone();
    let mut rep = DestroyReport {
        id: id.to_string(),
        ..Default::default()
    };
    let count = MutationCount::default();
    let spec = t.netns();
    let path = spec.path().clone();
    let owned = matches!(spec, NetnsSpec::Owned { .. });
    let calias = link::container_alias(&id);
    let label = format!("netns {id}");
    if !owned {
        // Never the host netns (validation checks it too, against this process's).
        crate::netns_owner::refuse_host(&id, &path, host_path)?;
    }
    // OVS ports first: with them gone ovs-vswitchd closes their devices, wherever they
    // are. A container with OVS interfaces needs the database; otherwise an absent
    // socket means no OVS on this host, hence no ports.
    {
        let needs = matches!(t, DestroyTarget::Props(d) if d.interfaces.iter().any(|i| matches!(i.kind, InterfaceKind::Ovs(_))));
        let (ep, id) = (ovsdb.clone(), id.clone());
        rep.ovs_ports_removed = blocking("remove OVS ports", move || {
            let client = if needs {
                Some(Client::connect(&ep)?)
            } else {
                Client::connect_if_present(&ep)?
            };
            match client {
                Some(mut c) => ovsdb::destroy(&mut c, &id),
                None => Ok(Vec::new()),
            }
        })
        .await?;
    }
    // The host table next: it exists only for this container and deleting an absent
    // one is fine, so this needs no observation.
    {
        let (hp, id) = (host_path.to_owned(), id.clone());
        // Looked up first: deleting even an absent table queues work for the kernel's
        // nf_tables destroy list, and closing the socket then waits an RCU grace period.
        let removed = blocking("delete host nftables table", move || {
            if matches!(nft::host::observe_host(&hp, &id)?, nft::HostState::Absent) {
                return Ok(false);
            }
            nft::host::remove_host(&hp, &id).map(|()| true)
        })
        .await?;
        if removed {
            count.bump();
        }
    }
    // Whether netprov may work inside the netns: an adopted one, or /run/netns/<id> when
    // it is netprov's (its owner mark, see netns_owner). A foreign handle is left whole.
    let mut inside = None;
    let handle_ok = if owned {
        match crate::netns_owner::handle(&path) {
            Ok(h) => h == crate::netns_owner::Handle::Netns,
            Err(e) => {
                rep.netns_not_ours = Some(e.to_string());
                false
            }
        }
    } else {
        netns::is_handle(&path)
    };
    if handle_ok {
        let nl = Netlink::open(Some(&path), rt, label.clone())?;
        let st = observe::container_ns(&nl).await?;
        let who = crate::netns_owner::owner(&id, &st.links);
        if owned && !who.is_ours() {
            rep.netns_not_ours = Some(crate::netns_owner::not_ours(&id, &path, &who).to_string());
        } else {
            inside = Some((nl, st));
        }
    }
    if inside.is_some() && !owned {
        // An adopted netns outlives netprov: remove exactly the tables netprov loaded
        // (recorded in its marker), never the others. An owned netns takes its ruleset
        // with it.
        let ns = path.clone();
        let st = blocking("list nftables ruleset", move || nft::ruleset::observe(&ns)).await?;
        if st != RulesetState::Absent {
            let (ns, id) = (path.clone(), id.to_string());
            count.bump();
            rep.ruleset_removed = blocking("remove nftables tables", move || {
                nft::ruleset::remove_adopted(&ns, &id)
            })
            .await?;
        }
    }
    // An owned netns goes in bulk (see netns_release): these host ends go with it.
    let mut peers = Vec::new();
    if let Some((nl, st)) = inside {
        if owned {
            peers = crate::netns_release::host_peers(host, &id, &st, &calias).await?;
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
                crate::netns_owner::adopted_routes(d, &st, &want)
            }
            // An owned netns: its routes go with it.
            _ => Vec::new(),
        };
        for r in &routes {
            // Routes through links about to be deleted go with them; the rest (gateway
            // routes) are deleted here so an adopted netns keeps none of netprov's.
            let oif = r
                .dev
                .as_ref()
                .and_then(|d| st.links.get(d))
                .map(|l| l.index);
            match nl.mutate(route::delete(r, oif), 0, &count).await {
                Ok(()) => rep.routes_deleted += 1,
                Err(e) if e == libc::ESRCH || e == libc::ENOENT => {}
                Err(e) => return Err(OpError::errno(format!("delete route {r} in {label}"), e)),
            }
        }
        // Macvlans first (their parent may be a veth about to go), then the rest.
        let mut links: Vec<_> = st.links.values().filter(|l| l.name != "lo").collect();
        links.sort_by_key(|l| l.kind != link::Kind::Macvlan);
        for l in links {
            if l.owned_as(&calias) && owned {
                // Deleted by the kernel's netns cleanup, host ends included.
                rep.links_deleted.push(format!("{} ({label})", l.name));
            } else if l.owned_as(&calias) {
                match nl.mutate(link::delete(l.index), 0, &count).await {
                    // ENODEV: it went with its parent or peer.
                    Ok(()) | Err(libc::ENODEV) => {}
                    // An OVS internal port cannot be deleted through rtnetlink; it dies
                    // with the netns (the OVSDB layer removes its port).
                    Err(libc::EOPNOTSUPP) if owned => {}
                    Err(e) => {
                        return Err(OpError::errno(
                            format!("delete link {} in {label}", l.name),
                            e,
                        ))
                    }
                }
                rep.links_deleted.push(format!("{} ({label})", l.name));
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
                        return Err(OpError::errno(
                            format!("move {} back to the host netns from {label}", l.name),
                            e,
                        ))
                    }
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
            let got = host
                .get(link::get_by_name(host_end.as_str()))
                .await
                .map_err(|e| OpError::errno(format!("get link {host_end} in host netns"), e))?;
            if let Some(RouteNetlinkMessage::NewLink(m)) = got {
                let l = link::LinkState::parse(&m);
                if l.alias.as_deref() == Some(halias.as_str()) {
                    match host.mutate(link::delete(l.index), 0, &count).await {
                        Ok(()) | Err(libc::ENODEV) => {}
                        Err(e) => {
                            return Err(OpError::errno(
                                format!("delete link {host_end} in host netns"),
                                e,
                            ))
                        }
                    }
                    rep.links_deleted.push(format!("{host_end} (host netns)"));
                }
            }
        }
    }
    if owned && rep.netns_not_ours.is_none() {
        // Subscribed before the netns is released, so no deletion is missed.
        let watch = if peers.is_empty() {
            None
        } else {
            Some(crate::netns_release::LinkWatch::open(host_path)?)
        };
        rep.netns_removed = path.exists();
        netns::remove_handle(&path)?;
        if let Some(w) = watch {
            crate::netns_release::await_peers(host, w, &peers, &count).await?;
        }
    }
    rep.messages = count.get();
    Ok(rep)
}
