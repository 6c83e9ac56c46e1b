//! A link as netprov reads it ([`LinkState`]), straight from the bytes of an
//! RTM_NEWLINK reply.
//!
//! Why not netlink-packet-route's parser: it builds the whole message — some forty
//! attributes of a veth, the per-protocol settings arrays under IFLA_AF_SPEC, each in
//! its own allocation — of which netprov keeps eleven fields. That was a tenth of a cold
//! apply's instructions and eight of its page faults (docs/benchmarks.md, round 11).
//! This reads the eleven and skips the rest. It keeps the old parser's meaning where it
//! matters: a name, alias or kind that is not UTF-8, or an attribute netprov reads whose
//! length is wrong, makes the message unreadable (the caller skips it, as before);
//! `kernel::link::LinkState::parse` stays the oracle its property test compares with.

use netlink_packet_route::link::In6AddrGenMode;

use super::link::{Kind, LinkState};
use super::nlsock::{attrs_checked, NLMSG_HDRLEN};

/// `sizeof(struct ifinfomsg)`.
const IFINFOMSG_LEN: usize = 16;
const IFF_UP: u32 = 1;

// <linux/if_link.h>
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_IFALIAS: u16 = 20;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_GROUP: u16 = 27;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
const AF_UNSPEC: u8 = 0;
const AF_INET6: u16 = 10;

/// Why a message could not be read.
pub type Unreadable = &'static str;

/// The link in one whole netlink message (header included) of type RTM_NEWLINK.
pub fn parse(msg: &[u8]) -> Result<LinkState, Unreadable> {
    let len = msg
        .get(..4)
        .map(|b| u32::from_ne_bytes(b.try_into().unwrap()) as usize)
        .ok_or("message shorter than its header")?;
    let msg = msg.get(..len).ok_or("message longer than its datagram")?;
    let hdr = msg
        .get(NLMSG_HDRLEN..NLMSG_HDRLEN + IFINFOMSG_LEN)
        .ok_or("message shorter than struct ifinfomsg")?;
    let family = hdr[0];
    let mut s = LinkState {
        index: u32::from_ne_bytes(hdr[4..8].try_into().unwrap()),
        up: u32::from_ne_bytes(hdr[8..12].try_into().unwrap()) & IFF_UP != 0,
        ..Default::default()
    };
    for nla in attrs_checked(&msg[NLMSG_HDRLEN + IFINFOMSG_LEN..]) {
        let (kind, v) = nla?;
        match kind {
            IFLA_IFNAME => s.name = string(v)?,
            // An alias set to "" is the kernel's "no alias".
            IFLA_IFALIAS => {
                let a = string(v)?;
                if !a.is_empty() {
                    s.alias = Some(a);
                }
            }
            IFLA_GROUP => s.group = u32_of(v)?,
            IFLA_MTU => s.mtu = Some(u32_of(v)?),
            IFLA_ADDRESS => {
                if let Ok(mac) = <[u8; 6]>::try_from(v) {
                    s.mac = Some(mac);
                }
            }
            IFLA_LINK => s.link = Some(u32_of(v)?),
            IFLA_MASTER => s.controller = Some(u32_of(v)?),
            IFLA_LINK_NETNSID => s.link_netnsid = Some(u32_of(v)? as i32),
            IFLA_LINKINFO => {
                for nla in attrs_checked(v) {
                    if let (IFLA_INFO_KIND, k) = nla? {
                        s.kind = match string(k)?.as_str() {
                            "veth" => Kind::Veth,
                            "macvlan" => Kind::Macvlan,
                            "bridge" => Kind::Bridge,
                            other => Kind::Other(other.to_owned()),
                        };
                    }
                }
            }
            // Per address family; only a message of family AF_UNSPEC (what netprov
            // asks for) has them so (a bridge port's AF_BRIDGE message differs).
            IFLA_AF_SPEC if family == AF_UNSPEC => {
                for nla in attrs_checked(v) {
                    if let (AF_INET6, inet6) = nla? {
                        for nla in attrs_checked(inet6) {
                            if let (IFLA_INET6_ADDR_GEN_MODE, m) = nla? {
                                let [m] = m else {
                                    return Err("IFLA_INET6_ADDR_GEN_MODE is not one byte");
                                };
                                s.addrgenmode = Some(In6AddrGenMode::from(*m));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

/// A string attribute: its bytes without the terminating NUL.
fn string(v: &[u8]) -> Result<String, Unreadable> {
    let v = v.strip_suffix(&[0]).unwrap_or(v);
    String::from_utf8(v.to_vec()).map_err(|_| "string attribute is not UTF-8")
}

fn u32_of(v: &[u8]) -> Result<u32, Unreadable> {
    <[u8; 4]>::try_from(v)
        .map(u32::from_ne_bytes)
        .map_err(|_| "integer attribute is not 4 bytes")
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};

    use crate::kernel::nlsock::testing::{in_fresh_netns, req};
    use netlink_packet_route::link::{
        AfSpecInet6, AfSpecUnspec, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
    };
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
    use proptest::prelude::*;

    use super::*;

    fn bytes(m: LinkMessage) -> Vec<u8> {
        req(RouteNetlinkMessage::NewLink(m), 0, 0)
    }

    /// What netlink-packet-route reads from the same bytes, through LinkState::parse.
    fn oracle(b: &[u8]) -> Option<LinkState> {
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(b) {
            Ok(NetlinkMessage {
                payload: NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)),
                ..
            }) => Some(LinkState::parse(&m)),
            _ => None,
        }
    }

    fn kind() -> impl Strategy<Value = InfoKind> {
        prop_oneof![
            Just(InfoKind::Veth),
            Just(InfoKind::MacVlan),
            Just(InfoKind::Bridge),
            Just(InfoKind::Dummy),
            Just(InfoKind::Vxlan),
            "[a-z]{1,12}".prop_map(|s| InfoKind::from(s.as_str())),
        ]
    }

    fn attribute() -> impl Strategy<Value = LinkAttribute> {
        prop_oneof![
            "\\PC{0,15}".prop_map(LinkAttribute::IfName),
            "\\PC{0,20}".prop_map(LinkAttribute::IfAlias),
            any::<u32>().prop_map(LinkAttribute::Group),
            any::<u32>().prop_map(LinkAttribute::Mtu),
            proptest::collection::vec(any::<u8>(), 0..9).prop_map(LinkAttribute::Address),
            any::<u32>().prop_map(LinkAttribute::Link),
            any::<u32>().prop_map(LinkAttribute::Controller),
            any::<i32>().prop_map(LinkAttribute::LinkNetNsId),
            kind().prop_map(|k| LinkAttribute::LinkInfo(vec![LinkInfo::Kind(k)])),
            any::<u8>().prop_map(
                |m| LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![
                    AfSpecInet6::RaMtu(m.into()),
                    AfSpecInet6::AddrGenMode(In6AddrGenMode::from(m)),
                ])])
            ),
            // What netprov does not read, around what it does.
            any::<u32>().prop_map(LinkAttribute::TxQueueLen),
            any::<u32>().prop_map(LinkAttribute::MinMtu),
            Just(LinkAttribute::OperState(State::Up)),
            "\\PC{0,8}".prop_map(LinkAttribute::Qdisc),
        ]
    }

    proptest! {
        /// Every link message netlink-packet-route writes reads the same both ways.
        #[test]
        fn reads_what_netlink_packet_route_reads(
            index in any::<u32>(),
            up in any::<bool>(),
            family in prop_oneof![Just(AddressFamily::Unspec), Just(AddressFamily::Bridge)],
            attrs in proptest::collection::vec(attribute(), 0..14),
        ) {
            let mut m = LinkMessage::default();
            m.header.index = index;
            m.header.interface_family = family;
            if up {
                m.header.flags = LinkFlags::Up | LinkFlags::Running;
            }
            m.attributes = attrs;
            let b = bytes(m);
            prop_assert_eq!(parse(&b).ok(), oracle(&b));
        }

        /// Arbitrary bytes never panic, and a message the old parser refused as a
        /// whole is not read as a link with a garbled name.
        #[test]
        fn survives_any_bytes(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = bytes(LinkMessage::default());
            b.extend_from_slice(&tail);
            let len = b.len() as u32;
            b[..4].copy_from_slice(&len.to_ne_bytes());
            if let (Ok(ours), Some(theirs)) = (parse(&b), oracle(&b)) {
                prop_assert_eq!(ours.name, theirs.name);
            }
        }
    }

    /// Real links from the kernel, of every kind netprov tells apart, read both ways.
    #[test]
    fn reads_the_kernels_links_as_netlink_packet_route_does() {
        use crate::kernel::link;
        use crate::kernel::nlsock::{Ends, RtSocket};
        use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
        in_fresh_netns(|| {
            let sock = RtSocket::open().unwrap();
            let mut seq = 0;
            let mut send = |msg, flags, f: &mut dyn FnMut(&[u8])| {
                seq += 1;
                sock.exchange(&req(msg, flags, seq), Some(seq), Ends::AtDoneOrAck, |m| {
                    f(m.bytes)
                })
                .unwrap();
            };
            let mk = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
            let self_ns = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
            use std::os::fd::AsRawFd;
            let veth = link::new_veth("ve-a", "ve-b", self_ns.as_raw_fd(), Some(1400), None);
            send(veth, mk, &mut |_| ());
            let mut ve_a = 0;
            send(link::get_by_name("ve-a"), NLM_F_ACK, &mut |b| {
                ve_a = parse(b).unwrap().index
            });
            send(link::new_macvlan("mv0", ve_a, None), mk, &mut |_| ());
            let change = link::LinkChange {
                alias: Some("netprov:test".into()),
                up: true,
                addrgen_random: true,
                ..Default::default()
            };
            send(link::set_named("mv0", &change), NLM_F_ACK, &mut |_| ());
            let mut n = 0;
            for dump in [link::dump(), link::dump_with_stats()] {
                send(dump, NLM_F_DUMP, &mut |b| {
                    n += 1;
                    assert_eq!(parse(b).ok(), oracle(b));
                });
            }
            let mut kinds = Vec::new();
            send(link::dump(), NLM_F_DUMP, &mut |b| {
                kinds.push(parse(b).unwrap().kind)
            });
            assert!(kinds.contains(&Kind::Veth) && kinds.contains(&Kind::Macvlan));
            assert_eq!(n, 8, "lo, ve-a, ve-b, mv0, twice");
        })
    }
}
