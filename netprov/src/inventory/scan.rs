//! The host-wide scan: every object netprov's marks attribute to a container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use netlink_packet_route::RouteNetlinkMessage;
use serde::Serialize;
use serde_json::Value;

use crate::blocking::blocking;
use crate::engine::Engine;
use crate::error::OpError;
use crate::kernel::link::{self, LinkState};
use crate::kernel::netlink::Netlink;
use crate::kernel::netns_owner;
use crate::kernel::route;
use crate::marks::{alias_owner, Owner};
use crate::model::ContainerId;
use crate::nft;
use crate::ovsdb::ops::{parse_string_map, Op};
use crate::ovsdb::port::OWNER_KEY;
use crate::ovsdb::{Client, Endpoint, Txn};

/// The objects one container has on this host, by their marks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Holdings {
    /// `/run/netns/<id>` is there and carries the owner mark (or, from an older netprov,
    /// holds links with this container's alias: `netns_unmarked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub netns_unmarked: bool,
    /// Host-netns links with this container's alias (veth host ends, ports back in the
    /// host).
    pub host_links: Vec<String>,
    /// Protocol-77 routes in the host netns through those links.
    pub host_routes: Vec<String>,
    /// The host nftables table `inet netprov-<id>` exists.
    pub host_table: bool,
    /// OVS ports marked `external_ids:netprov-id=<id>`.
    pub ovs_ports: Vec<String>,
    /// A veth host end's peer lives in another netns although `/run/netns/<id>` is not
    /// there: something (a process, a bind mount elsewhere) still holds the container's
    /// netns. Its processes cannot be told from here, so such a container is never
    /// collected.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held_elsewhere: bool,
}

impl Holdings {
    pub fn is_empty(&self) -> bool {
        self == &Holdings::default()
    }

    /// "netns, 2 links, 1 route, host table, 1 OVS port".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.netns.is_some() {
            parts.push(if self.netns_unmarked {
                "netns (unmarked)".to_owned()
            } else {
                "netns".to_owned()
            });
        } else if self.held_elsewhere {
            parts.push("netns held elsewhere (no /run/netns handle)".to_owned());
        }
        let n =
            |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        if !self.host_links.is_empty() {
            parts.push(n(self.host_links.len(), "host link", "host links"));
        }
        if !self.host_routes.is_empty() {
            parts.push(n(self.host_routes.len(), "route", "routes"));
        }
        if self.host_table {
            parts.push("host table".into());
        }
        if !self.ovs_ports.is_empty() {
            parts.push(n(self.ovs_ports.len(), "OVS port", "OVS ports"));
        }
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Everything netprov owns on this host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scan {
    pub ids: BTreeMap<String, Holdings>,
    /// netprov's objects whose container is unknown: links in netprov's group without
    /// alias (a creation interrupted before its mark; the next apply of their container
    /// finishes it) and protocol-77 host routes through links that are not netprov's.
    /// Listed, never collected.
    pub unattributed: Vec<String>,
    /// OVSDB was not consulted: why (no socket, or unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ovsdb_skipped: Option<String>,
}

/// Scans the host netns, `/run/netns` and OVSDB for netprov's objects.
pub fn scan(engine: &Engine) -> Result<Scan, OpError> {
    let (host, host_path, rt, ep) = engine.parts();
    let mut s = Scan::default();
    rt.block_on(scan_host(host, &mut s))?;
    for id in nft::host::list_host_tables(host_path)? {
        s.ids.entry(id.to_string()).or_default().host_table = true;
    }
    rt.block_on(scan_netns(&mut s));
    match query_ovsdb(rt, ep, ovs_ports) {
        Ok(ports) => {
            for (port, id) in ports {
                s.ids.entry(id).or_default().ovs_ports.push(port);
            }
        }
        Err(why) => s.ovsdb_skipped = Some(why),
    }
    Ok(s)
}

async fn scan_host(host: &Netlink, s: &mut Scan) -> Result<(), OpError> {
    let links = host
        .dump_links(link::dump())
        .await
        .map_err(|e| OpError::errno("list links in host netns", e))?;
    let mut owner_of = BTreeMap::new();
    let mut names = BTreeMap::new();
    for l in links {
        names.insert(l.index, l.name.clone());
        match l.alias.as_deref().and_then(alias_owner) {
            Some(id) => {
                let h = s.ids.entry(id.to_string()).or_default();
                h.host_links.push(l.name.clone());
                h.held_elsewhere |= l.kind == link::Kind::Veth && l.link_netnsid.is_some();
                owner_of.insert(l.index, id.to_string());
            }
            None if l.has_mark(None) => s
                .unattributed
                .push(format!("link {} (netprov's group, no alias)", l.name)),
            None => {}
        }
    }
    for v6 in [false, true] {
        let routes = host
            .dump(route::dump(v6, None))
            .await
            .map_err(|e| OpError::errno("list netprov routes in host netns", e))?;
        for m in routes {
            let RouteNetlinkMessage::NewRoute(m) = m else {
                continue;
            };
            let Some(r) = route::parse(&m) else { continue };
            let spec = route::RouteSpec {
                dest: r.dest,
                gateway: r.gateway,
                dev: r.oif.and_then(|i| names.get(&i).cloned()),
                metric: r.metric,
            };
            match r.oif.and_then(|i| owner_of.get(&i)) {
                Some(id) => s
                    .ids
                    .entry(id.clone())
                    .or_default()
                    .host_routes
                    .push(spec.to_string()),
                None => s.unattributed.push(format!("route {spec} (protocol 77)")),
            }
        }
    }
    Ok(())
}

/// `/run/netns/<id>` handles that are netprov's for `<id>` (owner mark, or an older
/// netprov's links). Handles that vanish meanwhile, foreign ones and names that are no
/// valid id are skipped.
async fn scan_netns(s: &mut Scan) {
    let Ok(dir) = std::fs::read_dir(crate::marks::NETNS_DIR) else {
        return;
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let Ok(id) = ContainerId::new(&name) else {
            continue;
        };
        let path = Path::new(crate::marks::NETNS_DIR).join(&name);
        if netns_owner::handle(&path).ok() != Some(netns_owner::Handle::Netns) {
            continue;
        }
        let Ok(links) = netns_links(&path).await else {
            continue;
        };
        let o = crate::kernel::owned::netns_owner(&id, &links);
        if o.is_ours() {
            let h = s.ids.entry(name).or_default();
            h.netns = Some(path);
            h.netns_unmarked = o == Owner::Unmarked;
        }
    }
}

async fn netns_links(path: &Path) -> Result<BTreeMap<String, LinkState>, OpError> {
    let nl = Netlink::open(Some(path), format!("netns {}", path.display()))?;
    links_of(&nl).await
}

/// The links of the netns `nl` is bound to, by name.
pub(super) async fn links_of(nl: &Netlink) -> Result<BTreeMap<String, LinkState>, OpError> {
    let links = nl
        .dump_links(link::dump())
        .await
        .map_err(|e| OpError::errno(format!("list links in {}", nl.label), e))?;
    Ok(links.into_iter().map(|l| (l.name.clone(), l)).collect())
}

/// Runs `query` against OVSDB on a blocking thread. `Err(why)` when OVSDB was not
/// consulted: no socket (no OVS on this host), it does not answer, or the query failed.
pub(super) fn query_ovsdb<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    ep: Endpoint,
    query: impl FnOnce(&mut Client) -> Result<T, OpError> + Send + 'static,
) -> Result<T, String> {
    let res = rt.block_on(blocking(
        "list OVS ports",
        move || match Client::connect_if_present(&ep) {
            Ok(Some(mut c)) => query(&mut c).map(Ok),
            Ok(None) => Ok(Err(format!("no OVSDB socket at {}", ep.path().display()))),
            Err(e) => Ok(Err(e.to_string())),
        },
    ));
    res.unwrap_or_else(|e| Err(e.to_string()))
}

/// Every OVS port marked with a container id: `(port, id)`.
fn ovs_ports(c: &mut Client) -> Result<Vec<(String, String)>, OpError> {
    let rows = select_all(c, "Port", &["name", "external_ids"])?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let ids = parse_string_map(&r["external_ids"]);
            let owner = ids.get(OWNER_KEY)?;
            ContainerId::new(owner).ok()?;
            Some((r["name"].as_str()?.to_owned(), owner.clone()))
        })
        .collect())
}

pub(super) fn select_all(
    c: &mut Client,
    table: &'static str,
    columns: &[&'static str],
) -> Result<Vec<Value>, OpError> {
    let mut txn = Txn::new();
    txn.push(
        Op::Select {
            table,
            conds: vec![],
            columns: columns.to_vec(),
        },
        None,
    );
    let res = c
        .transact(&format!("list OVS {table} rows"), &txn)
        .map_err(OpError::from)?;
    Ok(res
        .first()
        .and_then(|r| r["rows"].as_array().cloned())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdings_summary() {
        let mut h = Holdings::default();
        assert_eq!(h.summary(), "nothing");
        h.netns = Some("/run/netns/web".into());
        h.host_links = vec!["ve-web-wan".into()];
        h.host_table = true;
        h.ovs_ports = vec!["a".into(), "b".into()];
        assert_eq!(h.summary(), "netns, 1 host link, host table, 2 OVS ports");
    }
}
