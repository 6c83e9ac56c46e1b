//! Observe: read the kernel state that one container's `Desired` talks about.
//!
//! Cost is O(this container): in the host netns only RTM_GETLINK by name for the
//! links the container names, and address/route dumps filtered by the kernel to those
//! links (and to netprov's route protocol). The container netns is small and private,
//! so it is dumped whole.

use std::collections::BTreeMap;
use std::path::Path;

use netlink_packet_route::RouteNetlinkMessage;
use serde::{Deserialize, Serialize};

use crate::error::OpError;
use crate::kernel::address;
use crate::kernel::link;
use crate::kernel::netlink::Netlink;
use crate::kernel::route::{self, RouteSpec, RouteState};
use crate::kernel::sysctl;
use crate::model::{Desired, InterfaceKind, OvsStyle};
use crate::nft::{self, HostState, RulesetState};

pub use crate::kernel::state::NsState;

/// Kernel state relevant to one container. (De)serialisable: the golden diff cases
/// (`tests/diff_cases/*/observed.json`) are this, as JSON.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Observed {
    /// The container netns handle exists (for an owned netns) / is openable (adopted).
    pub netns_exists: bool,
    /// Inside the container netns (empty when it does not exist).
    pub container: NsState,
    /// The host-netns links this container names (veth host ends, bridges, OVS
    /// internal ports and existing links still in the host), their addresses and
    /// netprov routes through them. Only those: never the whole host.
    pub host: NsState,
    /// Current sysctl values by key (`None`: unreadable).
    pub sysctls: BTreeMap<String, Option<String>>,
    /// The container netns's nftables ruleset (`None`: the netns does not exist).
    pub ruleset: Option<RulesetState>,
    /// The container's host table `inet netprov-<id>` (`None` reads as absent).
    pub host_rules: Option<HostState>,
    /// The container's OVSDB rows (`None`: it has no OVS interface; OVSDB not asked).
    pub ovs: Option<crate::ovsdb::Observed>,
    /// OVSDB Interface rows named like an existing-link interface still in the host:
    /// name → Interface type (see diff/existing.rs).
    pub ovsdb_interfaces: BTreeMap<String, String>,
    /// The container's OVN logical ports and this chassis (`None`: OVN not asked).
    pub ovn: Option<crate::ovn::Observed>,
}

fn errno_op(op: String) -> impl Fn(i32) -> OpError {
    move |e| OpError::errno(op.clone(), e)
}

fn resolve_dev(s: RouteState, names: &BTreeMap<u32, String>) -> RouteSpec {
    RouteSpec {
        dest: s.dest,
        gateway: s.gateway,
        dev: s.oif.and_then(|i| names.get(&i).cloned()),
        metric: s.metric,
    }
}

/// Reads the whole (small) container netns.
pub async fn container_ns(nl: &Netlink) -> Result<NsState, OpError> {
    let mut st = NsState::default();
    let links = nl
        .dump_links(link::dump())
        .await
        .map_err(errno_op(format!("list links in {}", nl.label)))?;
    let mut names = BTreeMap::new();
    for l in links {
        names.insert(l.index, l.name.clone());
        st.links.insert(l.name.clone(), l);
    }
    let addrs = nl
        .dump(address::dump(None))
        .await
        .map_err(errno_op(format!("list addresses in {}", nl.label)))?;
    for m in addrs {
        if let RouteNetlinkMessage::NewAddress(m) = m {
            if let Some((idx, a)) = address::parse(&m) {
                if !address::is_kernel_link_local(&a) {
                    st.addrs.entry(idx).or_default().push(a);
                }
            }
        }
    }
    for v6 in [false, true] {
        let routes = nl
            .dump(route::dump(v6, None))
            .await
            .map_err(errno_op(format!("list routes in {}", nl.label)))?;
        for m in routes {
            if let RouteNetlinkMessage::NewRoute(m) = m {
                if let Some(r) = route::parse(&m) {
                    st.routes.push(resolve_dev(r, &names));
                }
            }
        }
    }
    Ok(st)
}

/// Host links this apply created, by name, with the netprov routes it added through
/// each: what the verifying observe after a pass may check route by route instead of
/// listing. A link made by this apply can carry no older netprov route, so its netprov
/// routes are exactly those added, unless the kernel dropped or changed one — which a
/// lookup of each shows. The listing it replaces is a dump that walks every route of
/// the host's main table (the kernel has no per-device route list): 0.3–0.9 ms in a
/// host with 1000 containers, more while the kernel's own IPv6 work holds the table.
/// The first observe of an apply, `plan` and `check` always list.
pub type FreshHostRoutes = BTreeMap<String, Vec<RouteSpec>>;

/// `want`, if a FIB lookup of each destination through `idx` finds exactly it: a
/// netprov route, the same prefix, metric, gateway and link. `None` (list instead) on
/// anything else: missing, shadowed, changed, or an error.
async fn looked_up(
    nl: &Netlink,
    want: &[RouteSpec],
    idx: u32,
    name: &str,
) -> Option<Vec<RouteSpec>> {
    let names = BTreeMap::from([(idx, name.to_owned())]);
    for w in want {
        let Ok(Some(RouteNetlinkMessage::NewRoute(m))) = nl.get(route::get_fib_match(w, idx)).await
        else {
            return None;
        };
        let found = route::parse(&m).map(|r| resolve_dev(r, &names));
        if found.as_ref() != Some(w) {
            return None;
        }
    }
    Some(want.to_vec())
}

/// Reads one host link by name, and — when netprov owns it or `with_state` — its
/// addresses and the netprov routes through it, all kernel-filtered (`fresh`: the
/// routes this apply added, if it created the link; see [`FreshHostRoutes`]).
async fn host_link(
    nl: &Netlink,
    name: &str,
    with_state: bool,
    fresh: Option<&[RouteSpec]>,
    st: &mut NsState,
) -> Result<(), OpError> {
    let got = nl
        .get_link(link::get_by_name(name))
        .await
        .map_err(errno_op(format!("get link {name} in host netns")))?;
    let Some(l) = got else {
        return Ok(());
    };
    if with_state && l.created_by_netprov() {
        let idx = l.index;
        let addrs = nl
            .dump(address::dump(Some(idx)))
            .await
            .map_err(errno_op(format!("list addresses of {name} in host netns")))?;
        for m in addrs {
            if let RouteNetlinkMessage::NewAddress(m) = m {
                if let Some((i, a)) = address::parse(&m) {
                    if i == idx && !address::is_kernel_link_local(&a) {
                        st.addrs.entry(idx).or_default().push(a);
                    }
                }
            }
        }
        if let Some(want) = fresh {
            if let Some(rs) = looked_up(nl, want, idx, name).await {
                st.routes.extend(rs);
                st.links.insert(name.to_owned(), l);
                return Ok(());
            }
        }
        let names = BTreeMap::from([(idx, name.to_owned())]);
        for v6 in [false, true] {
            let routes = nl
                .dump(route::dump(v6, Some(idx)))
                .await
                .map_err(errno_op(format!("list routes via {name} in host netns")))?;
            for m in routes {
                if let RouteNetlinkMessage::NewRoute(m) = m {
                    if let Some(r) = route::parse(&m) {
                        if r.oif == Some(idx) {
                            st.routes.push(resolve_dev(r, &names));
                        }
                    }
                }
            }
        }
    }
    st.links.insert(name.to_owned(), l);
    Ok(())
}

/// Reads the link with ifindex `index` into `st.links` (by its name).
async fn controller_link(nl: &Netlink, index: u32, st: &mut NsState) -> Result<(), OpError> {
    let got = nl
        .get_link(link::get_by_index(index))
        .await
        .map_err(errno_op(format!(
            "get link with ifindex {index} in host netns"
        )))?;
    if let Some(l) = got {
        st.links.entry(l.name.clone()).or_insert(l);
    }
    Ok(())
}

/// The container ruleset (when its netns exists) and the container's host table. Run
/// inline, not on the blocking pool: each is a few tiny netfilter requests (the ruleset
/// reads its marker and generation; a full listing only after a foreign commit), less
/// than handing them to another thread would cost.
async fn nftables(
    d: &Desired,
    host_path: &Path,
    expected: &nft::host::HostExpected,
    o: &mut Observed,
) -> Result<(), OpError> {
    if o.netns_exists {
        o.ruleset = Some(nft::ruleset::observe(d.netns.path())?);
    }
    o.host_rules = Some(nft::host::observe_host_for(host_path, expected)?);
    Ok(())
}

/// Observes everything `d` names. `container` is the container netns connection when
/// the netns exists; `host_path` is the host netns (for its nftables table, read and
/// told apart from a torn read by comparing with `expected`).
pub async fn observe(
    d: &Desired,
    host: &Netlink,
    host_path: &Path,
    container: Option<&Netlink>,
    expected: &nft::host::HostExpected,
    fresh: &FreshHostRoutes,
) -> Result<Observed, OpError> {
    let mut o = Observed {
        netns_exists: container.is_some(),
        ..Default::default()
    };
    if let Some(nl) = container {
        o.container = container_ns(nl).await?;
    }
    for i in &d.interfaces {
        let in_container = o.container.links.contains_key(i.name.as_str());
        match &i.kind {
            InterfaceKind::Veth(h) => {
                let f = fresh.get(h.name.as_str()).map(Vec::as_slice);
                host_link(host, h.name.as_str(), true, f, &mut o.host).await?;
                if let Some(b) = &h.bridge {
                    host_link(host, b.as_str(), false, None, &mut o.host).await?;
                }
            }
            InterfaceKind::Ovs(p) => match &p.style {
                OvsStyle::Veth { host: h } => {
                    let f = fresh.get(h.as_str()).map(Vec::as_slice);
                    host_link(host, h.as_str(), true, f, &mut o.host).await?
                }
                // Also when the device is in the container: a device of the same name
                // in the host means ovs-vswitchd restarted and the container's is dead.
                OvsStyle::Internal => {
                    host_link(host, i.name.as_str(), false, None, &mut o.host).await?
                }
            },
            // A netprov-made link of that name in the container is a leftover of
            // another kind (deleted by the plan): the existing link is in the host.
            InterfaceKind::Existing
                if !in_container || o.container.links[i.name.as_str()].created_by_netprov() =>
            {
                host_link(host, i.name.as_str(), false, None, &mut o.host).await?;
                // Its controller (bridge, bond, OVS datapath), so that refusing to take
                // a port away can name the owner (diff/existing.rs).
                let controller = o.host.links.get(i.name.as_str()).and_then(|l| l.controller);
                if let Some(c) = controller {
                    controller_link(host, c, &mut o.host).await?;
                }
            }
            InterfaceKind::Existing => {}
        }
    }
    if !d.sysctls.is_empty() {
        let keys: Vec<String> = d.sysctls.iter().map(|s| s.key.clone()).collect();
        let paths: Vec<String> = d.sysctls.iter().map(|s| s.path.clone()).collect();
        let values = if o.netns_exists {
            let sys = crate::kernel::procsys::for_netns_path(d.netns.path())?;
            crate::kernel::netns::in_netns_async(d.netns.path(), move || {
                sysctl::read_all(&sys, &paths)
            })
            .await?
        } else {
            vec![None; keys.len()]
        };
        o.sysctls = keys.into_iter().zip(values).collect();
    }
    nftables(d, host_path, expected, &mut o).await?;
    Ok(o)
}
