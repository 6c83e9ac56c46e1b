//! Host-side rules netprov generates for one container, built as nf_tables messages.
//!
//! Layout: one table per container, `inet netprov-<id>`, that netprov alone owns (the
//! name is the ownership mark). Creating, replacing and removing it are each ONE
//! netfilter batch, so the kernel swaps the container's whole rule set atomically, and
//! every operation costs O(this container): no other table — netprov's for other
//! containers or anyone else's — is read or written. Chains (all created only when
//! needed), see [`build`] for the sets they use:
//!
//! * `spoof`  — filter, prerouting, priority raw (-300): on each veth host end, accept
//!   the container's own addresses on that link, IPv6 link-local and `::` (NDP, DAD),
//!   drop the rest of IPv4/IPv6;
//! * `dnat`   — nat, prerouting, dstnat (-100): port forwards for traffic arriving
//!   from outside;
//! * `dnat-local` — nat, output, dstnat (-100): the same forwards for connections the
//!   host itself opens to one of its local addresses;
//! * `snat`   — nat, postrouting, srcnat (100): masquerade of the container's addresses
//!   leaving through any interface other than their host end.
//!
//! Drift: [`observe_host`] reads the table's whole content (a few requests about this
//! one table) and [`plan_host`] compares it with the content the spec generates
//! ([`content::HostTable`]), so any edit of the table — a flushed chain, a deleted or
//! added rule, a changed set element — is seen. Nothing is recorded in the table.
//!
//! Replacing uses the nft idiom "add table; delete table; add table …" inside one batch:
//! the add makes the delete valid whether or not the table existed.

mod build;
mod content;

use std::net::IpAddr;
use std::path::Path;

use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::ProtoFamily;

use self::build::cstring;
pub use self::content::HostTable;
use super::netlink::{BatchError, NfSocket};
use crate::error::OpError;
use crate::kernel::netns::in_netns;
use crate::model::{ContainerId, Desired, HostRules, IfName, InterfaceKind};

/// Prefix of every host table netprov owns.
pub const TABLE_PREFIX: &str = "netprov-";

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

    /// The table content this spec generates, canonically (what `check` compares the
    /// kernel's table with).
    pub fn expected(&self) -> HostTable {
        HostTable::from_messages(&build::messages(self))
    }
}

pub fn table_name(id: &ContainerId) -> String {
    format!("{TABLE_PREFIX}{id}")
}

/// What exists in the host netns for one container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    Absent,
    /// The table exists, with this content.
    Present(Box<HostTable>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostChange {
    /// Create or atomically replace the container's table; `differs` says how the
    /// existing table differs from the spec (`None`: there is no table).
    Apply { differs: Option<String> },
    /// Delete the container's table.
    Remove,
}

/// `None` when the host table holds exactly what `spec` generates.
pub fn plan_host(spec: &HostSpec, observed: &HostState) -> Option<HostChange> {
    match (spec.is_empty(), observed) {
        (true, HostState::Absent) => None,
        (true, HostState::Present(_)) => Some(HostChange::Remove),
        (false, HostState::Absent) => Some(HostChange::Apply { differs: None }),
        (false, HostState::Present(have)) => {
            let want = spec.expected();
            (**have != want).then(|| HostChange::Apply {
                differs: Some(have.describe_difference(&want)),
            })
        }
    }
}

/// Reads the container's table in the host netns at `host_netns`: one round trip for
/// the table and its chains (by name), then one dump each for its sets, the elements of
/// each set, and its rules — every request restricted by the kernel to this table.
pub fn observe_host(host_netns: &Path, id: &ContainerId) -> Result<HostState, OpError> {
    let table = table_name(id);
    let op = format!(
        "read nftables table inet {table} in netns {}",
        host_netns.display()
    );
    let t = table.clone();
    in_netns(host_netns, move || observe_here(&t))?.map_err(|e| OpError::io(op, &e))
}

/// [`observe_host`] for the engine: when the table is there but differs from what
/// `spec` generates, reads it up to twice more (1 ms apart) and reports the last read.
///
/// Kernel quirks make a read that overlaps another process's commit replacing this
/// table inconsistent even within one generation: the table's use count is not
/// transactional (the old table already counts 0 while the batch is prepared), and a
/// rule dump filtered by table name stops at the first table of that name in the
/// list — during the commit, the old one, whose rules are no longer active — and so
/// returns no rule. Such a read can only show a difference that is not there, never
/// hide one, and it does not last; real drift is still there on the re-read. An
/// unchanged table (the no-op path) is read once.
pub fn observe_host_for(host_netns: &Path, spec: &HostSpec) -> Result<HostState, OpError> {
    let table = spec.table_name();
    let op = format!(
        "read nftables table inet {table} in netns {}",
        host_netns.display()
    );
    let want = (!spec.is_empty()).then(|| spec.expected());
    in_netns(host_netns, move || -> std::io::Result<HostState> {
        let mut st = observe_here(&table)?;
        for _ in 0..2 {
            match (&st, &want) {
                (HostState::Present(have), Some(want)) if **have != *want => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    st = observe_here(&table)?;
                }
                _ => break,
            }
        }
        Ok(st)
    })?
    .map_err(|e| OpError::io(op, &e))
}

/// Reads until one consistent snapshot: every reply carries the ruleset generation
/// (low 16 bits, nfgenmsg `res_id`) it was made from, and a dump the kernel saw change
/// is flagged NLM_F_DUMP_INTR; a mix means the table (or any nf_tables object in the
/// netns) changed while being read, so read again.
fn observe_here(table: &str) -> std::io::Result<HostState> {
    let sock = NfSocket::open()?;
    for _ in 0..20 {
        if let Some(st) = read_once(&sock, table)? {
            return Ok(st);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::Interrupted,
        "the ruleset kept changing while it was read",
    ))
}

/// The generation a reply was made from, or `None` when the dump was interrupted.
fn generation(m: &[u8]) -> Option<u16> {
    const NLM_F_DUMP_INTR: u16 = 0x10;
    let flags = u16::from_ne_bytes([*m.get(6)?, *m.get(7)?]);
    if flags & NLM_F_DUMP_INTR != 0 {
        return None;
    }
    Some(u16::from_be_bytes([*m.get(18)?, *m.get(19)?]))
}

/// One read of the table; `None` when the replies are not one snapshot.
fn read_once(sock: &NfSocket, table: &str) -> std::io::Result<Option<HostState>> {
    let ctable = cstring(table);
    // One datagram, one round trip: the table and the chains netprov may generate (by
    // name: chain dumps are not filtered by table in the kernel).
    let mut reqs = vec![request_msg(
        libc::NFT_MSG_GETTABLE,
        libc::NLM_F_ACK,
        1,
        |nlh| unsafe {
            let t = sys::nftnl_table_alloc();
            sys::nftnl_table_set_str(t, sys::NFTNL_TABLE_NAME as u16, ctable.as_ptr());
            sys::nftnl_table_nlmsg_build_payload(nlh, t);
            sys::nftnl_table_free(t);
        },
    )];
    for chain in build::CHAINS {
        let cchain = cstring(chain);
        let seq = reqs.len() as u32 + 1;
        reqs.push(request_msg(
            libc::NFT_MSG_GETCHAIN,
            libc::NLM_F_ACK,
            seq,
            |nlh| unsafe {
                let c = sys::nftnl_chain_alloc();
                sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_TABLE as u16, ctable.as_ptr());
                sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_NAME as u16, cchain.as_ptr());
                sys::nftnl_chain_nlmsg_build_payload(nlh, c);
                sys::nftnl_chain_free(c);
            },
        ));
    }
    let mut gens = std::collections::BTreeSet::new();
    let mut content = HostTable::default();
    let feed = |gens: &mut std::collections::BTreeSet<_>, c: &mut HostTable, msgs: Vec<Vec<u8>>| {
        for m in &msgs {
            gens.insert(generation(m));
            c.add(msg_kind(m), m);
        }
    };
    for (i, reply) in sock.pipeline(&reqs)?.into_iter().enumerate() {
        match reply {
            Ok(msgs) => feed(&mut gens, &mut content, msgs),
            Err(libc::ENOENT) if i == 0 => return Ok(Some(HostState::Absent)),
            // A chain netprov does not generate here.
            Err(libc::ENOENT) => {}
            Err(e) => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
    // Dumps one at a time: a socket runs one dump at a time, and the kernel keeps it
    // running until the reader has taken its NLMSG_DONE, so a second dump in the same
    // datagram is answered EBUSY. A table deleted while we read it reads as empty (the
    // plan then replaces it).
    let dump = |req: Vec<u8>| match sock.dump(&req) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Vec::new()),
        r => r,
    };
    let sets = dump(request_msg(
        libc::NFT_MSG_GETSET,
        libc::NLM_F_DUMP,
        1,
        |nlh| unsafe {
            let s = sys::nftnl_set_alloc();
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, ctable.as_ptr());
            sys::nftnl_set_nlmsg_build_payload(nlh, s);
            sys::nftnl_set_free(s);
        },
    ))?;
    feed(&mut gens, &mut content, sets);
    // The elements of the sets netprov may generate that exist (another set is drift
    // by its mere presence).
    let present: Vec<&str> = build::SETS
        .into_iter()
        .filter(|s| content.sets.contains_key(*s))
        .collect();
    for set in present {
        let cname = cstring(set);
        feed(
            &mut gens,
            &mut content,
            dump(request_msg(
                libc::NFT_MSG_GETSETELEM,
                libc::NLM_F_DUMP,
                1,
                |nlh| unsafe {
                    let s = sys::nftnl_set_alloc();
                    sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, ctable.as_ptr());
                    sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, cname.as_ptr());
                    sys::nftnl_set_elems_nlmsg_build_payload(nlh, s);
                    sys::nftnl_set_free(s);
                },
            ))?,
        );
    }
    feed(
        &mut gens,
        &mut content,
        dump(request_msg(
            libc::NFT_MSG_GETRULE,
            libc::NLM_F_DUMP,
            1,
            |nlh| unsafe {
                let r = sys::nftnl_rule_alloc();
                sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_TABLE as u16, ctable.as_ptr());
                sys::nftnl_rule_nlmsg_build_payload(nlh, r);
                sys::nftnl_rule_free(r);
            },
        ))?,
    );
    Ok((gens.len() == 1 && !gens.contains(&None)).then(|| HostState::Present(Box::new(content))))
}

/// Creates or atomically replaces the container's table in the host netns: one batch,
/// one datagram, one transaction — whatever the number of interfaces (see
/// [`NfSocket::run_batch`]).
///
/// A table that is not there is created without the `add table; delete table` prefix
/// (and with NLM_F_EXCL, so one that appeared meanwhile fails the batch with EEXIST and
/// is then replaced): a transaction that deletes an object — even one it created
/// itself — makes closing the socket wait for an RCU grace period (~8–10 ms), which a
/// first install does not need to pay. One GETTABLE decides.
pub fn apply_host(host_netns: &Path, spec: &HostSpec) -> Result<(), OpError> {
    let op = format!(
        "load nftables table inet {} in netns {}",
        spec.table_name(),
        host_netns.display()
    );
    spec.check().map_err(|e| OpError::new(&op, e))?;
    let table = spec.table_name();
    let mut create = build::messages(spec);
    build::set_exclusive(&mut create[0], true);
    let res = in_netns(host_netns, move || -> Result<(), Refused> {
        let sock = NfSocket::open().map_err(Refused::io)?;
        if !table_exists(&sock, &table).map_err(Refused::io)? {
            match sock.run_batch(&build::batch(&create)) {
                Ok(()) => return Ok(()),
                Err(e) if e.err.raw_os_error() == Some(libc::EEXIST) && e.seq == Some(1) => {}
                Err(e) => return Err(Refused(e, create)),
            }
        }
        let mut replace = build::delete_table(&table);
        build::set_exclusive(&mut create[0], false);
        replace.extend(create);
        sock.run_batch(&build::batch(&replace))
            .map_err(|e| Refused(e, replace))
    })?;
    res.map_err(|r| r.into_op_error(op))
}

/// Deletes the container's table (and with it all its chains and rules) if it exists
/// (an absent one costs one GETTABLE and no transaction).
pub fn remove_host(host_netns: &Path, id: &ContainerId) -> Result<(), OpError> {
    let name = table_name(id);
    let op = format!(
        "delete nftables table inet {name} in netns {}",
        host_netns.display()
    );
    let res = in_netns(host_netns, move || -> Result<(), Refused> {
        let sock = NfSocket::open().map_err(Refused::io)?;
        if !table_exists(&sock, &name).map_err(Refused::io)? {
            return Ok(());
        }
        let msgs = build::delete_table(&name);
        sock.run_batch(&build::batch(&msgs))
            .map_err(|e| Refused(e, msgs))
    })?;
    res.map_err(|r| r.into_op_error(op))
}

fn table_exists(sock: &NfSocket, table: &str) -> std::io::Result<bool> {
    let ctable = cstring(table);
    let req = request_msg(libc::NFT_MSG_GETTABLE, libc::NLM_F_ACK, 1, |nlh| unsafe {
        let t = sys::nftnl_table_alloc();
        sys::nftnl_table_set_str(t, sys::NFTNL_TABLE_NAME as u16, ctable.as_ptr());
        sys::nftnl_table_nlmsg_build_payload(nlh, t);
        sys::nftnl_table_free(t);
    });
    match sock.pipeline(&[req])?.pop() {
        Some(Ok(_)) => Ok(true),
        Some(Err(libc::ENOENT)) => Ok(false),
        Some(Err(e)) => Err(std::io::Error::from_raw_os_error(e)),
        None => Ok(false),
    }
}

/// A batch the kernel refused, with the messages it was made of.
struct Refused(BatchError, Vec<build::NftMsg>);

impl Refused {
    fn io(e: std::io::Error) -> Self {
        Refused(e.into(), Vec::new())
    }

    /// The error names the message the kernel refused ("…: Invalid argument (set
    /// links-v4)").
    fn into_op_error(self, op: String) -> OpError {
        let Refused(e, msgs) = self;
        let mut err = OpError::io(op, &e.err);
        let failed = e.seq.and_then(|s| msgs.get((s as usize).checked_sub(1)?));
        if let Some(m) = failed {
            err.cause = format!("{} ({})", err.cause, content::describe(m.kind, &m.bytes));
        }
        err
    }
}

fn msg_kind(m: &[u8]) -> u16 {
    m.get(4..6)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]) & 0xff)
        .unwrap_or(0)
}

/// The containers that have a host table (`inet netprov-<id>`, `<id>` a valid id) in
/// the host netns at `host_netns`: one dump of the inet tables. Host-wide, for the
/// inventory (`netprov list`, `gc`), never on the per-container path.
pub fn list_host_tables(host_netns: &Path) -> Result<Vec<ContainerId>, OpError> {
    let op = format!("list nftables tables in netns {}", host_netns.display());
    let msgs = in_netns(host_netns, || -> std::io::Result<Vec<Vec<u8>>> {
        NfSocket::open()?.dump(&request_msg(
            libc::NFT_MSG_GETTABLE,
            libc::NLM_F_DUMP,
            3,
            |_| {},
        ))
    })?
    .map_err(|e| OpError::io(op, &e))?;
    Ok(msgs
        .iter()
        .filter(|m| {
            m.len() >= 6 && u16::from_ne_bytes([m[4], m[5]]) & 0xff == libc::NFT_MSG_NEWTABLE as u16
        })
        .filter_map(|m| table_msg_name(m))
        .filter_map(|n| n.strip_prefix(TABLE_PREFIX).map(str::to_owned))
        .filter_map(|id| ContainerId::new(&id).ok())
        .collect())
}

/// The table name in a NEWTABLE message.
fn table_msg_name(msg: &[u8]) -> Option<String> {
    // SAFETY: msg is one complete netlink message; the table object is freed after the
    // name (valid until then) is copied.
    unsafe {
        let t = sys::nftnl_table_alloc();
        let name = if sys::nftnl_table_nlmsg_parse(msg.as_ptr().cast(), t) >= 0 {
            let p = sys::nftnl_table_get_str(t, sys::NFTNL_TABLE_NAME as u16);
            (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
        } else {
            None
        };
        sys::nftnl_table_free(t);
        name
    }
}

fn request_msg(
    kind: i32,
    flags: i32,
    seq: u32,
    payload: impl FnOnce(*mut libc::nlmsghdr),
) -> Vec<u8> {
    let mut buf = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize];
    // SAFETY: buf is large enough for any nftables request; `payload` writes only a
    // table/chain/set name or two.
    unsafe {
        let nlh = sys::nftnl_nlmsg_build_hdr(
            buf.as_mut_ptr().cast(),
            kind as u16,
            ProtoFamily::Inet as u16,
            flags as u16,
            seq,
        );
        payload(nlh);
        buf.truncate((*nlh).nlmsg_len as usize);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{L4Proto, PortForward};

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
            plan_host(&s, &HostState::Present(Box::default())),
            Some(HostChange::Remove)
        );
    }

    fn present(t: HostTable) -> HostState {
        HostState::Present(Box::new(t))
    }

    #[test]
    fn same_content_is_a_noop_and_any_difference_is_named() {
        let s = spec(HostRules {
            anti_spoof: true,
            ..Default::default()
        });
        let want = s.expected();
        assert_eq!(plan_host(&s, &present(want.clone())), None);
        assert_eq!(
            plan_host(&s, &HostState::Absent),
            Some(HostChange::Apply { differs: None })
        );
        let differs = |t: HostTable| match plan_host(&s, &present(t)) {
            Some(HostChange::Apply { differs: Some(d) }) => d,
            other => panic!("expected a difference, got {other:?}"),
        };
        // A flushed chain, a deleted rule, an added chain, a changed element, a
        // deleted set, a dormant table.
        let mut t = want.clone();
        t.rules.get_mut("spoof").unwrap().clear();
        assert_eq!(differs(t), "chain spoof has 0 rules, want 6");
        let mut t = want.clone();
        t.rules.get_mut("spoof").unwrap().remove(4);
        assert_eq!(differs(t), "chain spoof has 5 rules, want 6");
        let mut t = want.clone();
        t.rules.insert("evil".into(), vec!["x".into()]);
        t.objects += 1;
        assert_eq!(differs(t), "chain evil is not netprov's (1 rules)");
        let mut t = want.clone();
        t.objects += 1;
        assert!(differs(t).contains("holds 5 chains/sets/objects, netprov generates 4"));
        let mut t = want.clone();
        let e = t.elems.get_mut("links-v4").unwrap();
        e.clear();
        e.insert("\"ve-web1\" . 10.0.0.9".into());
        assert_eq!(
            differs(t),
            "set links-v4: 1 elements missing (e.g. \"ve-web1\" . 10.0.0.2) \
             1 elements not netprov's (e.g. \"ve-web1\" . 10.0.0.9)"
        );
        let mut t = want.clone();
        t.sets.remove("links");
        t.elems.remove("links");
        assert_eq!(differs(t), "set links missing");
        let mut t = want.clone();
        t.flags = 1;
        assert_eq!(differs(t), "table flags are 0x1 (dormant), want 0x0");
        // Another spec's content differs.
        let other = spec(HostRules {
            anti_spoof: true,
            masquerade: true,
            ..Default::default()
        });
        assert!(plan_host(&other, &present(want)).is_some());
    }

    #[test]
    fn expected_content_has_constant_rules_and_one_element_per_address() {
        let links: Vec<VethLink> = (0..500)
            .map(|i| VethLink {
                host_if: IfName::new(&format!("ve-{i}")).unwrap(),
                container_addrs: vec![
                    format!("10.{}.{}.2", i / 256, i % 256).parse().unwrap(),
                    format!("fd00::{i:x}").parse().unwrap(),
                ],
            })
            .collect();
        let s = HostSpec::new(
            ContainerId::new("big").unwrap(),
            &HostRules {
                anti_spoof: true,
                masquerade: true,
                ..Default::default()
            },
            links,
        );
        let t = s.expected();
        assert_eq!(t.rules["spoof"].len(), 6);
        assert_eq!(t.rules["snat"].len(), 4);
        assert_eq!(t.elems["links"].len(), 500);
        assert_eq!(t.elems["links-v4"].len(), 500);
        assert_eq!(t.elems["links-v6"].len(), 500);
        assert_eq!(t.elems["addrs-v6"].len(), 500);
        assert!(t.elems["links-v6"].contains("\"ve-499\" . fd00::1f3"));
        assert_eq!(t.objects as usize, t.chains.len() + t.sets.len());
        // Observe reads exactly the chains and sets netprov may generate.
        assert!(t.chains.keys().all(|c| build::CHAINS.contains(&c.as_str())));
        assert!(t.sets.keys().all(|s| build::SETS.contains(&s.as_str())));
        assert_eq!(t.sets.len(), build::SETS.len());
        // Far below the default 208 KiB socket buffer, let alone a forced larger one.
        let mut msgs = build::delete_table("netprov-big");
        msgs.extend(build::messages(&s));
        let len = build::batch(&msgs).len();
        eprintln!("500 links (v4+v6, anti-spoofing, masquerade): batch {len} bytes");
        assert!(len < 200 * 1024);
    }

    #[test]
    fn messages_describe_themselves_for_errors() {
        let s = spec(HostRules {
            anti_spoof: true,
            ..Default::default()
        });
        let mut msgs = build::delete_table(&s.table_name());
        msgs.extend(build::messages(&s));
        let what: Vec<String> = msgs
            .iter()
            .map(|m| content::describe(m.kind, &m.bytes))
            .collect();
        assert_eq!(
            what[..4],
            ["add table", "delete table", "add table", "set links-v4"]
        );
        assert!(
            what.contains(&"elements of set links".to_owned()),
            "{what:?}"
        );
        assert!(what.contains(&"chain spoof".to_owned()), "{what:?}");
        assert_eq!(what.last().unwrap(), "a rule of chain spoof");
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
