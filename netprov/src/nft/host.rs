//! Host-side rules netprov generates for one container, built with nftnl batches.
//!
//! Layout: one table per container, `inet netprov-<id>`, that netprov alone owns (the
//! name is the ownership mark). Creating, replacing and removing it are each ONE
//! netfilter batch, so the kernel swaps the container's whole rule set atomically, and
//! every operation costs O(this container): no other table — netprov's for other
//! containers or anyone else's — is read or written. Chains (all created only when
//! needed):
//!
//! * `spoof`  — filter, prerouting, priority raw (-300): per veth host end, accept the
//!   container's own addresses, IPv6 link-local and `::` (NDP, DAD), drop the rest of
//!   IPv4/IPv6 arriving on it;
//! * `dnat`   — nat, prerouting, dstnat (-100): port forwards for traffic arriving
//!   from outside;
//! * `dnat-local` — nat, output, dstnat (-100): the same forwards for connections the
//!   host itself opens to one of its local addresses;
//! * `snat`   — nat, postrouting, srcnat (100): masquerade of the container's addresses
//!   leaving through any interface other than its host end;
//! * `state`  — a regular chain holding one rule whose comment is the digest of the spec,
//!   so an unchanged spec is detected with one small dump and no rule comparison.
//!
//! Replacing uses the nft idiom "add table; delete table; add table …" inside one batch:
//! the add makes the delete valid whether or not the table existed.

use std::ffi::{CStr, CString};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::ptr::NonNull;

use nftnl::expr::{Bitwise, Cmp, CmpOp, Expression, Immediate, Nat, NatType, Register};
use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{nft_expr, Batch, Chain, ChainType, Hook, MsgType, Policy, ProtoFamily, Rule, Table};
use sha2::{Digest, Sha256};

use super::netlink::NfSocket;
use crate::error::OpError;
use crate::model::{ContainerId, Desired, HostRules, IfName, InterfaceKind, L4Proto, PortForward};
use crate::netns::in_netns;

/// Prefix of every host table netprov owns.
pub const TABLE_PREFIX: &str = "netprov-";

const PRIO_RAW: i32 = -300;
const PRIO_DSTNAT: i32 = -100;
const PRIO_SRCNAT: i32 = 100;

/// A veth host end and the container's addresses on that link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethLink {
    pub host_if: IfName,
    pub container_addrs: Vec<IpAddr>,
}

/// Everything the host rules of one container depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub id: ContainerId,
    pub rules: HostRules,
    /// Sorted by host interface name.
    pub links: Vec<VethLink>,
}

impl HostSpec {
    pub fn new(id: ContainerId, rules: &HostRules, mut links: Vec<VethLink>) -> Self {
        links.sort_by(|a, b| a.host_if.cmp(&b.host_if));
        for l in &mut links {
            l.container_addrs.sort();
            l.container_addrs.dedup();
        }
        Self {
            id,
            rules: rules.clone(),
            links,
        }
    }

    /// The spec for a validated container: its veth links (host end + container
    /// addresses, including those of a macvlan stacked on the veth, whose traffic
    /// leaves through it) and its `HostRules`.
    ///
    /// Veths whose host end is enslaved to a bridge are left out: on the host their
    /// packets arrive with the bridge as input interface, so per-port anti-spoofing
    /// would need a bridge-family table, which netprov does not generate (yet).
    pub fn from_desired(d: &Desired) -> Self {
        let links = d
            .interfaces
            .iter()
            .filter_map(|i| match &i.kind {
                InterfaceKind::Veth(h) if h.bridge.is_none() => Some(VethLink {
                    host_if: h.name.clone(),
                    container_addrs: i
                        .addrs
                        .iter()
                        .chain(i.macvlan.iter().flat_map(|m| m.addrs.iter()))
                        .map(|a| a.ip())
                        .collect(),
                }),
                _ => None,
            })
            .collect();
        Self::new(d.id.clone(), &d.host_rules, links)
    }

    /// Rejects what the rules cannot express: a forward whose `host_addr` and `to_addr`
    /// are of different IP versions (NAT does not translate between them).
    pub fn check(&self) -> Result<(), String> {
        for f in &self.rules.forwards {
            if let Some(h) = f.host_addr {
                if h.is_ipv4() != f.to_addr.is_ipv4() {
                    return Err(format!(
                        "port forward {h} port {} -> {} port {} mixes IPv4 and IPv6",
                        f.host_port, f.to_addr, f.to_port
                    ));
                }
            }
        }
        Ok(())
    }

    /// Name of the container's host table.
    pub fn table_name(&self) -> String {
        table_name(&self.id)
    }

    /// True when no rule would be generated (then the table should not exist).
    pub fn is_empty(&self) -> bool {
        let spoof = self.rules.anti_spoof && !self.links.is_empty();
        let masq =
            self.rules.masquerade && self.links.iter().any(|l| !l.container_addrs.is_empty());
        !spoof && !masq && self.rules.forwards.is_empty()
    }

    /// SHA-256 (hex) of a canonical text of the spec; recorded in the `state` chain.
    pub fn digest(&self) -> String {
        let mut s = format!(
            "v1 id={} spoof={} masq={}\n",
            self.id, self.rules.anti_spoof, self.rules.masquerade
        );
        for l in &self.links {
            s.push_str(&format!("link {} {:?}\n", l.host_if, l.container_addrs));
        }
        for f in &self.rules.forwards {
            s.push_str(&format!(
                "fwd {:?} {:?}:{} -> {}:{}\n",
                f.proto, f.host_addr, f.host_port, f.to_addr, f.to_port
            ));
        }
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

pub fn table_name(id: &ContainerId) -> String {
    format!("{TABLE_PREFIX}{id}")
}

/// What exists in the host netns for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostState {
    Absent,
    /// The table exists; `digest` is the recorded spec digest (None if unreadable).
    Present {
        digest: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostChange {
    /// Create or atomically replace the container's table.
    Apply,
    /// Delete the container's table.
    Remove,
}

/// `None` when the host already matches `spec`.
pub fn plan_host(spec: &HostSpec, observed: &HostState) -> Option<HostChange> {
    match (spec.is_empty(), observed) {
        (true, HostState::Absent) => None,
        (true, HostState::Present { .. }) => Some(HostChange::Remove),
        (false, HostState::Present { digest: Some(d) }) if *d == spec.digest() => None,
        (false, _) => Some(HostChange::Apply),
    }
}

/// Reads the container's table state in the host netns at `host_netns` (two small
/// requests about this one table).
pub fn observe_host(host_netns: &Path, id: &ContainerId) -> Result<HostState, OpError> {
    let table = table_name(id);
    let op = format!(
        "read nftables table inet {table} in netns {}",
        host_netns.display()
    );
    let t = table.clone();
    in_netns(host_netns, move || observe_here(&t))?.map_err(|e| OpError::io(op, &e))
}

fn observe_here(table: &str) -> std::io::Result<HostState> {
    let sock = NfSocket::open()?;
    let ctable = CString::new(table).expect("validated id has no NUL");
    match sock.request(&get_table_msg(&ctable), |_| {}) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(HostState::Absent),
        Err(e) => return Err(e),
    }
    let mut digest = None;
    let res = sock.request(&dump_rules_msg(&ctable, c"state"), |m| {
        if digest.is_none() {
            digest = rule_comment(m.bytes)
                .and_then(|c| c.strip_prefix("netprov sha256:").map(str::to_owned));
        }
    });
    match res {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    Ok(HostState::Present { digest })
}

/// The containers that have a host table (`inet netprov-<id>`, `<id>` a valid id) in
/// the host netns at `host_netns`: one dump of the inet tables. Host-wide, for the
/// inventory (`netprov list`, `gc`), never on the per-container path.
pub fn list_host_tables(host_netns: &Path) -> Result<Vec<ContainerId>, OpError> {
    let op = format!("list nftables tables in netns {}", host_netns.display());
    let names = in_netns(host_netns, || -> std::io::Result<Vec<String>> {
        let sock = NfSocket::open()?;
        let mut names = Vec::new();
        sock.request(&dump_tables_msg(), |m| {
            if m.kind & 0xff == libc::NFT_MSG_NEWTABLE as u16 {
                names.extend(table_msg_name(m.bytes));
            }
        })?;
        Ok(names)
    })?
    .map_err(|e| OpError::io(op, &e))?;
    Ok(names
        .iter()
        .filter_map(|n| n.strip_prefix(TABLE_PREFIX))
        .filter_map(|id| ContainerId::new(id).ok())
        .collect())
}

/// NFT_MSG_GETTABLE dump of the inet family.
fn dump_tables_msg() -> Vec<u8> {
    let mut buf = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize];
    // SAFETY: buf is large enough for a header-only nftables message.
    unsafe {
        let nlh = sys::nftnl_nlmsg_build_hdr(
            buf.as_mut_ptr().cast(),
            libc::NFT_MSG_GETTABLE as u16,
            ProtoFamily::Inet as u16,
            libc::NLM_F_DUMP as u16,
            3,
        );
        buf.truncate((*nlh).nlmsg_len as usize);
    }
    buf
}

/// The table name in a NEWTABLE message.
fn table_msg_name(msg: &[u8]) -> Option<String> {
    // SAFETY: msg is one complete netlink message; the table object is freed after the
    // name (valid until then) is copied.
    unsafe {
        let t = sys::nftnl_table_alloc();
        let name = if sys::nftnl_table_nlmsg_parse(msg.as_ptr().cast(), t) >= 0 {
            let p = sys::nftnl_table_get_str(t, sys::NFTNL_TABLE_NAME as u16);
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        } else {
            None
        };
        sys::nftnl_table_free(t);
        name
    }
}

/// Creates or atomically replaces the container's table in the host netns.
pub fn apply_host(host_netns: &Path, spec: &HostSpec) -> Result<(), OpError> {
    let op = format!(
        "load nftables table inet {} in netns {}",
        spec.table_name(),
        host_netns.display()
    );
    spec.check().map_err(|e| OpError::new(&op, e))?;
    let spec2 = spec.clone();
    in_netns(host_netns, move || -> std::io::Result<()> {
        let table = Table::new(cstring(&spec2.table_name()), ProtoFamily::Inet);
        let mut batch = Batch::new();
        batch.add(&table, MsgType::Add);
        batch.add(&table, MsgType::Del);
        batch.add(&table, MsgType::Add);
        build(&table, &spec2, &mut batch);
        NfSocket::open()?.run_batch(&batch.finalize())
    })?
    .map_err(|e| OpError::io(op, &e))
}

/// Deletes the container's table (and with it all its chains and rules) if it exists.
pub fn remove_host(host_netns: &Path, id: &ContainerId) -> Result<(), OpError> {
    let name = table_name(id);
    let op = format!(
        "delete nftables table inet {name} in netns {}",
        host_netns.display()
    );
    in_netns(host_netns, move || -> std::io::Result<()> {
        let table = Table::new(cstring(&name), ProtoFamily::Inet);
        let mut batch = Batch::new();
        batch.add(&table, MsgType::Add);
        batch.add(&table, MsgType::Del);
        NfSocket::open()?.run_batch(&batch.finalize())
    })?
    .map_err(|e| OpError::io(op, &e))
}

fn cstring(s: &str) -> CString {
    CString::new(s).expect("names built from validated ids contain no NUL")
}

/// Adds every chain and rule of `spec` to `batch`.
fn build(table: &Table, spec: &HostSpec, batch: &mut Batch) {
    let state = Chain::new(c"state", table);
    batch.add(&state, MsgType::Add);
    let mut r = Rule::new(&state);
    r.set_comment(cstring(&format!("netprov sha256:{}", spec.digest())))
        .expect("a 80-byte comment fits");
    batch.add(&r, MsgType::Add);

    if spec.rules.anti_spoof && !spec.links.is_empty() {
        let chain = base_chain(
            table,
            c"spoof",
            ChainType::Filter,
            Hook::PreRouting,
            PRIO_RAW,
        );
        batch.add(&chain, MsgType::Add);
        for l in &spec.links {
            let ifname = cstring(l.host_if.as_str());
            for a in &l.container_addrs {
                let mut r = Rule::new(&chain);
                iif(&mut r, &ifname);
                saddr_eq(&mut r, *a);
                r.add_expr(&nft_expr!(verdict accept));
                batch.add(&r, MsgType::Add);
            }
            // Link-local sources (NDP, router solicitation) and :: (DAD) are how IPv6
            // comes up on the link at all; they cannot be routed beyond it.
            let mut r = Rule::new(&chain);
            iif(&mut r, &ifname);
            nfproto(&mut r, libc::NFPROTO_IPV6);
            r.add_expr(&nft_expr!(payload ipv6 saddr));
            r.add_expr(&Bitwise::new(
                Ipv6Addr::new(0xffc0, 0, 0, 0, 0, 0, 0, 0),
                Ipv6Addr::UNSPECIFIED,
            ));
            r.add_expr(&Cmp::new(
                CmpOp::Eq,
                Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            ));
            r.add_expr(&nft_expr!(verdict accept));
            batch.add(&r, MsgType::Add);
            let mut r = Rule::new(&chain);
            iif(&mut r, &ifname);
            saddr_eq(&mut r, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
            r.add_expr(&nft_expr!(verdict accept));
            batch.add(&r, MsgType::Add);
            for fam in [libc::NFPROTO_IPV4, libc::NFPROTO_IPV6] {
                let mut r = Rule::new(&chain);
                iif(&mut r, &ifname);
                nfproto(&mut r, fam);
                r.add_expr(&nft_expr!(verdict drop));
                batch.add(&r, MsgType::Add);
            }
        }
    }

    if !spec.rules.forwards.is_empty() {
        let pre = base_chain(
            table,
            c"dnat",
            ChainType::Nat,
            Hook::PreRouting,
            PRIO_DSTNAT,
        );
        let out = base_chain(table, c"dnat-local", ChainType::Nat, Hook::Out, PRIO_DSTNAT);
        batch.add(&pre, MsgType::Add);
        batch.add(&out, MsgType::Add);
        for chain in [&pre, &out] {
            for f in &spec.rules.forwards {
                batch.add(&forward_rule(chain, f), MsgType::Add);
            }
        }
    }

    if spec.rules.masquerade && spec.links.iter().any(|l| !l.container_addrs.is_empty()) {
        let chain = base_chain(
            table,
            c"snat",
            ChainType::Nat,
            Hook::PostRouting,
            PRIO_SRCNAT,
        );
        batch.add(&chain, MsgType::Add);
        for l in &spec.links {
            let ifname = cstring(l.host_if.as_str());
            for a in &l.container_addrs {
                let mut r = Rule::new(&chain);
                saddr_eq(&mut r, *a);
                r.add_expr(&nft_expr!(meta oifname));
                r.add_expr(&Cmp::new(CmpOp::Neq, ifname.as_c_str()));
                r.add_expr(&nft_expr!(masquerade));
                batch.add(&r, MsgType::Add);
            }
        }
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

fn iif(r: &mut Rule<'_>, name: &CStr) {
    r.add_expr(&nft_expr!(meta iifname));
    r.add_expr(&Cmp::new(CmpOp::Eq, name));
}

fn nfproto(r: &mut Rule<'_>, fam: i32) {
    r.add_expr(&nft_expr!(meta nfproto));
    r.add_expr(&Cmp::new(CmpOp::Eq, fam as u8));
}

fn saddr_eq(r: &mut Rule<'_>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => {
            nfproto(r, libc::NFPROTO_IPV4);
            r.add_expr(&nft_expr!(payload ipv4 saddr));
            r.add_expr(&Cmp::new(CmpOp::Eq, a));
        }
        IpAddr::V6(a) => {
            nfproto(r, libc::NFPROTO_IPV6);
            r.add_expr(&nft_expr!(payload ipv6 saddr));
            r.add_expr(&Cmp::new(CmpOp::Eq, a));
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
    r.add_expr(&Nat {
        nat_type: NatType::DNat,
        family: nat_family,
        ip_register: Register::Reg1,
        port_register: Some(Register::Reg2),
    });
    r
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

/// NFT_MSG_GETTABLE for one inet table, with an ack (ENOENT when it does not exist).
fn get_table_msg(name: &CStr) -> Vec<u8> {
    let mut buf = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize];
    // SAFETY: buf is large enough for any nftables message; the table object is freed.
    unsafe {
        let nlh = sys::nftnl_nlmsg_build_hdr(
            buf.as_mut_ptr().cast(),
            libc::NFT_MSG_GETTABLE as u16,
            ProtoFamily::Inet as u16,
            libc::NLM_F_ACK as u16,
            1,
        );
        let t = sys::nftnl_table_alloc();
        sys::nftnl_table_set_str(t, sys::NFTNL_TABLE_NAME as u16, name.as_ptr());
        sys::nftnl_table_nlmsg_build_payload(nlh, t);
        sys::nftnl_table_free(t);
        buf.truncate((*nlh).nlmsg_len as usize);
    }
    buf
}

/// NFT_MSG_GETRULE dump restricted (by the kernel) to one chain of one inet table.
fn dump_rules_msg(table: &CStr, chain: &CStr) -> Vec<u8> {
    let mut buf = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize];
    // SAFETY: as above.
    unsafe {
        let nlh = sys::nftnl_nlmsg_build_hdr(
            buf.as_mut_ptr().cast(),
            libc::NFT_MSG_GETRULE as u16,
            ProtoFamily::Inet as u16,
            libc::NLM_F_DUMP as u16,
            2,
        );
        let r = sys::nftnl_rule_alloc();
        sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
        sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_CHAIN as u16, chain.as_ptr());
        sys::nftnl_rule_nlmsg_build_payload(nlh, r);
        sys::nftnl_rule_free(r);
        buf.truncate((*nlh).nlmsg_len as usize);
    }
    buf
}

/// The comment of a NEWRULE message (nft's userdata TLV `NFTNL_UDATA_RULE_COMMENT`).
fn rule_comment(msg: &[u8]) -> Option<String> {
    // SAFETY: msg is one complete netlink message; the rule object is freed; the
    // userdata pointer is valid until then and copied first.
    let udata = unsafe {
        let r = sys::nftnl_rule_alloc();
        let udata = if sys::nftnl_rule_nlmsg_parse(msg.as_ptr().cast(), r) >= 0 {
            let mut len = 0u32;
            let p = sys::nftnl_rule_get_data(r, sys::NFTNL_RULE_USERDATA as u16, &mut len);
            (!p.is_null())
                .then(|| std::slice::from_raw_parts(p.cast::<u8>(), len as usize).to_vec())
        } else {
            None
        };
        sys::nftnl_rule_free(r);
        udata?
    };
    udata_comment(&udata)
}

/// Finds the comment in nft's userdata TLVs (`u8 type, u8 len, value`).
fn udata_comment(mut b: &[u8]) -> Option<String> {
    while b.len() >= 2 {
        let (kind, len) = (b[0], b[1] as usize);
        let val = b.get(2..2 + len)?;
        if kind == sys::NFTNL_UDATA_RULE_COMMENT as u8 {
            let s = val.split(|c| *c == 0).next().unwrap_or(&[]);
            return Some(String::from_utf8_lossy(s).into_owned());
        }
        b = &b[2 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rules: HostRules) -> HostSpec {
        HostSpec::new(
            ContainerId::new("web1").unwrap(),
            &rules,
            vec![VethLink {
                host_if: IfName::new("ve-web1").unwrap(),
                container_addrs: vec!["10.0.0.2".parse().unwrap()],
            }],
        )
    }

    #[test]
    fn empty_spec_means_no_table() {
        let s = spec(HostRules::default());
        assert!(s.is_empty());
        assert_eq!(plan_host(&s, &HostState::Absent), None);
        assert_eq!(
            plan_host(&s, &HostState::Present { digest: None }),
            Some(HostChange::Remove)
        );
    }

    #[test]
    fn unchanged_spec_is_a_noop() {
        let s = spec(HostRules {
            anti_spoof: true,
            ..Default::default()
        });
        let d = s.digest();
        assert_eq!(plan_host(&s, &HostState::Present { digest: Some(d) }), None);
        assert_eq!(plan_host(&s, &HostState::Absent), Some(HostChange::Apply));
        let other = spec(HostRules {
            anti_spoof: true,
            masquerade: true,
            ..Default::default()
        });
        assert_ne!(other.digest(), s.digest());
        assert_eq!(
            plan_host(
                &other,
                &HostState::Present {
                    digest: Some(s.digest())
                }
            ),
            Some(HostChange::Apply)
        );
    }

    #[test]
    fn mixed_family_forward_is_rejected() {
        let s = spec(HostRules {
            forwards: vec![PortForward {
                proto: L4Proto::Udp,
                host_port: 53,
                host_addr: Some("2001:db8::1".parse().unwrap()),
                to_addr: "10.0.0.2".parse().unwrap(),
                to_port: 53,
            }],
            ..Default::default()
        });
        assert!(s.check().unwrap_err().contains("mixes IPv4 and IPv6"));
        assert!(spec(HostRules::default()).check().is_ok());
    }

    #[test]
    fn parses_comment_udata() {
        let mut b = vec![0u8, 6];
        b.extend_from_slice(b"hello\0");
        assert_eq!(udata_comment(&b).as_deref(), Some("hello"));
        assert_eq!(udata_comment(&[1, 1, 9]), None);
    }

    #[test]
    fn spec_from_desired_takes_unbridged_veths_with_macvlan_addrs() {
        use crate::model::{Interface, Macvlan, NetnsSpec, VethHost};
        let iface = |name: &str, host: &str, bridge: Option<&str>, addr: &str| Interface {
            name: IfName::new(name).unwrap(),
            kind: InterfaceKind::Veth(VethHost {
                name: IfName::new(host).unwrap(),
                addrs: vec!["10.0.0.1/24".parse().unwrap()],
                bridge: bridge.map(|b| IfName::new(b).unwrap()),
            }),
            addrs: vec![addr.parse().unwrap()],
            mtu: None,
            mac: None,
            macvlan: None,
        };
        let mut wan = iface("wan", "ve-c-wan", None, "10.0.0.2/24");
        wan.macvlan = Some(Macvlan {
            name: IfName::new("mv-wan").unwrap(),
            addrs: vec!["10.0.0.10/24".parse().unwrap()],
            vrid: None,
            mac: None,
        });
        let d = Desired {
            id: ContainerId::new("c").unwrap(),
            netns: NetnsSpec::Owned {
                path: "/run/netns/c".into(),
            },
            interfaces: vec![iface("lan", "ve-c-lan", Some("br0"), "10.1.0.2/24"), wan],
            routes: vec![],
            sysctls: vec![],
            nft: None,
            host_rules: HostRules {
                anti_spoof: true,
                ..Default::default()
            },
        };
        let s = HostSpec::from_desired(&d);
        assert_eq!(s.links.len(), 1);
        assert_eq!(s.links[0].host_if.as_str(), "ve-c-wan");
        let want: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "10.0.0.10".parse().unwrap()];
        assert_eq!(s.links[0].container_addrs, want);
    }

    #[test]
    fn table_name_carries_the_id() {
        assert_eq!(table_name(&ContainerId::new("a.b").unwrap()), "netprov-a.b");
    }
}
