//! Routes netprov manages, and the RTM_*ROUTE messages for them.
//!
//! Every route netprov adds carries `rtm_protocol` [`RTPROT_NETPROV`] (77, unassigned in
//! iproute2's `rt_protos`). Observation dumps only that protocol, kernel-side, so routes
//! of other origins (kernel prefix routes, DHCP, the admin's static routes) are never
//! seen, compared or deleted. Routes are identified by (destination, metric) in the
//! main table and written with `NLM_F_REPLACE`.

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::{Deserialize, Serialize};

use crate::marks::RTPROT_NETPROV;

/// The kernel's default metric when none is given: 0 for IPv4, 1024 for IPv6.
pub fn default_metric(dest: &IpNetwork) -> u32 {
    if dest.is_ipv4() {
        0
    } else {
        1024
    }
}

/// A route as netprov wants or sees it (main table, protocol netprov).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    #[serde(serialize_with = "crate::ser::display")]
    pub dest: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Output interface name.
    pub dev: Option<String>,
    pub metric: u32,
}

impl RouteSpec {
    /// Same key: the kernel would replace one with the other.
    pub fn same_key(&self, o: &RouteSpec) -> bool {
        self.dest == o.dest && self.metric == o.metric
    }
    /// Equal as far as the desired side cares (no `dev` in the desire = any dev).
    pub fn satisfied_by(&self, o: &RouteSpec) -> bool {
        self.same_key(o) && self.gateway == o.gateway && (self.dev.is_none() || self.dev == o.dev)
    }
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dest.prefix() == 0 {
            write!(f, "default")?;
            if self.dest.is_ipv6() {
                write!(f, " (IPv6)")?;
            }
        } else {
            write!(f, "{}", self.dest)?;
        }
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        if self.metric != default_metric(&self.dest) {
            write!(f, " metric {}", self.metric)?;
        }
        Ok(())
    }
}

/// One observed netprov route: the spec (dev resolved by the caller from `oif`).
#[derive(Debug, Clone)]
pub struct RouteState {
    pub dest: IpNetwork,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: u32,
}

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

pub fn parse(m: &RouteMessage) -> Option<RouteState> {
    if m.header.protocol != RouteProtocol::from(RTPROT_NETPROV)
        || m.header.table != RouteHeader::RT_TABLE_MAIN
    {
        return None;
    }
    let v4 = m.header.address_family == AddressFamily::Inet;
    let mut dest = if v4 {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    let mut s = RouteState {
        dest: IpNetwork::new(dest, 0).ok()?,
        gateway: None,
        oif: None,
        metric: 0,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dest = addr(d)?,
            RouteAttribute::Gateway(g) => s.gateway = addr(g),
            RouteAttribute::Oif(i) => s.oif = Some(*i),
            RouteAttribute::Priority(p) => s.metric = *p,
            _ => {}
        }
    }
    s.dest = IpNetwork::new(dest, m.header.destination_prefix_length).ok()?;
    Some(s)
}

/// Dump of netprov's routes of one family in the main table, optionally only those
/// through `oif` — all filtered by the kernel (strict check).
pub fn dump(v6: bool, oif: Option<u32>) -> RouteNetlinkMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::from(RTPROT_NETPROV);
    if let Some(i) = oif {
        m.attributes.push(RouteAttribute::Oif(i));
    }
    RouteNetlinkMessage::GetRoute(m)
}

/// RTM_GETROUTE for the route the kernel would use to reach `r`'s destination
/// through `oif` (`RTM_F_FIB_MATCH`: the FIB entry itself, with its protocol, metric
/// and gateway, not the resolved cache entry). A lookup, not a dump: it costs the same
/// in a host with a thousand routes as in an empty one. It answers with the most
/// specific, best route, which is `r` only if nothing shadows it: the caller compares.
pub fn get_fib_match(r: &RouteSpec, oif: u32) -> RouteNetlinkMessage {
    use netlink_packet_route::route::RouteFlags;
    let mut m = RouteMessage::default();
    m.header.address_family = if r.dest.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.destination_prefix_length = if r.dest.is_ipv4() { 32 } else { 128 };
    m.header.flags = RouteFlags::FibMatch;
    m.attributes
        .push(RouteAttribute::Destination(match r.dest.network() {
            IpAddr::V4(v) => RouteAddress::Inet(v),
            IpAddr::V6(v) => RouteAddress::Inet6(v),
        }));
    m.attributes.push(RouteAttribute::Oif(oif));
    RouteNetlinkMessage::GetRoute(m)
}

fn message(
    dest: &IpNetwork,
    gateway: Option<IpAddr>,
    oif: Option<u32>,
    metric: u32,
) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = if dest.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.destination_prefix_length = dest.prefix();
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::from(RTPROT_NETPROV);
    m.header.kind = RouteType::Unicast;
    m.header.scope = if gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    if dest.prefix() > 0 {
        let d = match dest.network() {
            IpAddr::V4(v) => RouteAddress::Inet(v),
            IpAddr::V6(v) => RouteAddress::Inet6(v),
        };
        m.attributes.push(RouteAttribute::Destination(d));
    }
    if let Some(g) = gateway {
        let g = match g {
            IpAddr::V4(v) => RouteAddress::Inet(v),
            IpAddr::V6(v) => RouteAddress::Inet6(v),
        };
        m.attributes.push(RouteAttribute::Gateway(g));
    }
    if let Some(i) = oif {
        m.attributes.push(RouteAttribute::Oif(i));
    }
    m.attributes.push(RouteAttribute::Priority(metric));
    m
}

/// RTM_NEWROUTE, to be sent with `NLM_F_CREATE | NLM_F_REPLACE`.
pub fn replace(r: &RouteSpec, oif: Option<u32>) -> RouteNetlinkMessage {
    RouteNetlinkMessage::NewRoute(message(&r.dest, r.gateway, oif, r.metric))
}

pub fn delete(r: &RouteSpec, oif: Option<u32>) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelRoute(message(&r.dest, r.gateway, oif, r.metric))
}
