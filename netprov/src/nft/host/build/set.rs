//! Sets and their elements: NEWSET and NEWSETELEM messages built from libnftnl objects.

use std::ffi::CStr;
use std::net::IpAddr;

use nftnl::nftnl_sys::{self as sys, libc};

use super::super::obj::SetObj;
use super::{finish, NftMsg, ELEMS_PER_MSG, IFNAMSIZ, TYPE_BITS, TYPE_IFNAME};

pub(super) fn concat_type(second: u32) -> u32 {
    (TYPE_IFNAME << TYPE_BITS) | second
}

/// An interface name as the kernel loads it into a register: IFNAMSIZ bytes, zero padded.
pub(super) fn ifname_key(name: &str) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.resize(IFNAMSIZ, 0);
    k
}

pub(super) fn addr_key(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// NEWSET (a plain hash set) and its elements in NEWSETELEM messages of at most
/// [`ELEMS_PER_MSG`] elements.
pub(super) fn set(
    out: &mut Vec<NftMsg>,
    table: &CStr,
    name: &CStr,
    key_type: u32,
    key_len: u32,
    keys: Vec<Vec<u8>>,
) {
    let s = SetObj::with_strs(&[(sys::NFTNL_SET_TABLE, table), (sys::NFTNL_SET_NAME, name)]);
    s.set_u32(sys::NFTNL_SET_KEY_TYPE, key_type);
    s.set_u32(sys::NFTNL_SET_KEY_LEN, key_len);
    // The kernel requires an id (for references by id within the batch); unique per
    // set in this batch is enough.
    s.set_u32(sys::NFTNL_SET_ID, out.len() as u32 + 1);
    out.push(finish(s.msg(libc::NFT_MSG_NEWSET, libc::NLM_F_CREATE, 0)));
    for chunk in keys.chunks(ELEMS_PER_MSG) {
        let s = SetObj::with_strs(&[(sys::NFTNL_SET_TABLE, table), (sys::NFTNL_SET_NAME, name)]);
        for k in chunk {
            // SAFETY: the element is allocated (checked), given a copy of the key and
            // handed to the live set, which owns and frees it.
            unsafe {
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
                sys::nftnl_set_elem_add(s.ptr(), e);
            }
        }
        let mut m = finish(s.elems_msg(libc::NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE, 0));
        list_elem_types(&mut m.bytes);
        out.push(m);
    }
}

/// libnftnl numbers the element nests of a NEWSETELEM 1, 2, 3…; the kernel ignores
/// the type, but dumps use `NFTA_LIST_ELEM` (1) for all and libnftnl's parser accepts
/// nothing else — so the expected content would lose every element but the first.
/// Rewrite them to `NFTA_LIST_ELEM`, as the kernel would send them.
pub(super) fn list_elem_types(msg: &mut [u8]) {
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
