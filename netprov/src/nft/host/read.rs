//! Reading the container's host table back: a few requests about this one table, read
//! until they form one snapshot.

use std::path::Path;

use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::ProtoFamily;

use super::build::{self, cstring};
use super::{table_name, HostSpec, HostState, HostTable, TABLE_PREFIX};
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

pub(super) fn table_exists(sock: &NfSocket, table: &str) -> std::io::Result<bool> {
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
