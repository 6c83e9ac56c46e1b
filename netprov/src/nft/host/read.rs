//! Reading the container's host table back: a few requests about this one table, read
//! until they form one snapshot.

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::path::Path;

use nftnl::nftnl_sys::{self as sys, libc};

use super::build::{self, cstring};
use super::obj::{ChainObj, RuleObj, SetObj, TableObj};
use super::{table_name, HostExpected, HostState, HostTable};
use crate::error::OpError;
use crate::kernel::netns::in_netns;
use crate::model::ContainerId;
use crate::nft::netlink::NfSocket;

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
pub fn observe_host_for(host_netns: &Path, expected: &HostExpected) -> Result<HostState, OpError> {
    let spec = expected.spec();
    let table = spec.table_name();
    let op = format!(
        "read nftables table inet {table} in netns {}",
        host_netns.display()
    );
    // The expected table is built only when there is a table to compare it with.
    let differs = |have: &HostTable| !spec.is_empty() && *have != *expected.table();
    in_netns(host_netns, move || -> std::io::Result<HostState> {
        let mut st = observe_here(&table)?;
        for _ in 0..2 {
            match &st {
                HostState::Present(have) if differs(have) => {
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
pub(super) fn observe_here(table: &str) -> std::io::Result<HostState> {
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

/// The replies of one read: the content so far, and the generations they were made
/// from (`None`: an interrupted dump).
#[derive(Default)]
struct Snapshot {
    gens: BTreeSet<Option<u16>>,
    content: HostTable,
    /// A set element came twice (see `feed`).
    torn: bool,
}

impl Snapshot {
    fn feed(&mut self, msgs: Vec<Vec<u8>>) {
        for m in &msgs {
            self.gens.insert(generation(m));
            // A set element seen twice means the kernel's walk of the set was disturbed:
            // a hash set's elements are dumped by skipping the count already sent, and
            // the rhashtable resize that follows a bulk insert (a deferred worker, late on
            // a busy machine) reorders them between two parts of the dump, so some come
            // twice and as many never. No generation changes; read again.
            if !self.content.add(msg_kind(m), m) {
                self.torn = true;
            }
        }
    }

    /// The table, if every reply came from one generation.
    fn consistent(self) -> Option<HostState> {
        (self.gens.len() == 1 && !self.gens.contains(&None) && !self.torn)
            .then(|| HostState::Present(Box::new(self.content)))
    }
}

/// One read of the table; `None` when the replies are not one snapshot.
fn read_once(sock: &NfSocket, table: &str) -> std::io::Result<Option<HostState>> {
    let ctable = cstring(table);
    let mut snap = Snapshot::default();
    if !read_table_and_chains(sock, &ctable, &mut snap)? {
        return Ok(Some(HostState::Absent));
    }
    read_sets_and_rules(sock, &ctable, &mut snap)?;
    Ok(snap.consistent())
}

/// The table and the chains netprov may generate, in one datagram, one round trip (by
/// name: chain dumps are not filtered by table in the kernel). `false`: no such table.
fn read_table_and_chains(
    sock: &NfSocket,
    ctable: &CStr,
    snap: &mut Snapshot,
) -> std::io::Result<bool> {
    let mut reqs = vec![get_table(ctable, 1)];
    for chain in build::CHAINS {
        let seq = reqs.len() as u32 + 1;
        let chain = ChainObj::with_strs(&[
            (sys::NFTNL_CHAIN_TABLE, ctable),
            (sys::NFTNL_CHAIN_NAME, &cstring(chain)),
        ]);
        reqs.push(chain.msg(libc::NFT_MSG_GETCHAIN, libc::NLM_F_ACK, seq));
    }
    for (i, reply) in sock.pipeline(&reqs)?.into_iter().enumerate() {
        match reply {
            Ok(msgs) => snap.feed(msgs),
            Err(libc::ENOENT) if i == 0 => return Ok(false),
            // A chain netprov does not generate here.
            Err(libc::ENOENT) => {}
            Err(e) => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
    Ok(true)
}

/// The table's sets, the elements of the sets netprov may generate, and its rules.
///
/// Dumps one at a time: a socket runs one dump at a time, and the kernel keeps it
/// running until the reader has taken its NLMSG_DONE, so a second dump in the same
/// datagram is answered EBUSY. A table deleted while we read it reads as empty (the
/// plan then replaces it).
fn read_sets_and_rules(sock: &NfSocket, ctable: &CStr, snap: &mut Snapshot) -> std::io::Result<()> {
    let dump = |req: Vec<u8>| match sock.dump(&req) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Vec::new()),
        r => r,
    };
    let sets = SetObj::with_strs(&[(sys::NFTNL_SET_TABLE, ctable)]);
    snap.feed(dump(sets.msg(libc::NFT_MSG_GETSET, libc::NLM_F_DUMP, 1))?);
    // The elements of the sets netprov may generate that exist (another set is drift
    // by its mere presence).
    let present: Vec<&str> = build::SETS
        .into_iter()
        .filter(|s| snap.content.sets.contains_key(*s))
        .collect();
    for set in present {
        let set = SetObj::with_strs(&[
            (sys::NFTNL_SET_TABLE, ctable),
            (sys::NFTNL_SET_NAME, &cstring(set)),
        ]);
        snap.feed(dump(set.elems_msg(
            libc::NFT_MSG_GETSETELEM,
            libc::NLM_F_DUMP,
            1,
        ))?);
    }
    let rules = RuleObj::with_strs(&[(sys::NFTNL_RULE_TABLE, ctable)]);
    snap.feed(dump(rules.msg(libc::NFT_MSG_GETRULE, libc::NLM_F_DUMP, 1))?);
    Ok(())
}

/// A GETTABLE (with an ack) for the table of this name.
fn get_table(ctable: &CStr, seq: u32) -> Vec<u8> {
    TableObj::with_strs(&[(sys::NFTNL_TABLE_NAME, ctable)]).msg(
        libc::NFT_MSG_GETTABLE,
        libc::NLM_F_ACK,
        seq,
    )
}

pub(super) fn table_exists(sock: &NfSocket, table: &str) -> std::io::Result<bool> {
    let req = get_table(&cstring(table), 1);
    match sock.pipeline(&[req])?.pop() {
        Some(Ok(_)) => Ok(true),
        Some(Err(libc::ENOENT)) => Ok(false),
        Some(Err(e)) => Err(std::io::Error::from_raw_os_error(e)),
        None => Ok(false),
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
        let req = TableObj::new().msg(libc::NFT_MSG_GETTABLE, libc::NLM_F_DUMP, 3);
        NfSocket::open()?.dump(&req)
    })?
    .map_err(|e| OpError::io(op, &e))?;
    Ok(msgs
        .iter()
        .filter(|m| {
            m.len() >= 6 && u16::from_ne_bytes([m[4], m[5]]) & 0xff == libc::NFT_MSG_NEWTABLE as u16
        })
        .filter_map(|m| table_msg_name(m))
        .filter_map(|n| crate::marks::host_table_owner(&n))
        .collect())
}

/// The table name in a NEWTABLE message.
fn table_msg_name(msg: &[u8]) -> Option<String> {
    Some(TableObj::parse(msg)?.str(sys::NFTNL_TABLE_NAME)).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostRules, IfName};
    use crate::nft::host::VethLink;

    /// The messages of a table whose sets have elements, as a dump would return them.
    fn table_messages() -> Vec<build::NftMsg> {
        let links = (0..3u32)
            .map(|i| VethLink {
                host_if: IfName::new(&format!("np-t{i}")).unwrap(),
                container_addrs: vec![std::net::Ipv4Addr::from(0x0a00_0002 + i).into()],
            })
            .collect();
        let rules = HostRules {
            anti_spoof: true,
            ..Default::default()
        };
        build::messages(&crate::nft::host::HostSpec::new(
            ContainerId::new("t").unwrap(),
            &rules,
            links,
        ))
    }

    #[test]
    fn a_set_element_dumped_twice_is_a_torn_read() {
        let msgs = table_messages();
        let mut once = Snapshot::default();
        once.feed(msgs.iter().map(|m| m.bytes.clone()).collect());
        assert!(once.consistent().is_some());
        let elems: Vec<Vec<u8>> = msgs
            .iter()
            .filter(|m| i32::from(m.kind) == libc::NFT_MSG_NEWSETELEM)
            .map(|m| m.bytes.clone())
            .collect();
        assert!(!elems.is_empty());
        let mut twice = Snapshot::default();
        twice.feed(msgs.iter().map(|m| m.bytes.clone()).collect());
        twice.feed(elems);
        assert!(twice.consistent().is_none());
    }
}
