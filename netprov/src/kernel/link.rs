//! Links: what netprov reads about one (RTM_GETLINK by name or index) and the
//! RTM_NEWLINK/SETLINK/DELLINK messages it sends.
//!
//! Every link netprov creates is born in group [`NETPROV_GROUP`] (set in the creating
//! message) and named for its container by an alias set in the next message: the marks
//! and their checks are in [`crate::marks`].

use std::os::fd::RawFd;

use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, LinkAttribute,
    LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth};
use serde::{Deserialize, Serialize};

use crate::marks::NETPROV_GROUP;
use crate::model::MacAddr;

/// Link kinds netprov distinguishes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Veth,
    Macvlan,
    Bridge,
    Other(String),
    #[default]
    Unknown,
}

/// What netprov reads about a link. (De)serialisable for the golden diff cases
/// (`tests/diff_cases`): absent fields take their default, the MAC is text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    pub group: u32,
    pub kind: Kind,
    pub up: bool,
    pub mtu: Option<u32>,
    #[serde(with = "mac_text")]
    pub mac: Option<[u8; 6]>,
    /// `IFLA_LINK`: for a veth, the peer's ifindex (in the peer's netns); for a macvlan,
    /// its parent.
    pub link: Option<u32>,
    /// `IFLA_MASTER`.
    pub controller: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the peer lives in another netns.
    pub link_netnsid: Option<i32>,
    #[serde(with = "addrgenmode_number")]
    pub addrgenmode: Option<In6AddrGenMode>,
}

/// A link's MAC as `aa:bb:cc:dd:ee:ff` in JSON.
mod mac_text {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use crate::model::MacAddr;

    pub fn serialize<S: Serializer>(v: &Option<[u8; 6]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => s.collect_str(&MacAddr(*m)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 6]>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let bytes: Vec<u8> = text
            .split(':')
            .map(|b| u8::from_str_radix(b, 16))
            .collect::<Result<_, _>>()
            .map_err(|_| D::Error::custom(format!("{text:?} is not a MAC address")))?;
        <[u8; 6]>::try_from(bytes)
            .map(Some)
            .map_err(|_| D::Error::custom(format!("{text:?} is not a MAC address")))
    }
}

/// `IFLA_INET6_ADDR_GEN_MODE` as its kernel number in JSON.
mod addrgenmode_number {
    use netlink_packet_route::link::In6AddrGenMode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<In6AddrGenMode>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => s.serialize_u8(u8::from(m)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<In6AddrGenMode>, D::Error> {
        Ok(Option::<u8>::deserialize(d)?.map(In6AddrGenMode::from))
    }
}

impl LinkState {
    pub fn parse(m: &LinkMessage) -> Self {
        let mut s = LinkState {
            index: m.header.index,
            up: m.header.flags.contains(LinkFlags::Up),
            ..Default::default()
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => s.name = n.clone(),
                // An alias set to "" is the kernel's "no alias".
                LinkAttribute::IfAlias(n) if !n.is_empty() => s.alias = Some(n.clone()),
                LinkAttribute::Group(g) => s.group = *g,
                LinkAttribute::Mtu(v) => s.mtu = Some(*v),
                LinkAttribute::Address(a) if a.len() == 6 => {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(a);
                    s.mac = Some(mac);
                }
                LinkAttribute::Link(l) => s.link = Some(*l),
                LinkAttribute::Controller(c) => s.controller = Some(*c),
                LinkAttribute::LinkNetNsId(n) => s.link_netnsid = Some(*n),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            s.kind = match k {
                                InfoKind::Veth => Kind::Veth,
                                InfoKind::MacVlan => Kind::Macvlan,
                                InfoKind::Bridge => Kind::Bridge,
                                other => Kind::Other(other.to_string()),
                            };
                        }
                    }
                }
                LinkAttribute::AfSpecUnspec(specs) => {
                    for spec in specs {
                        if let AfSpecUnspec::Inet6(v) = spec {
                            for x in v {
                                if let AfSpecInet6::AddrGenMode(mode) = x {
                                    s.addrgenmode = Some(*mode);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        s
    }
}

/// A RTM_GETLINK request without the traffic counters, which nothing but `status`
/// reads: IFLA_STATS and IFLA_STATS64 are a quarter of a veth's reply, and filling
/// and parsing them is work on every observe (RTEXT_FILTER_SKIP_STATS, Linux 4.20; an
/// older kernel ignores the bit and sends them as before).
fn get_link(mut m: LinkMessage) -> RouteNetlinkMessage {
    m.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    RouteNetlinkMessage::GetLink(m)
}

/// RTM_GETLINK by name.
pub fn get_by_name(name: &str) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    get_link(m)
}

/// RTM_GETLINK by index.
pub fn get_by_index(index: u32) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    get_link(m)
}

/// RTM_GETLINK dump (used only inside a container netns, which is small).
pub fn dump() -> RouteNetlinkMessage {
    get_link(LinkMessage::default())
}

/// [`dump`] with the traffic counters (IFLA_STATS64), for `status`.
pub fn dump_with_stats() -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetLink(LinkMessage::default())
}

/// A veth pair: `host` here, `peer` created directly in the netns `peer_ns`.
/// Both ends are born in [`NETPROV_GROUP`]; `host` is born up too: the kernel applies
/// its `ifi_flags` once the pair is made (and removes both ends if that fails), so it
/// takes no request of its own. The peer cannot be: the kernel opens it before it links
/// the two ends, and a veth without its peer refuses to open (`ENOTCONN`).
pub fn new_veth(
    host: &str,
    peer: &str,
    peer_ns: RawFd,
    mtu: Option<u32>,
    peer_mac: Option<MacAddr>,
) -> RouteNetlinkMessage {
    let mut p = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer)
        .setns_by_fd(peer_ns)
        .link_group(NETPROV_GROUP);
    if let Some(mtu) = mtu {
        p = p.mtu(mtu);
    }
    if let Some(mac) = peer_mac {
        p = p.address(mac.0.to_vec());
    }
    let mut m = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host)
        .link_group(NETPROV_GROUP)
        .up();
    if let Some(mtu) = mtu {
        m = m.mtu(mtu);
    }
    let m = m.set_info_data(InfoData::Veth(InfoVeth::Peer(p.build())));
    RouteNetlinkMessage::NewLink(m.build())
}

/// A macvlan in bridge mode on top of `parent` (ifindex in the same netns).
pub fn new_macvlan(name: &str, parent: u32, mac: Option<MacAddr>) -> RouteNetlinkMessage {
    let mut m = LinkMessageBuilder::<LinkMacVlan>::new(name)
        .link(parent)
        .link_group(NETPROV_GROUP);
    if let Some(mac) = mac {
        m = m.address(mac.0.to_vec());
    }
    RouteNetlinkMessage::NewLink(m.mode(MacVlanMode::Bridge).build())
}

/// What one RTM_SETLINK changes on an existing link.
#[derive(Debug, Default, Clone)]
pub struct LinkChange {
    pub alias: Option<String>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub up: bool,
    pub controller: Option<u32>,
    /// Move to the netns of this fd (the kernel moves first, then applies the rest).
    pub netns_fd: Option<RawFd>,
    /// Set IPv6 address generation mode random (macvlan; before the link goes up).
    pub addrgen_random: bool,
}

pub fn set(index: u32, c: &LinkChange) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    set_attributes(m, c)
}

/// [`set`] for the link named `name`: with no index, the kernel finds the link by its
/// name (IFLA_IFNAME) when it runs the request, as a GETLINK by name would, so a
/// change needs no lookup first. Not for renames (IFLA_IFNAME is the lookup key here).
pub fn set_named(name: &str, c: &LinkChange) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    set_attributes(m, c)
}

fn set_attributes(mut m: LinkMessage, c: &LinkChange) -> RouteNetlinkMessage {
    if let Some(fd) = c.netns_fd {
        m.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    if let Some(a) = &c.alias {
        m.attributes.push(LinkAttribute::IfAlias(a.clone()));
    }
    if let Some(v) = c.mtu {
        m.attributes.push(LinkAttribute::Mtu(v));
    }
    if let Some(mac) = c.mac {
        m.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(ctl) = c.controller {
        m.attributes.push(LinkAttribute::Controller(ctl));
    }
    if c.addrgen_random {
        m.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::Random)],
            )]));
    }
    if c.up {
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
    }
    RouteNetlinkMessage::SetLink(m)
}

pub fn delete(index: u32) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    RouteNetlinkMessage::DelLink(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips_stats(m: RouteNetlinkMessage) -> bool {
        let RouteNetlinkMessage::GetLink(l) = m else {
            panic!("not a RTM_GETLINK: {m:?}")
        };
        l.attributes
            .contains(&LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]))
    }

    #[test]
    fn only_status_asks_for_traffic_counters() {
        assert!(skips_stats(get_by_name("web-wan")));
        assert!(skips_stats(get_by_index(7)));
        assert!(skips_stats(dump()));
        assert!(!skips_stats(dump_with_stats()));
    }
}
