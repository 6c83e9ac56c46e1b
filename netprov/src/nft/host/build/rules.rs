//! The rules of the chains netprov generates; per-address data lives in sets, so the
//! number of rules is constant.

use std::ffi::CStr;
use std::net::{IpAddr, Ipv6Addr};

use nftnl::expr::{Bitwise, Cmp, CmpOp, Immediate, Meta, Register, Verdict};
use nftnl::nftnl_sys::libc;
use nftnl::{nft_expr, Chain, ChainType, Hook, MsgType, Policy, ProtoFamily, Rule, Table};

use super::expr::{saddr, DNat, FibDaddrType, Lookup, RTN_LOCAL};
use super::{nlmsg, NftMsg};
use crate::model::{L4Proto, PortForward};

/// Per veth host end in `@links`: accept the container's own addresses on that link
/// (`iifname . saddr` in `@links-v4/6`), IPv6 link-local (NDP, router solicitation)
/// and `::` (DAD) — how IPv6 comes up on a link at all, never routed beyond it — and
/// drop every other IPv4/IPv6 packet.
pub(super) fn spoof_rules(chain: &Chain<'_>, out: &mut Vec<NftMsg>) {
    own_pair_rules(
        chain,
        &nft_expr!(meta iifname),
        &nft_expr!(verdict accept),
        out,
    );
    let on_link = |r: &mut Rule<'_>| {
        r.add_expr(&nft_expr!(meta iifname));
        r.add_expr(&Lookup::new(c"links"));
    };
    let mut r = Rule::new(chain);
    on_link(&mut r);
    nfproto(&mut r, libc::NFPROTO_IPV6);
    r.add_expr(&saddr(libc::NFPROTO_IPV6, libc::NFT_REG_1));
    r.add_expr(&Bitwise::new(
        Ipv6Addr::new(0xffc0, 0, 0, 0, 0, 0, 0, 0),
        Ipv6Addr::UNSPECIFIED,
    ));
    r.add_expr(&Cmp::new(
        CmpOp::Eq,
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
    ));
    r.add_expr(&nft_expr!(verdict accept));
    out.push(nlmsg(&r, MsgType::Add));
    let mut r = Rule::new(chain);
    on_link(&mut r);
    nfproto(&mut r, libc::NFPROTO_IPV6);
    r.add_expr(&saddr(libc::NFPROTO_IPV6, libc::NFT_REG_1));
    r.add_expr(&Cmp::new(CmpOp::Eq, Ipv6Addr::UNSPECIFIED));
    r.add_expr(&nft_expr!(verdict accept));
    out.push(nlmsg(&r, MsgType::Add));
    for fam in [libc::NFPROTO_IPV4, libc::NFPROTO_IPV6] {
        let mut r = Rule::new(chain);
        on_link(&mut r);
        nfproto(&mut r, fam);
        r.add_expr(&nft_expr!(verdict drop));
        out.push(nlmsg(&r, MsgType::Add));
    }
}

/// Container addresses leaving through their own host end keep their source
/// (`oifname . saddr` in `@links-v4/6`: return); through any other interface they are
/// masqueraded.
pub(super) fn masq_rules(chain: &Chain<'_>, out: &mut Vec<NftMsg>) {
    own_pair_rules(
        chain,
        &nft_expr!(meta oifname),
        &nft_expr!(verdict return),
        out,
    );
    for (fam, set) in [
        (libc::NFPROTO_IPV4, c"addrs-v4"),
        (libc::NFPROTO_IPV6, c"addrs-v6"),
    ] {
        let mut r = Rule::new(chain);
        nfproto(&mut r, fam);
        r.add_expr(&saddr(fam, libc::NFT_REG_1));
        r.add_expr(&Lookup::new(set));
        r.add_expr(&nft_expr!(masquerade));
        out.push(nlmsg(&r, MsgType::Add));
    }
}

/// Per family, `<iface> . saddr @links-v4/6 <verdict>`: the packet's interface
/// (`iface`: `meta iifname` or `meta oifname`) and source address are one of the
/// container's host-end/address pairs.
fn own_pair_rules(chain: &Chain<'_>, iface: &Meta, verdict: &Verdict, out: &mut Vec<NftMsg>) {
    for (fam, set) in [
        (libc::NFPROTO_IPV4, c"links-v4"),
        (libc::NFPROTO_IPV6, c"links-v6"),
    ] {
        let mut r = Rule::new(chain);
        nfproto(&mut r, fam);
        r.add_expr(iface);
        r.add_expr(&saddr(fam, libc::NFT_REG_2));
        r.add_expr(&Lookup::new(set));
        r.add_expr(verdict);
        out.push(nlmsg(&r, MsgType::Add));
    }
}

pub(super) fn base_chain<'a>(
    table: &'a Table,
    name: &CStr,
    kind: ChainType,
    hook: Hook,
    prio: i32,
) -> Chain<'a> {
    let mut c = Chain::new(name, table);
    c.set_type(kind);
    c.set_hook(hook, prio);
    c.set_policy(Policy::Accept);
    c
}

pub(super) fn nfproto(r: &mut Rule<'_>, fam: i32) {
    r.add_expr(&nft_expr!(meta nfproto));
    r.add_expr(&Cmp::new(CmpOp::Eq, fam as u8));
}

/// `[ip daddr H] fib daddr type local <proto> dport P dnat to A:P2`.
///
/// `fib daddr type local` keeps the forward to the host's own addresses: without it a
/// forward without `host_addr` would hijack transit traffic to that port anywhere.
pub(super) fn forward_rule<'a>(chain: &'a Chain<'a>, f: &PortForward) -> Rule<'a> {
    let mut r = Rule::new(chain);
    let fam = match f.to_addr {
        IpAddr::V4(_) => libc::NFPROTO_IPV4,
        IpAddr::V6(_) => libc::NFPROTO_IPV6,
    };
    nfproto(&mut r, fam);
    match f.host_addr {
        Some(IpAddr::V4(h)) => {
            r.add_expr(&nft_expr!(payload ipv4 daddr));
            r.add_expr(&Cmp::new(CmpOp::Eq, h));
        }
        Some(IpAddr::V6(h)) => {
            r.add_expr(&nft_expr!(payload ipv6 daddr));
            r.add_expr(&Cmp::new(CmpOp::Eq, h));
        }
        None => {}
    }
    r.add_expr(&FibDaddrType);
    r.add_expr(&Cmp::new(CmpOp::Eq, RTN_LOCAL));
    r.add_expr(&nft_expr!(meta l4proto));
    let (proto, dport) = match f.proto {
        L4Proto::Tcp => (libc::IPPROTO_TCP as u8, nft_expr!(payload tcp dport)),
        L4Proto::Udp => (libc::IPPROTO_UDP as u8, nft_expr!(payload udp dport)),
    };
    r.add_expr(&Cmp::new(CmpOp::Eq, proto));
    r.add_expr(&dport);
    // Ports travel in network byte order in registers.
    r.add_expr(&Cmp::new(CmpOp::Eq, f.host_port.to_be()));
    let nat_family = match f.to_addr {
        IpAddr::V4(a) => {
            r.add_expr(&Immediate::new(a.octets(), Register::Reg1));
            ProtoFamily::Ipv4
        }
        IpAddr::V6(a) => {
            r.add_expr(&Immediate::new(a.octets(), Register::Reg1));
            ProtoFamily::Ipv6
        }
    };
    r.add_expr(&Immediate::new(f.to_port.to_be(), Register::Reg2));
    r.add_expr(&DNat { family: nat_family });
    r
}
