//! The content of a host table in a canonical form, so that what netprov would
//! generate and what the kernel holds compare by value.
//!
//! Both sides go through the same parser: the expected content is parsed from the
//! messages `apply` sends ([`super::build::messages`]), the observed one from the
//! kernel's replies to GET requests about this one table. What the kernel adds on its
//! own or a user may legitimately vary without changing behaviour is left out: rule
//! handles and positions, comments (userdata), object ids, counters.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use nftnl::nftnl_sys::{self as sys, libc};

use super::build::{NftMsg, TYPE_BITS};
use super::obj::{ChainObj, RuleObj, SetObj, TableObj};
use crate::marks::hex;

/// One host table, canonically.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostTable {
    /// Table flags (e.g. 1 = dormant: every base chain unhooked).
    pub flags: u32,
    /// The kernel's use count of the table: chains + sets + stateful objects +
    /// flowtables. Counts objects netprov does not read by name (an extra chain).
    pub objects: u32,
    /// Chain name → `type … hook … prio … policy …` (regular chains: empty).
    pub chains: BTreeMap<String, String>,
    /// Chain name → its rules in order, each as libnftnl prints its expressions.
    pub rules: BTreeMap<String, Vec<String>>,
    /// Set name → `key type … len … flags … data …`.
    pub sets: BTreeMap<String, String>,
    /// Set name → its elements (keys decoded by the set's key type).
    pub elems: BTreeMap<String, BTreeSet<String>>,
}

impl HostTable {
    /// The content `msgs` (NEWTABLE, NEWCHAIN, NEWSET, NEWSETELEM, NEWRULE) create.
    pub fn from_messages(msgs: &[NftMsg]) -> Self {
        let mut t = HostTable::default();
        for m in msgs {
            t.add(m.kind, &m.bytes);
        }
        t.objects = (t.chains.len() + t.sets.len()) as u32;
        t
    }

    /// Adds one NEW* message (a creation or a kernel reply) to the content; `false` when
    /// a set element in it was already there (a disturbed dump, see `read.rs`).
    pub fn add(&mut self, kind: u16, msg: &[u8]) -> bool {
        match i32::from(kind) {
            libc::NFT_MSG_NEWTABLE => {
                if let Some((flags, objects)) = parse_table(msg) {
                    self.flags = flags;
                    self.objects = objects;
                }
            }
            libc::NFT_MSG_NEWCHAIN => {
                if let Some((name, head)) = parse_chain(msg) {
                    self.chains.insert(name, head);
                }
            }
            libc::NFT_MSG_NEWRULE => {
                if let Some((chain, text)) = parse_rule(msg) {
                    self.rules.entry(chain).or_default().push(text);
                }
            }
            libc::NFT_MSG_NEWSET => {
                if let Some((name, head)) = parse_set(msg) {
                    self.elems.entry(name.clone()).or_default();
                    self.sets.insert(name, head);
                }
            }
            libc::NFT_MSG_NEWSETELEM => {
                if let Some((name, keys)) = parse_elems(msg) {
                    let kt = self
                        .sets
                        .get(&name)
                        .and_then(|h| h.split_whitespace().nth(2))
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(0);
                    let e = self.elems.entry(name).or_default();
                    let n = keys.len();
                    let before = e.len();
                    e.extend(keys.iter().map(|k| decode_key(kt, k)));
                    return e.len() == before + n;
                }
            }
            _ => {}
        }
        true
    }

    /// What differs from `want`, for a human: at most a few items, most telling first.
    pub fn describe_difference(&self, want: &HostTable) -> String {
        let mut items = Vec::new();
        if self.flags != want.flags {
            let dormant = if self.flags & 1 != 0 {
                " (dormant)"
            } else {
                ""
            };
            items.push(format!(
                "table flags are {:#x}{dormant}, want {:#x}",
                self.flags, want.flags
            ));
        }
        compare_named(&mut items, "chain", &want.chains, &self.chains);
        let names: BTreeSet<&String> = want.rules.keys().chain(self.rules.keys()).collect();
        for c in names {
            let (w, h) = (
                want.rules.get(c).map(Vec::as_slice).unwrap_or(&[]),
                self.rules.get(c).map(Vec::as_slice).unwrap_or(&[]),
            );
            if w == h {
                continue;
            }
            if !want.chains.contains_key(c) {
                items.push(format!("chain {c} is not netprov's ({} rules)", h.len()));
            } else if w.len() != h.len() {
                items.push(format!("chain {c} has {} rules, want {}", h.len(), w.len()));
            } else if let Some(i) = (0..w.len()).find(|&i| w[i] != h[i]) {
                items.push(format!("chain {c}: rule {} differs", i + 1));
            }
        }
        compare_named(&mut items, "set", &want.sets, &self.sets);
        for (s, w) in &want.elems {
            let Some(h) = self.elems.get(s) else { continue };
            if w == h {
                continue;
            }
            let missing: Vec<&String> = w.difference(h).collect();
            let extra: Vec<&String> = h.difference(w).collect();
            let mut p = format!("set {s}:");
            if let Some(m) = missing.first() {
                let _ = write!(p, " {} elements missing (e.g. {m})", missing.len());
            }
            if let Some(x) = extra.first() {
                let _ = write!(p, " {} elements not netprov's (e.g. {x})", extra.len());
            }
            items.push(p);
        }
        if items.is_empty() && self.objects != want.objects {
            items.push(format!(
                "holds {} chains/sets/objects, netprov generates {}",
                self.objects, want.objects
            ));
        }
        if items.is_empty() {
            items.push("content differs".into());
        }
        let more = items.len().saturating_sub(3);
        items.truncate(3);
        let mut s = items.join("; ");
        if more > 0 {
            let _ = write!(s, "; and {more} more");
        }
        s
    }
}

fn compare_named(
    items: &mut Vec<String>,
    what: &str,
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) {
    for (n, w) in want {
        match have.get(n) {
            None => items.push(format!("{what} {n} missing")),
            Some(h) if h != w => items.push(format!("{what} {n} is `{h}`, want `{w}`")),
            Some(_) => {}
        }
    }
    for n in have.keys().filter(|n| !want.contains_key(*n)) {
        items.push(format!("{what} {n} is not netprov's"));
    }
}

/// What a NEW*/DEL* message is about, for an error ("set links-v4").
pub fn describe(kind: u16, msg: &[u8]) -> String {
    match i32::from(kind) {
        libc::NFT_MSG_NEWTABLE => "add table".into(),
        libc::NFT_MSG_DELTABLE => "delete table".into(),
        libc::NFT_MSG_NEWCHAIN => format!("chain {}", parse_chain(msg).unwrap_or_default().0),
        libc::NFT_MSG_NEWSET => format!("set {}", parse_set(msg).unwrap_or_default().0),
        libc::NFT_MSG_NEWSETELEM => format!(
            "elements of set {}",
            parse_elems(msg).map(|(n, _)| n).unwrap_or_default()
        ),
        libc::NFT_MSG_NEWRULE => {
            format!("a rule of chain {}", parse_rule(msg).unwrap_or_default().0)
        }
        k => format!("message type {k}"),
    }
}

/// Decodes a set key by nft's (possibly concatenated) datatype id.
fn decode_key(key_type: u32, key: &[u8]) -> String {
    let mut types = Vec::new();
    let mut t = key_type;
    while t != 0 {
        types.push(t & ((1 << TYPE_BITS) - 1));
        t >>= TYPE_BITS;
    }
    types.reverse();
    let mut parts = Vec::new();
    let mut rest = key;
    for ty in types {
        let n = match ty {
            7 => 4,
            8 | 41 => 16,
            _ => rest.len(),
        };
        if rest.len() < n {
            break;
        }
        let (v, r) = rest.split_at(n);
        rest = r;
        parts.push(match ty {
            7 => Ipv4Addr::new(v[0], v[1], v[2], v[3]).to_string(),
            8 => Ipv6Addr::from(<[u8; 16]>::try_from(v).expect("16 bytes")).to_string(),
            41 => {
                let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
                format!("\"{}\"", String::from_utf8_lossy(&v[..end]).escape_debug())
            }
            _ => hex(v),
        });
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(hex(rest));
    }
    parts.join(" . ")
}

fn parse_table(msg: &[u8]) -> Option<(u32, u32)> {
    let t = TableObj::parse(msg)?;
    Some((t.u32(sys::NFTNL_TABLE_FLAGS), t.u32(sys::NFTNL_TABLE_USE)))
}

fn parse_chain(msg: &[u8]) -> Option<(String, String)> {
    let c = ChainObj::parse(msg)?;
    // SAFETY: live chain object (freed when `c` drops).
    let (hooked, prio) = unsafe {
        (
            sys::nftnl_chain_is_set(c.ptr(), sys::NFTNL_CHAIN_HOOKNUM as u16),
            sys::nftnl_chain_get_s32(c.ptr(), sys::NFTNL_CHAIN_PRIO as u16),
        )
    };
    let head = if hooked {
        format!(
            "type {} hook {} prio {} policy {}",
            c.str(sys::NFTNL_CHAIN_TYPE),
            c.u32(sys::NFTNL_CHAIN_HOOKNUM),
            prio,
            c.u32(sys::NFTNL_CHAIN_POLICY),
        )
    } else {
        String::new()
    };
    Some((c.str(sys::NFTNL_CHAIN_NAME), head))
}

fn parse_rule(msg: &[u8]) -> Option<(String, String)> {
    let r = RuleObj::parse(msg)?;
    let chain = r.str(sys::NFTNL_RULE_CHAIN);
    for a in [
        sys::NFTNL_RULE_HANDLE,
        sys::NFTNL_RULE_POSITION,
        sys::NFTNL_RULE_ID,
        sys::NFTNL_RULE_POSITION_ID,
    ] {
        // SAFETY: live rule object; unsetting an attribute frees only its own data.
        unsafe { sys::nftnl_rule_unset(r.ptr(), a as u16) };
    }
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: live rule object; snprintf writes at most the buffer length given.
        let n = unsafe {
            sys::nftnl_rule_snprintf(
                buf.as_mut_ptr().cast(),
                buf.len(),
                r.ptr(),
                sys::NFTNL_OUTPUT_DEFAULT,
                0,
            )
        };
        let n = usize::try_from(n).unwrap_or(0);
        if n < buf.len() {
            buf.truncate(n);
            break;
        }
        buf = vec![0u8; n + 1];
    }
    // The comment (userdata) is printed last; it is not behaviour. (Unsetting it in
    // libnftnl frees the data but leaves it marked set.)
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if let Some(at) = text.find("\n  userdata = ") {
        text.truncate(at + 1);
    }
    Some((chain, text))
}

fn parse_set(msg: &[u8]) -> Option<(String, String)> {
    let s = SetObj::parse(msg)?;
    let u = |a: u32| s.u32(a);
    let head = format!(
        "key type {} len {} flags {:#x} data {} {}",
        u(sys::NFTNL_SET_KEY_TYPE),
        u(sys::NFTNL_SET_KEY_LEN),
        u(sys::NFTNL_SET_FLAGS),
        u(sys::NFTNL_SET_DATA_TYPE),
        u(sys::NFTNL_SET_DATA_LEN),
    );
    Some((s.str(sys::NFTNL_SET_NAME), head))
}

fn parse_elems(msg: &[u8]) -> Option<(String, Vec<Vec<u8>>)> {
    let s = SetObj::parse_elems(msg)?;
    let mut keys = Vec::new();
    // SAFETY: live set object; the iterator and the element keys it yields belong to
    // the set, and each key is copied before the next step.
    unsafe {
        let it = sys::nftnl_set_elems_iter_create(s.ptr());
        if !it.is_null() {
            let mut e = sys::nftnl_set_elems_iter_next(it);
            while !e.is_null() {
                let mut len = 0u32;
                let p = sys::nftnl_set_elem_get(e, sys::NFTNL_SET_ELEM_KEY as u16, &mut len);
                if !p.is_null() {
                    keys.push(std::slice::from_raw_parts(p.cast::<u8>(), len as usize).to_vec());
                }
                e = sys::nftnl_set_elems_iter_next(it);
            }
            sys::nftnl_set_elems_iter_destroy(it);
        }
    }
    Some((s.str(sys::NFTNL_SET_NAME), keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_concatenated_keys() {
        let mut k = b"ve-a".to_vec();
        k.resize(16, 0);
        k.extend([10, 0, 0, 2]);
        assert_eq!(decode_key((41 << 6) | 7, &k), "\"ve-a\" . 10.0.0.2");
        assert_eq!(decode_key(7, &[10, 0, 0, 3]), "10.0.0.3");
        assert_eq!(decode_key(0, &[1, 2]), "0102");
        assert_eq!(decode_key(7, &[1, 2]), "0102");
    }
}
