//! `netprov status <id>`: one container's links, OVS ports, nftables state and drift.

use std::collections::BTreeMap;
use std::path::PathBuf;

use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use serde::Serialize;
use serde_json::Value;

use super::list::{sync_of, SyncState};
use super::scan::{links_of, query_ovsdb, select_all};
use super::{load_props, machine_running, netns_processes, props_files, Places};
use crate::engine::Engine;
use crate::error::OpError;
use crate::kernel::address;
use crate::kernel::link::{self, LinkState};
use crate::kernel::netlink::Netlink;
use crate::kernel::netns_owner;
use crate::marks::alias_owner;
use crate::model::{ContainerId, NetnsSpec};
use crate::nft::{self, HostState, RulesetState};
use crate::ovsdb::ops::{optional_member, parse_string_map, parse_uuid, set_members};
use crate::ovsdb::port::OWNER_KEY;
use crate::ovsdb::Client;

/// One link in `netprov status`.
#[derive(Debug, Clone, Serialize)]
pub struct LinkStatus {
    pub name: String,
    /// "host" or "netns".
    pub side: &'static str,
    pub kind: String,
    pub up: bool,
    pub addresses: Vec<String>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// One OVS port in `netprov status`.
#[derive(Debug, Clone, Serialize)]
pub struct PortStatus {
    pub name: String,
    pub ofport: Option<i64>,
    pub tag: Option<i64>,
    pub trunks: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `netprov status <id>`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub props: Option<PathBuf>,
    pub running: bool,
    pub processes: Vec<u32>,
    pub links: Vec<LinkStatus>,
    pub ovs_ports: Vec<PortStatus>,
    /// Digest of the container ruleset netprov loaded (`None`: none loaded).
    pub nft_digest: Option<String>,
    /// The live ruleset is still what netprov loaded.
    pub nft_intact: Option<bool>,
    /// The host table `inet netprov-<id>` exists (whether it holds what the props
    /// generate is part of `sync`).
    pub host_table: bool,
    pub sync: SyncState,
    /// `/run/netns/<id>` exists but is not netprov's (nothing in it is shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_not_ours: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ovsdb_skipped: Option<String>,
}

fn link_status(m: &LinkMessage, side: &'static str, addrs: &[String]) -> LinkStatus {
    let l = LinkState::parse(m);
    let mut s = LinkStatus {
        name: l.name.clone(),
        side,
        kind: match &l.kind {
            link::Kind::Veth => "veth".into(),
            link::Kind::Macvlan => "macvlan".into(),
            link::Kind::Bridge => "bridge".into(),
            link::Kind::Other(k) => k.clone(),
            link::Kind::Unknown => "device".into(),
        },
        up: l.up,
        addresses: addrs.to_vec(),
        rx_packets: 0,
        rx_bytes: 0,
        tx_packets: 0,
        tx_bytes: 0,
        rx_dropped: 0,
        tx_dropped: 0,
    };
    for a in &m.attributes {
        if let LinkAttribute::Stats64(st) = a {
            s.rx_packets = st.rx_packets;
            s.rx_bytes = st.rx_bytes;
            s.tx_packets = st.tx_packets;
            s.tx_bytes = st.tx_bytes;
            s.rx_dropped = st.rx_dropped;
            s.tx_dropped = st.tx_dropped;
        }
    }
    s
}

/// Links of one netns (all, or only those `keep` accepts), with addresses and counters.
async fn links_with_state(
    nl: &Netlink,
    side: &'static str,
    keep: impl Fn(&LinkState) -> bool,
) -> Result<Vec<LinkStatus>, OpError> {
    let links = nl
        .dump(link::dump_with_stats())
        .await
        .map_err(|e| OpError::errno(format!("list links in {}", nl.label), e))?;
    let addrs = nl
        .dump(address::dump(None))
        .await
        .map_err(|e| OpError::errno(format!("list addresses in {}", nl.label), e))?;
    let mut by_index: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for m in addrs {
        if let RouteNetlinkMessage::NewAddress(m) = m {
            if let Some((i, a)) = address::parse(&m) {
                by_index.entry(i).or_default().push(a.to_string());
            }
        }
    }
    Ok(links
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(m) => Some(m),
            _ => None,
        })
        .filter(|m| keep(&LinkState::parse(m)))
        .map(|m| {
            let a = by_index.get(&m.header.index).cloned().unwrap_or_default();
            link_status(m, side, &a)
        })
        .collect())
}

/// `netprov status <id>`: its links (host ends and the netns's) with addresses and
/// counters, its OVS ports with ofport and VLAN, the nftables digests and the drift
/// against its props file.
pub fn status(engine: &Engine, places: &Places, id: &ContainerId) -> Result<Status, OpError> {
    let (host, host_path, rt, ep) = engine.parts();
    let props = props_files(&places.props_dir).remove(id.as_str());
    let (netns, owned) = match props.as_deref().map(load_props) {
        Some(Ok(d)) => (
            d.netns.path().clone(),
            matches!(d.netns, NetnsSpec::Owned { .. }),
        ),
        _ => (crate::marks::netns_path(id), true),
    };
    let alias_of = |l: &LinkState| l.alias.as_deref().and_then(alias_owner).as_ref() == Some(id);
    let mut links = rt.block_on(links_with_state(host, "host", alias_of))?;
    let mut processes = Vec::new();
    let mut nft_digest = None;
    let mut nft_intact = None;
    let mut netns_not_ours = None;
    // An owned handle is checked without following a symlink, and shown only when it
    // carries this container's mark: a foreign /run/netns/<id> is not this container's.
    let usable = if owned {
        netns_owner::handle(&netns).ok() == Some(netns_owner::Handle::Netns)
    } else {
        crate::kernel::netns_owner::is_handle(&netns)
    };
    if usable {
        let nl = Netlink::open(Some(&netns), format!("netns {id}"))?;
        let who = crate::kernel::owned::netns_owner(id, &rt.block_on(links_of(&nl))?);
        if owned && !who.is_ours() {
            netns_not_ours = Some(crate::marks::netns_not_ours(id, &netns, &who).to_string());
        } else {
            processes = netns_processes(&netns);
            links.extend(rt.block_on(links_with_state(&nl, "netns", |_| true))?);
            let state = nft::ruleset::observe(&netns).ok();
            if let Some(RulesetState::Loaded { source_digest, .. }) = &state {
                nft_digest = Some(source_digest.clone());
            }
            nft_intact = state.map(|r| r.is_intact());
        }
    }
    let host_table = matches!(
        nft::host::observe_host(host_path, id)?,
        HostState::Present(_)
    );
    let idc = id.clone();
    let (ovs_ports, ovsdb_skipped) = match query_ovsdb(rt, ep, move |c| port_status(c, &idc)) {
        Ok(p) => (p, None),
        Err(why) => (Vec::new(), Some(why)),
    };
    Ok(Status {
        id: id.to_string(),
        running: machine_running(places, id.as_str()),
        sync: sync_of(engine, props.as_ref()),
        props,
        processes,
        links,
        ovs_ports,
        nft_digest,
        nft_intact,
        host_table,
        netns_not_ours,
        ovsdb_skipped,
    })
}

fn port_status(c: &mut Client, id: &ContainerId) -> Result<Vec<PortStatus>, OpError> {
    let ports = select_all(
        c,
        "Port",
        &["name", "tag", "trunks", "external_ids", "interfaces"],
    )?;
    let ifaces = select_all(c, "Interface", &["_uuid", "ofport", "error"])?;
    let by_uuid: BTreeMap<String, &Value> = ifaces
        .iter()
        .filter_map(|r| Some((parse_uuid(&r["_uuid"])?, r)))
        .collect();
    Ok(ports
        .iter()
        .filter(|r| {
            parse_string_map(&r["external_ids"])
                .get(OWNER_KEY)
                .map(String::as_str)
                == Some(id.as_str())
        })
        .map(|r| {
            let iface = set_members(&r["interfaces"])
                .iter()
                .filter_map(parse_uuid)
                .find_map(|u| by_uuid.get(&u).copied());
            PortStatus {
                name: r["name"].as_str().unwrap_or_default().to_owned(),
                tag: optional_member(&r["tag"]).and_then(|v| v.as_i64()),
                trunks: set_members(&r["trunks"])
                    .iter()
                    .filter_map(Value::as_i64)
                    .collect(),
                ofport: iface
                    .and_then(|i| optional_member(&i["ofport"]))
                    .and_then(|v| v.as_i64()),
                error: iface
                    .and_then(|i| optional_member(&i["error"]))
                    .and_then(|v| v.as_str().map(str::to_owned)),
            }
        })
        .collect())
}
