//! The netlink messages that make up one container's host table.
//!
//! [`messages`] is the single source of truth: `apply` sends exactly these (after
//! `add table; delete table`), and the expected content `check` compares the kernel's
//! table with is parsed from the very same bytes ([`super::content`]). Messages carry no
//! NLM_F_ACK: the kernel reports errors without it, and an ack per message would
//! overflow the socket's receive buffer for a large table.
//!
//! Per-address data lives in sets, so the number of rules is constant and the table
//! grows by set elements only (hundreds per NEWSETELEM message):
//!
//! * `links`    (`ifname`): the veth host ends under anti-spoofing;
//! * `links-v4` (`ifname . ipv4_addr`), `links-v6` (`ifname . ipv6_addr`): each host
//!   end with the container's addresses on that link;
//! * `addrs-v4` (`ipv4_addr`), `addrs-v6` (`ipv6_addr`): all container addresses
//!   (masquerade).

use std::ffi::{c_void, CStr, CString};
use std::net::{IpAddr, Ipv6Addr};
use std::ptr::NonNull;

use nftnl::expr::{Bitwise, Cmp, CmpOp, Expression, Immediate, Register};
use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{nft_expr, Chain, ChainType, Hook, MsgType, NlMsg, Policy, ProtoFamily, Rule, Table};

use super::HostSpec;
use crate::model::{L4Proto, PortForward};

const PRIO_RAW: i32 = -300;
const PRIO_DSTNAT: i32 = -100;
const PRIO_SRCNAT: i32 = 100;

/// Every chain name netprov may generate (observe asks for exactly these).
pub const CHAINS: [&str; 4] = ["spoof", "dnat", "dnat-local", "snat"];

/// Every set name netprov may generate (observe reads the elements of exactly these).
pub const SETS: [&str; 5] = ["links", "links-v4", "links-v6", "addrs-v4", "addrs-v6"];

/// Elements per NEWSETELEM message: the element list is one netlink attribute, whose
/// length is 16 bits; 256 of the largest elements (ifname . ipv6_addr, ~60 bytes
/// encoded) stay far below that.
const ELEMS_PER_MSG: usize = 256;

/// nft's datatype ids (`enum datatypes` in nftables' datatype.h), so that `nft list`
/// shows the sets with their types. A concatenation is `(a << 6) | b`.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_IFNAME: u32 = 41;
pub const TYPE_BITS: u32 = 6;
const IFNAMSIZ: usize = 16;

/// One nf_tables message: its NFT_MSG_* type and its bytes (header included).
#[derive(Clone)]
pub struct NftMsg {
    pub kind: u16,
    pub bytes: Vec<u8>,
}

/// The messages creating the table and all its content (the first is NEWTABLE).
pub fn messages(spec: &HostSpec) -> Vec<NftMsg> {
    let tname = cstring(&spec.table_name());
    let table = Table::new(&tname, ProtoFamily::Inet);
    let mut out = vec![nlmsg(&table, MsgType::Add)];

    let spoof = spec.rules.anti_spoof && !spec.links.is_empty();
    let masq = spec.rules.masquerade && spec.links.iter().any(|l| !l.container_addrs.is_empty());
    let pairs = |v6: bool| -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = spec
            .links
            .iter()
            .flat_map(|l| {
                l.container_addrs
                    .iter()
                    .filter(move |a| a.is_ipv6() == v6)
                    .map(move |a| [ifname_key(l.host_if.as_str()), addr_key(*a)].concat())
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    };
    if spoof || masq {
        set(
            &mut out,
            &tname,
            c"links-v4",
            concat_type(TYPE_IPADDR),
            20,
            pairs(false),
        );
        set(
            &mut out,
            &tname,
            c"links-v6",
            concat_type(TYPE_IP6ADDR),
            32,
            pairs(true),
        );
    }
    if spoof {
        let ifs = spec
            .links
            .iter()
            .map(|l| ifname_key(l.host_if.as_str()))
            .collect();
        set(&mut out, &tname, c"links", TYPE_IFNAME, 16, ifs);
        let chain = base_chain(
            &table,
            c"spoof",
            ChainType::Filter,
            Hook::PreRouting,
            PRIO_RAW,
        );
        out.push(nlmsg(&chain, MsgType::Add));
        spoof_rules(&chain, &mut out);
    }
    if !spec.rules.forwards.is_empty() {
        let pre = base_chain(
            &table,
            c"dnat",
            ChainType::Nat,
            Hook::PreRouting,
            PRIO_DSTNAT,
        );
        let local = base_chain(
            &table,
            c"dnat-local",
            ChainType::Nat,
            Hook::Out,
            PRIO_DSTNAT,
        );
        for chain in [&pre, &local] {
            out.push(nlmsg(chain, MsgType::Add));
            for f in &spec.rules.forwards {
                out.push(nlmsg(&forward_rule(chain, f), MsgType::Add));
            }
        }
    }
    if masq {
        let addrs = |v6: bool| -> Vec<Vec<u8>> {
            let mut keys: Vec<Vec<u8>> = spec
                .links
                .iter()
                .flat_map(|l| l.container_addrs.iter())
                .filter(|a| a.is_ipv6() == v6)
                .map(|a| addr_key(*a))
                .collect();
            keys.sort();
            keys.dedup();
            keys
        };
        set(&mut out, &tname, c"addrs-v4", TYPE_IPADDR, 4, addrs(false));
        set(&mut out, &tname, c"addrs-v6", TYPE_IP6ADDR, 16, addrs(true));
        let chain = base_chain(
            &table,
            c"snat",
            ChainType::Nat,
            Hook::PostRouting,
            PRIO_SRCNAT,
        );
        out.push(nlmsg(&chain, MsgType::Add));
        masq_rules(&chain, &mut out);
    }
    out
}

/// `add table; delete table` — valid whether or not the table exists; followed by
/// [`messages`] it replaces the table, alone it removes it.
pub fn delete_table(name: &str) -> Vec<NftMsg> {
    let tname = cstring(name);
    let table = Table::new(&tname, ProtoFamily::Inet);
    vec![nlmsg(&table, MsgType::Add), nlmsg(&table, MsgType::Del)]
}

/// Makes a creation fail with EEXIST when the object exists (NLM_F_EXCL).
pub fn set_exclusive(m: &mut NftMsg, on: bool) {
    let mut flags = u16::from_ne_bytes([m.bytes[6], m.bytes[7]]);
    if on {
        flags |= libc::NLM_F_EXCL as u16;
    } else {
        flags &= !(libc::NLM_F_EXCL as u16);
    }
    m.bytes[6..8].copy_from_slice(&flags.to_ne_bytes());
}

/// One batch datagram: begin, `msgs` (sequence numbers 1, 2, …), end.
pub fn batch(msgs: &[NftMsg]) -> Vec<u8> {
    let mut buf = framing(sys::nftnl_batch_begin);
    for (i, m) in msgs.iter().enumerate() {
        let at = buf.len();
        buf.extend_from_slice(&m.bytes);
        // Sequence numbers 1, 2, … so an error names the message it is about.
        buf[at + 8..at + 12].copy_from_slice(&(i as u32 + 1).to_ne_bytes());
    }
    buf.extend_from_slice(&framing(sys::nftnl_batch_end));
    buf
}

fn framing(f: unsafe extern "C" fn(*mut libc::c_char, u32) -> *mut libc::nlmsghdr) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    // SAFETY: a batch begin/end message is a header and a nfgenmsg (20 bytes).
    let len = unsafe { (*f(buf.as_mut_ptr().cast(), 0)).nlmsg_len as usize };
    buf.truncate(len);
    buf
}

/// Serializes a crate object and clears NLM_F_ACK (the crate always sets it).
fn nlmsg<T: NlMsg>(obj: &T, t: MsgType) -> NftMsg {
    let mut buf = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize];
    // SAFETY: buf has room for the largest nf_tables message.
    unsafe { obj.write(buf.as_mut_ptr().cast::<c_void>(), 0, t) };
    finish(buf)
}

/// Truncates a written message to its length and drops its ack request.
fn finish(mut buf: Vec<u8>) -> NftMsg {
    let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    buf.truncate(len);
    let kind = u16::from_ne_bytes([buf[4], buf[5]]) & 0xff;
    let flags = u16::from_ne_bytes([buf[6], buf[7]]) & !(libc::NLM_F_ACK as u16);
    buf[6..8].copy_from_slice(&flags.to_ne_bytes());
    NftMsg { kind, bytes: buf }
}

fn concat_type(second: u32) -> u32 {
    (TYPE_IFNAME << TYPE_BITS) | second
}

/// An interface name as the kernel loads it into a register: IFNAMSIZ bytes, zero padded.
fn ifname_key(name: &str) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.resize(IFNAMSIZ, 0);
    k
}

fn addr_key(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// NEWSET (a plain hash set) and its elements in NEWSETELEM messages of at most
/// [`ELEMS_PER_MSG`] elements.
fn set(
    out: &mut Vec<NftMsg>,
    table: &CStr,
    name: &CStr,
    key_type: u32,
    key_len: u32,
    keys: Vec<Vec<u8>>,
) {
    // SAFETY: libnftnl objects are allocated, filled with copies of valid strings and
    // integers, serialized into a buffer of the maximal message size, and freed.
    unsafe {
        let s = sys::nftnl_set_alloc();
        if s.is_null() {
            std::process::abort();
        }
        sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
        sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, name.as_ptr());
        sys::nftnl_set_set_u32(s, sys::NFTNL_SET_KEY_TYPE as u16, key_type);
        sys::nftnl_set_set_u32(s, sys::NFTNL_SET_KEY_LEN as u16, key_len);
        // The kernel requires an id (for references by id within the batch); unique
        // per set in this batch is enough.
        let id = out.len() as u32 + 1;
        sys::nftnl_set_set_u32(s, sys::NFTNL_SET_ID as u16, id);
        out.push(raw_msg(libc::NFT_MSG_NEWSET, libc::NLM_F_CREATE, |nlh| {
            sys::nftnl_set_nlmsg_build_payload(nlh, s)
        }));
        sys::nftnl_set_free(s);
    }
    for chunk in keys.chunks(ELEMS_PER_MSG) {
        // SAFETY: as above; elements are owned by the set and freed with it.
        unsafe {
            let s = sys::nftnl_set_alloc();
            if s.is_null() {
                std::process::abort();
            }
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, name.as_ptr());
            for k in chunk {
                let e = sys::nftnl_set_elem_alloc();
                if e.is_null() {
                    std::process::abort();
                }
                sys::nftnl_set_elem_set(
                    e,
                    sys::NFTNL_SET_ELEM_KEY as u16,
                    k.as_ptr().cast(),
                    k.len() as u32,
                );
                sys::nftnl_set_elem_add(s, e);
            }
            let mut m = raw_msg(libc::NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE, |nlh| {
                sys::nftnl_set_elems_nlmsg_build_payload(nlh, s)
            });
            list_elem_types(&mut m.bytes);
            out.push(m);
            sys::nftnl_set_free(s);
        }
    }
}

/// libnftnl numbers the element nests of a NEWSETELEM 1, 2, 3…; the kernel ignores
/// the type, but dumps use `NFTA_LIST_ELEM` (1) for all and libnftnl's parser accepts
/// nothing else — so the expected content would lose every element but the first.
/// Rewrite them to `NFTA_LIST_ELEM`, as the kernel would send them.
fn list_elem_types(msg: &mut [u8]) {
    const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
    const NFTA_LIST_ELEM: u16 = 1;
    const NLA_TYPE_MASK: u16 = 0x3fff;
    let attr = |b: &[u8], at: usize| {
        let len = u16::from_ne_bytes([b[at], b[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([b[at + 2], b[at + 3]]);
        (len, kind)
    };
    // nlmsghdr (16) + nfgenmsg (4)
    let mut at = 20;
    while at + 4 <= msg.len() {
        let (len, kind) = attr(msg, at);
        if len < 4 || at + len > msg.len() {
            return;
        }
        if kind & NLA_TYPE_MASK == NFTA_SET_ELEM_LIST_ELEMENTS {
            let (mut i, end) = (at + 4, at + len);
            while i + 4 <= end {
                let (l, k) = attr(msg, i);
                if l < 4 {
                    return;
                }
                let k = (k & !NLA_TYPE_MASK) | NFTA_LIST_ELEM;
                msg[i + 2..i + 4].copy_from_slice(&k.to_ne_bytes());
                i += (l + 3) & !3;
            }
        }
        at += (len + 3) & !3;
    }
}

/// Builds one inet message of `kind` with `flags` whose payload `build` writes.
///
/// # Safety
/// `build` must write at most `nft_nlmsg_maxsize()` bytes in total.
unsafe fn raw_msg(kind: i32, flags: i32, build: impl FnOnce(*mut libc::nlmsghdr)) -> NftMsg {
    let mut buf = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize];
    // SAFETY: buf is large enough for the header; the caller bounds the payload.
    unsafe {
        let nlh = sys::nftnl_nlmsg_build_hdr(
            buf.as_mut_ptr().cast(),
            kind as u16,
            ProtoFamily::Inet as u16,
            flags as u16,
            0,
        );
        build(nlh);
    }
    finish(buf)
}

/// Per veth host end in `@links`: accept the container's own addresses on that link
/// (`iifname . saddr` in `@links-v4/6`), IPv6 link-local (NDP, router solicitation)
/// and `::` (DAD) — how IPv6 comes up on a link at all, never routed beyond it — and
/// drop every other IPv4/IPv6 packet.
fn spoof_rules(chain: &Chain<'_>, out: &mut Vec<NftMsg>) {
    for (fam, set) in [
        (libc::NFPROTO_IPV4, c"links-v4"),
        (libc::NFPROTO_IPV6, c"links-v6"),
    ] {
        let mut r = Rule::new(chain);
        nfproto(&mut r, fam);
        r.add_expr(&nft_expr!(meta iifname));
        r.add_expr(&saddr(fam, libc::NFT_REG_2));
        r.add_expr(&Lookup::new(set));
        r.add_expr(&nft_expr!(verdict accept));
        out.push(nlmsg(&r, MsgType::Add));
    }
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
fn masq_rules(chain: &Chain<'_>, out: &mut Vec<NftMsg>) {
    for (fam, set) in [
        (libc::NFPROTO_IPV4, c"links-v4"),
        (libc::NFPROTO_IPV6, c"links-v6"),
    ] {
        let mut r = Rule::new(chain);
        nfproto(&mut r, fam);
        r.add_expr(&nft_expr!(meta oifname));
        r.add_expr(&saddr(fam, libc::NFT_REG_2));
        r.add_expr(&Lookup::new(set));
        r.add_expr(&nft_expr!(verdict return));
        out.push(nlmsg(&r, MsgType::Add));
    }
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

fn base_chain<'a>(
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

fn nfproto(r: &mut Rule<'_>, fam: i32) {
    r.add_expr(&nft_expr!(meta nfproto));
    r.add_expr(&Cmp::new(CmpOp::Eq, fam as u8));
}

/// `[ip|ip6] saddr` loaded into `reg` (a 128-bit register number). In a concatenation
/// the interface name fills register 1 (16 bytes) and the address follows in 2.
fn saddr(fam: i32, reg: i32) -> Payload {
    let (offset, len) = if fam == libc::NFPROTO_IPV4 {
        (12, 4)
    } else {
        (8, 16)
    };
    Payload {
        offset,
        len,
        dreg: reg as u32,
    }
}

/// A network-header payload load into a chosen register (the crate's always uses 1).
struct Payload {
    offset: u32,
    len: u32,
    dreg: u32,
}

impl Expression for Payload {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: the expression is allocated (checked) and handed to the rule; the
        // setters copy integers.
        unsafe {
            let e = NonNull::new(sys::nftnl_expr_alloc(c"payload".as_ptr()))
                .unwrap_or_else(|| std::process::abort());
            let p = e.as_ptr();
            sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_DREG as u16, self.dreg);
            sys::nftnl_expr_set_u32(
                p,
                sys::NFTNL_EXPR_PAYLOAD_BASE as u16,
                libc::NFT_PAYLOAD_NETWORK_HEADER as u32,
            );
            sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, self.offset);
            sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_LEN as u16, self.len);
            e
        }
    }
}

/// `lookup reg 1 @set` by name (the set is in the same table, possibly created in the
/// same batch: the kernel finds it by name in the next generation).
struct Lookup {
    set: &'static CStr,
}

impl Lookup {
    fn new(set: &'static CStr) -> Self {
        Self { set }
    }
}

impl Expression for Lookup {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: as for Payload; the set name is copied.
        unsafe {
            let e = NonNull::new(sys::nftnl_expr_alloc(c"lookup".as_ptr()))
                .unwrap_or_else(|| std::process::abort());
            let p = e.as_ptr();
            sys::nftnl_expr_set_str(p, sys::NFTNL_EXPR_LOOKUP_SET as u16, self.set.as_ptr());
            sys::nftnl_expr_set_u32(
                p,
                sys::NFTNL_EXPR_LOOKUP_SREG as u16,
                libc::NFT_REG_1 as u32,
            );
            // The kernel always dumps the flags; send them so both sides compare equal.
            sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_LOOKUP_FLAGS as u16, 0);
            e
        }
    }
}

/// `[ip daddr H] fib daddr type local <proto> dport P dnat to A:P2`.
///
/// `fib daddr type local` keeps the forward to the host's own addresses: without it a
/// forward without `host_addr` would hijack transit traffic to that port anywhere.
fn forward_rule<'a>(chain: &'a Chain<'a>, f: &PortForward) -> Rule<'a> {
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

/// `NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED` (`<linux/netfilter/nf_nat.h>`).
const NAT_FLAGS: u32 = 0x1 | 0x2;

/// `dnat to <reg 1>:<reg 2>` with every attribute the kernel dumps back (the max
/// registers equal to the min ones, the range flags it would add itself), so the
/// generated rule and the kernel's compare equal. The crate's `Nat` sends only the mins.
struct DNat {
    family: ProtoFamily,
}

impl Expression for DNat {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: as for Payload.
        unsafe {
            let e = NonNull::new(sys::nftnl_expr_alloc(c"nat".as_ptr()))
                .unwrap_or_else(|| std::process::abort());
            let p = e.as_ptr();
            let set = |a: u32, v: u32| sys::nftnl_expr_set_u32(p, a as u16, v);
            set(sys::NFTNL_EXPR_NAT_TYPE, libc::NFT_NAT_DNAT as u32);
            set(sys::NFTNL_EXPR_NAT_FAMILY, self.family as u32);
            set(sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, libc::NFT_REG_1 as u32);
            set(sys::NFTNL_EXPR_NAT_REG_ADDR_MAX, libc::NFT_REG_1 as u32);
            set(sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, libc::NFT_REG_2 as u32);
            set(sys::NFTNL_EXPR_NAT_REG_PROTO_MAX, libc::NFT_REG_2 as u32);
            set(sys::NFTNL_EXPR_NAT_FLAGS, NAT_FLAGS);
            e
        }
    }
}

/// `RTN_LOCAL` from `<linux/rtnetlink.h>`, the address type `fib` reports.
const RTN_LOCAL: u32 = 2;
/// `NFT_FIB_RESULT_ADDRTYPE`, `NFTA_FIB_F_DADDR` from `<linux/netfilter/nf_tables.h>`.
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 1 << 1;

/// `fib daddr type` into register 1 — nftnl 0.9 has no fib expression, so this builds
/// it from the libnftnl attributes directly.
struct FibDaddrType;

impl Expression for FibDaddrType {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: nftnl_expr_alloc returns an owned expression (checked for NULL) that
        // the rule takes over; the setters copy plain integers.
        unsafe {
            let e = NonNull::new(sys::nftnl_expr_alloc(c"fib".as_ptr()))
                .unwrap_or_else(|| std::process::abort());
            sys::nftnl_expr_set_u32(
                e.as_ptr(),
                sys::NFTNL_EXPR_FIB_DREG as u16,
                libc::NFT_REG_1 as u32,
            );
            sys::nftnl_expr_set_u32(
                e.as_ptr(),
                sys::NFTNL_EXPR_FIB_RESULT as u16,
                NFT_FIB_RESULT_ADDRTYPE,
            );
            sys::nftnl_expr_set_u32(
                e.as_ptr(),
                sys::NFTNL_EXPR_FIB_FLAGS as u16,
                NFTA_FIB_F_DADDR,
            );
            e
        }
    }
}

pub fn cstring(s: &str) -> CString {
    CString::new(s).expect("names built from validated ids contain no NUL")
}
