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

mod expr;
mod rules;
mod set;

use std::ffi::{c_void, CStr, CString};

use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{Chain, ChainType, Hook, MsgType, NlMsg, ProtoFamily, Table};

use self::rules::{base_chain, forward_rule, masq_rules, spoof_rules};
use self::set::{addr_key, concat_type, ifname_key, set};
use super::HostSpec;

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
pub(super) const ELEMS_PER_MSG: usize = 256;

/// nft's datatype ids (`enum datatypes` in nftables' datatype.h), so that `nft list`
/// shows the sets with their types. A concatenation is `(a << 6) | b`.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
pub(super) const TYPE_IFNAME: u32 = 41;
pub const TYPE_BITS: u32 = 6;
pub(super) const IFNAMSIZ: usize = 16;

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

    let (spoof, masq) = (spec.spoofs(), spec.masquerades());
    if spoof || masq {
        link_addr_sets(spec, &tname, &mut out);
    }
    if spoof {
        spoof_chain(spec, &table, &tname, &mut out);
    }
    if !spec.rules.forwards.is_empty() {
        forward_chains(spec, &table, &mut out);
    }
    if masq {
        masq_chain(spec, &table, &tname, &mut out);
    }
    out
}

/// `@links-v4`, `@links-v6`: each host end with the container's addresses on it.
fn link_addr_sets(spec: &HostSpec, tname: &CStr, out: &mut Vec<NftMsg>) {
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
    set(
        out,
        tname,
        c"links-v4",
        concat_type(TYPE_IPADDR),
        20,
        pairs(false),
    );
    set(
        out,
        tname,
        c"links-v6",
        concat_type(TYPE_IP6ADDR),
        32,
        pairs(true),
    );
}

/// `@links` and chain `spoof` (see [`spoof_rules`]).
fn spoof_chain(spec: &HostSpec, table: &Table, tname: &CStr, out: &mut Vec<NftMsg>) {
    let ifs = spec
        .links
        .iter()
        .map(|l| ifname_key(l.host_if.as_str()))
        .collect();
    set(out, tname, c"links", TYPE_IFNAME, 16, ifs);
    let chain = base_chain(
        table,
        c"spoof",
        ChainType::Filter,
        Hook::PreRouting,
        PRIO_RAW,
    );
    chain_with_rules(&chain, spoof_rules, out);
}

/// Chains `dnat` (prerouting) and `dnat-local` (output), one rule per forward each.
fn forward_chains(spec: &HostSpec, table: &Table, out: &mut Vec<NftMsg>) {
    let pre = base_chain(
        table,
        c"dnat",
        ChainType::Nat,
        Hook::PreRouting,
        PRIO_DSTNAT,
    );
    let local = base_chain(table, c"dnat-local", ChainType::Nat, Hook::Out, PRIO_DSTNAT);
    for chain in [&pre, &local] {
        out.push(nlmsg(chain, MsgType::Add));
        for f in &spec.rules.forwards {
            out.push(nlmsg(&forward_rule(chain, f), MsgType::Add));
        }
    }
}

/// `@addrs-v4`, `@addrs-v6` and chain `snat` (see [`masq_rules`]).
fn masq_chain(spec: &HostSpec, table: &Table, tname: &CStr, out: &mut Vec<NftMsg>) {
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
    set(out, tname, c"addrs-v4", TYPE_IPADDR, 4, addrs(false));
    set(out, tname, c"addrs-v6", TYPE_IP6ADDR, 16, addrs(true));
    let chain = base_chain(
        table,
        c"snat",
        ChainType::Nat,
        Hook::PostRouting,
        PRIO_SRCNAT,
    );
    chain_with_rules(&chain, masq_rules, out);
}

/// NEWCHAIN, then the chain's rules.
fn chain_with_rules(
    chain: &Chain<'_>,
    rules: fn(&Chain<'_>, &mut Vec<NftMsg>),
    out: &mut Vec<NftMsg>,
) {
    out.push(nlmsg(chain, MsgType::Add));
    rules(chain, out);
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
pub(super) fn nlmsg<T: NlMsg>(obj: &T, t: MsgType) -> NftMsg {
    let buf = super::obj::written(|buf| {
        // SAFETY: buf has room for the largest nf_tables message.
        unsafe { obj.write(buf.as_mut_ptr().cast::<c_void>(), 0, t) };
        u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize
    });
    finish(buf)
}

/// Truncates a written message to its length and drops its ack request.
pub(super) fn finish(mut buf: Vec<u8>) -> NftMsg {
    let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    buf.truncate(len);
    let kind = u16::from_ne_bytes([buf[4], buf[5]]) & 0xff;
    let flags = u16::from_ne_bytes([buf[6], buf[7]]) & !(libc::NLM_F_ACK as u16);
    buf[6..8].copy_from_slice(&flags.to_ne_bytes());
    NftMsg { kind, bytes: buf }
}

pub fn cstring(s: &str) -> CString {
    CString::new(s).expect("names built from validated ids contain no NUL")
}
