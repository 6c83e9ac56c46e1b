//! Whether a batch libnftables built for one fresh netns means the same in another.
//!
//! libnftables resolves some words of the text against the netns or the host it runs
//! in and puts the *result* in the batch: an interface name after `iif`/`oif`/`sdif`,
//! in an `iface_index` set, a `fwd`/`dup` device or a `fib … oif` comparison becomes
//! that netns's interface index; `skuid`/`skgid` names become the ids NSS returned; a
//! `socket cgroupv2` path becomes the cgroup's inode number. Such a batch is bound to
//! where it was built and must not be replayed: [`check`] refuses it. The one index
//! that is the same everywhere is the loopback's (`LOOPBACK_IFINDEX` is 1 in every
//! netns), so `iif lo` / `oif lo` compared directly is allowed.
//!
//! Host *files* libnftables reads (services, protocols, iproute2's tables,
//! connlabel.conf, the time zone) are part of the cache key instead (see `mod.rs`),
//! and DNS is off while a cacheable batch is built.
//!
//! The check is a whitelist: message types other than the ones a load into a fresh
//! netns sends, or expressions it does not know to be harmless, make the batch
//! non-portable only where they could carry an index; unknown message types refuse.

use crate::nft::netlink::{attr, attrs, nft_attrs, whole_messages, NFGENMSG_LEN, NLMSG_HDRLEN};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;

// enum nf_tables_msg_types
const DELTABLE: u16 = 2;
const NEWTABLE: u16 = 0;
const NEWCHAIN: u16 = 3;
const NEWRULE: u16 = 6;
const NEWSET: u16 = 9;
const NEWSETELEM: u16 = 12;
const NEWOBJ: u16 = 18;
const NEWFLOWTABLE: u16 = 22;

const NLA_F_NESTED: u16 = 0x8000;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_ECHO: u16 = 0x8;

const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_SOCKET_KEY: u16 = 1;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_DATA_TYPE: u16 = 6;

// enum nft_meta_keys
const META_IIF: u32 = 4;
const META_OIF: u32 = 5;
const META_SKUID: u32 = 10;
const META_SKGID: u32 = 11;
const META_SDIF: u32 = 33;
const FIB_RESULT_OIF: u32 = 1;
const SOCKET_CGROUPV2: u32 = 3;
const LOOPBACK_IFINDEX: u32 = 1;

/// nft's datatype ids whose values come from the netns or the host (`TYPE_IFINDEX`,
/// `TYPE_UID`, `TYPE_GID`, `TYPE_CGROUPV2`); a concatenation packs one id per 6 bits.
const HOST_BOUND_TYPES: [u32; 4] = [20, 24, 25, 48];
const TYPE_BITS: u32 = 6;

/// `Ok` when the batch (begin … end, as libnftables sent it) can be replayed into
/// another fresh netns; otherwise why not.
pub fn check(batch: &[u8]) -> Result<(), String> {
    let msgs = whole_messages(batch).ok_or("not a sequence of netlink messages")?;
    let (first, last) = match (msgs.first(), msgs.last()) {
        (Some(f), Some(l)) if msgs.len() >= 2 => (f, l),
        _ => return Err("not a batch".into()),
    };
    if first.kind != NFNL_MSG_BATCH_BEGIN || last.kind != NFNL_MSG_BATCH_END {
        return Err("not a batch".into());
    }
    for m in &msgs[1..msgs.len() - 1] {
        let kind = m.kind;
        if kind >> 8 != NFNL_SUBSYS_NFTABLES {
            return Err(format!("message type {kind:#x}"));
        }
        let body = nft_attrs(m.bytes);
        match kind & 0xff {
            NEWRULE => {
                let exprs = attr(body, NFTA_RULE_EXPRESSIONS).unwrap_or(&[]);
                check_exprs(exprs)?;
            }
            NEWSET => {
                for a in [NFTA_SET_KEY_TYPE, NFTA_SET_DATA_TYPE] {
                    if let Some(t) = attr(body, a).and_then(be32) {
                        if host_bound_type(t) {
                            return Err(format!(
                                "a set of type {t} (interface index, uid, gid or cgroup)"
                            ));
                        }
                    }
                }
            }
            DELTABLE | NEWTABLE | NEWCHAIN | NEWSETELEM | NEWOBJ | NEWFLOWTABLE => {}
            other => return Err(format!("nf_tables message {other}")),
        }
    }
    Ok(())
}

/// Prepares a batch for storing:
///
/// * zeroes the alignment padding after every attribute, nested ones included (libmnl
///   leaves whatever the heap held there): an entry then holds no stray process memory,
///   and one text always gives the same bytes. Nests are found by `NLA_F_NESTED`, which
///   libmnl sets on every nest it opens;
/// * clears `NLM_F_ACK` and `NLM_F_ECHO` on every message: a replay needs only the
///   errors, which the kernel reports regardless, and one ack (or echoed object) per
///   message of a large batch would overflow the socket's receive buffer.
///
/// A batch [`check`] would refuse may be left as is.
pub fn normalize(batch: &mut [u8]) {
    let mut off = 0;
    while off + NLMSG_HDRLEN <= batch.len() {
        let len = u32::from_ne_bytes(batch[off..off + 4].try_into().unwrap_or_default()) as usize;
        if len < NLMSG_HDRLEN || off + len > batch.len() {
            return;
        }
        let flags =
            u16::from_ne_bytes([batch[off + 6], batch[off + 7]]) & !(NLM_F_ACK | NLM_F_ECHO);
        batch[off + 6..off + 8].copy_from_slice(&flags.to_ne_bytes());
        if len >= NLMSG_HDRLEN + NFGENMSG_LEN {
            zero_attr_padding(&mut batch[off + NLMSG_HDRLEN + NFGENMSG_LEN..off + len]);
        }
        off += (len + 3) & !3;
    }
}

fn zero_attr_padding(mut b: &mut [u8]) {
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let nested = u16::from_ne_bytes([b[2], b[3]]) & NLA_F_NESTED != 0;
        if len < 4 || len > b.len() {
            return;
        }
        let aligned = ((len + 3) & !3).min(b.len());
        if nested {
            zero_attr_padding(&mut b[4..len]);
        }
        b[len..aligned].fill(0);
        b = &mut b[aligned..];
    }
}

fn host_bound_type(mut t: u32) -> bool {
    while t != 0 {
        if HOST_BOUND_TYPES.contains(&(t & ((1 << TYPE_BITS) - 1))) {
            return true;
        }
        t >>= TYPE_BITS;
    }
    false
}

/// The expressions of one rule, in order: each is (name, data).
fn check_exprs(list: &[u8]) -> Result<(), String> {
    let exprs: Vec<(&[u8], &[u8])> = attrs(list)
        .filter(|(k, _)| *k == NFTA_LIST_ELEM)
        .map(|(_, e)| {
            let name = attr(e, NFTA_EXPR_NAME).unwrap_or(&[]);
            let name = name.split(|c| *c == 0).next().unwrap_or(&[]);
            (name, attr(e, NFTA_EXPR_DATA).unwrap_or(&[]))
        })
        .collect();
    for (i, (name, data)) in exprs.iter().enumerate() {
        match *name {
            b"meta" => {
                let key = attr(data, NFTA_META_KEY).and_then(be32);
                match key {
                    Some(META_IIF | META_OIF | META_SDIF) => {
                        let dreg = attr(data, NFTA_META_DREG).and_then(be32);
                        if !compares_to_loopback(dreg, exprs.get(i + 1)) {
                            return Err("an interface index (iif/oif/sdif other than lo)".into());
                        }
                    }
                    Some(META_SKUID | META_SKGID) => return Err("skuid/skgid".into()),
                    _ => {}
                }
            }
            b"fib" if attr(data, NFTA_FIB_RESULT).and_then(be32) == Some(FIB_RESULT_OIF) => {
                return Err("fib … oif (an interface index)".into())
            }
            b"socket" if attr(data, NFTA_SOCKET_KEY).and_then(be32) == Some(SOCKET_CGROUPV2) => {
                return Err("socket cgroupv2 (a cgroup id)".into())
            }
            b"fwd" | b"dup" => return Err("fwd/dup (a device index)".into()),
            b"inner" => return Err("inner expressions".into()),
            _ => {}
        }
    }
    Ok(())
}

/// The expression after a `meta iif` (register `dreg`) is a `cmp` of that register
/// with the loopback's index.
fn compares_to_loopback(dreg: Option<u32>, next: Option<&(&[u8], &[u8])>) -> bool {
    let Some((b"cmp", data)) = next else {
        return false;
    };
    let sreg = attr(data, NFTA_CMP_SREG).and_then(be32);
    let value = attr(data, NFTA_CMP_DATA).and_then(|d| attr(d, NFTA_DATA_VALUE));
    dreg.is_some() && sreg == dreg && value == Some(&LOOPBACK_IFINDEX.to_ne_bytes()[..])
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        crate::nft::netlink::put_attr(&mut b, kind, payload);
        b
    }

    fn msg(kind: u16, attrs: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len();
        let mut b = Vec::new();
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&[0; 10]);
        b.extend_from_slice(&[1, 0, 0, 0]);
        b.extend_from_slice(attrs);
        b
    }

    fn batch(inner: &[Vec<u8>]) -> Vec<u8> {
        let mut b = msg(NFNL_MSG_BATCH_BEGIN, &[]);
        for m in inner {
            b.extend_from_slice(m);
        }
        b.extend(msg(NFNL_MSG_BATCH_END, &[]));
        b
    }

    fn nft(kind: u16, attrs: &[u8]) -> Vec<u8> {
        msg((NFNL_SUBSYS_NFTABLES << 8) | kind, attrs)
    }

    fn expr(name: &str, data: &[Vec<u8>]) -> Vec<u8> {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        let mut e = nla(NFTA_EXPR_NAME, &n);
        e.extend(nla(NFTA_EXPR_DATA, &data.concat()));
        nla(NFTA_LIST_ELEM, &e)
    }

    fn u32a(kind: u16, v: u32) -> Vec<u8> {
        nla(kind, &v.to_be_bytes())
    }

    fn rule(exprs: &[Vec<u8>]) -> Vec<u8> {
        nft(NEWRULE, &nla(NFTA_RULE_EXPRESSIONS, &exprs.concat()))
    }

    fn meta(key: u32) -> Vec<u8> {
        expr("meta", &[u32a(NFTA_META_KEY, key), u32a(NFTA_META_DREG, 1)])
    }

    fn cmp(sreg: u32, value: u32) -> Vec<u8> {
        let data = nla(NFTA_DATA_VALUE, &value.to_ne_bytes());
        expr(
            "cmp",
            &[
                u32a(NFTA_CMP_SREG, sreg),
                u32a(2, 0),
                nla(NFTA_CMP_DATA, &data),
            ],
        )
    }

    #[test]
    fn a_plain_ruleset_is_portable() {
        let b = batch(&[
            nft(DELTABLE, &[]),
            nft(NEWTABLE, &nla(1, b"filter\0")),
            nft(NEWCHAIN, &nla(3, b"input\0")),
            rule(&[meta(16), cmp(1, 6), expr("counter", &[])]),
            rule(&[
                meta(META_IIF),
                cmp(1, LOOPBACK_IFINDEX),
                expr("immediate", &[]),
            ]),
            nft(NEWSET, &u32a(NFTA_SET_KEY_TYPE, 7 << TYPE_BITS | 13)),
            nft(NEWSETELEM, &[]),
        ]);
        assert_eq!(check(&b), Ok(()));
    }

    #[test]
    fn netns_and_host_bound_values_are_refused() {
        let refused = [
            rule(&[meta(META_IIF), cmp(1, 2)]),
            rule(&[meta(META_OIF), cmp(2, LOOPBACK_IFINDEX)]),
            rule(&[meta(META_SDIF), expr("lookup", &[])]),
            rule(&[meta(META_IIF)]),
            rule(&[meta(META_SKUID), cmp(1, 0)]),
            rule(&[
                expr("fib", &[u32a(NFTA_FIB_RESULT, FIB_RESULT_OIF)]),
                cmp(1, 0),
            ]),
            rule(&[expr("socket", &[u32a(NFTA_SOCKET_KEY, SOCKET_CGROUPV2)])]),
            rule(&[expr("fwd", &[])]),
            rule(&[expr("dup", &[])]),
            nft(NEWSET, &u32a(NFTA_SET_KEY_TYPE, 20)),
            nft(NEWSET, &u32a(NFTA_SET_KEY_TYPE, 7 << TYPE_BITS | 20)),
            nft(
                NEWSET,
                &[u32a(NFTA_SET_KEY_TYPE, 7), u32a(NFTA_SET_DATA_TYPE, 20)].concat(),
            ),
            nft(8, &[]), // DELRULE: names a handle
        ];
        for (i, m) in refused.iter().enumerate() {
            assert!(check(&batch(std::slice::from_ref(m))).is_err(), "case {i}");
        }
    }

    #[test]
    fn acks_and_echoes_are_not_asked_for() {
        let mut m = nft(NEWTABLE, &[]);
        m[6..8].copy_from_slice(&(1 | NLM_F_ACK | NLM_F_ECHO | 0x400).to_ne_bytes());
        let mut b = batch(&[m]);
        normalize(&mut b);
        let m = whole_messages(&b).unwrap()[1].bytes;
        assert_eq!(
            u16::from_ne_bytes([m[6], m[7]]),
            1 | 0x400,
            "REQUEST and CREATE kept"
        );
    }

    #[test]
    fn padding_is_zeroed_at_every_depth() {
        // "cmp" (len 7) and one byte of stale padding, inside two nests; then a
        // top-level one-byte attribute with three.
        let name = [7, 0, NFTA_EXPR_NAME as u8, 0, b'c', b'm', b'p', 0xee];
        let elem = nla(NFTA_LIST_ELEM | NLA_F_NESTED, &name);
        let mut attrs = nla(NFTA_RULE_EXPRESSIONS | NLA_F_NESTED, &elem);
        attrs.extend_from_slice(&[5, 0, 9, 0, 1, 0xee, 0xee, 0xee]);
        let mut b = batch(&[nft(NEWRULE, &attrs)]);
        let before = b.clone();
        normalize(&mut b);
        assert!(before.contains(&0xee) && !b.contains(&0xee));
        assert_eq!(b.len(), before.len());
        let diff = b.iter().zip(&before).filter(|(x, y)| x != y).count();
        assert_eq!(diff, 4, "only the four padding bytes change");
        let once = b.clone();
        normalize(&mut b);
        assert_eq!(b, once);
    }

    #[test]
    fn anything_but_a_whole_batch_is_refused() {
        let ok = batch(&[nft(NEWTABLE, &[])]);
        assert!(check(&ok).is_ok());
        assert!(check(&ok[..ok.len() - 1]).is_err());
        assert!(check(&ok[NLMSG_HDRLEN + NFGENMSG_LEN..]).is_err());
        assert!(check(&[]).is_err());
        assert!(
            check(&batch(&[msg(0x0a01 + 0x100, &[])])).is_err(),
            "another subsystem"
        );
    }
}
