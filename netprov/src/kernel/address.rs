//! Addresses: reading them (dumps filtered by ifindex) and RTM_NEWADDR/DELADDR.
//!
//! Only permanent addresses are netprov's business. Kernel-generated IPv6 link-local
//! addresses (fe80::/10) are permanent too but belong to the kernel, so they are
//! ignored unless explicitly desired.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// Whether the kernel owns this address (IPv6 link-local).
pub fn is_kernel_link_local(a: &IpNetwork) -> bool {
    matches!(a.ip(), IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// The permanent address in one RTM_NEWADDR, if it is one.
pub fn parse(m: &AddressMessage) -> Option<(u32, IpNetwork)> {
    let mut permanent = m.header.flags.contains(AddressHeaderFlags::Permanent);
    let mut addr = None;
    let mut local = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Address(ip) => addr = Some(*ip),
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Flags(f) => permanent = f.contains(AddressFlags::Permanent),
            _ => {}
        }
    }
    // IPv4: IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on
    // point-to-point links); IPv6 has only IFA_ADDRESS.
    let ip = local.or(addr)?;
    if !permanent {
        return None;
    }
    let net = IpNetwork::new(ip, m.header.prefix_len).ok()?;
    Some((m.header.index, net))
}

/// Address dump; `index` restricts it to one link (kernel-side, with strict checking).
pub fn dump(index: Option<u32>) -> RouteNetlinkMessage {
    let mut m = AddressMessage::default();
    if let Some(i) = index {
        m.header.index = i;
    }
    RouteNetlinkMessage::GetAddress(m)
}

fn message(index: u32, a: &IpNetwork) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = a.prefix();
    match a.ip() {
        IpAddr::V4(_) => {
            m.header.family = AddressFamily::Inet;
            m.attributes.push(AddressAttribute::Local(a.ip()));
            m.attributes.push(AddressAttribute::Address(a.ip()));
        }
        IpAddr::V6(_) => {
            m.header.family = AddressFamily::Inet6;
            m.attributes.push(AddressAttribute::Address(a.ip()));
        }
    }
    m
}

/// RTM_NEWADDR. IPv6 addresses skip duplicate address detection (`IFA_F_NODAD`): the
/// addresses are assigned by the provisioner, and a tentative address would make the
/// container's network unusable for the first seconds after apply.
pub fn add(index: u32, a: &IpNetwork) -> RouteNetlinkMessage {
    let mut m = message(index, a);
    if a.is_ipv6() {
        m.attributes.push(AddressAttribute::Flags(
            AddressFlags::Nodad | AddressFlags::Permanent,
        ));
    }
    RouteNetlinkMessage::NewAddress(m)
}

pub fn delete(index: u32, a: &IpNetwork) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelAddress(message(index, a))
}
