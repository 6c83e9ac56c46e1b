//! The cheap read of a container netns's nftables state: the marker table's comment
//! and the ruleset generation, two tiny GET requests on one netfilter socket.
//!
//! The kernel keeps one generation counter per netns (`base_seq`) and increments it
//! on every commit that changed something (an empty batch, an aborted one or a
//! refused one does not count; set elements the packet path adds do not commit). The
//! marker of a netns netprov owns records the generation its own load produced
//! (`gen=N`): while the counter still reads N, nobody has committed anything there
//! since, so the ruleset is exactly what netprov loaded — no listing needed. When it
//! differs, the caller falls back to the full listing and its digest.
//!
//! Order matters: the marker is read *before* the generation. If a commit lands
//! between the two reads, the generation no longer matches and the caller falls back;
//! if the generation matches, no commit happened before it was read, so the marker
//! read earlier is current.

use std::io;

use super::netlink::{attr, nft_attrs, put_attr, NfSocket, NFGENMSG_LEN, NLMSG_HDRLEN};
use crate::marks::{NFT_MARKER_FAMILY as MARKER_FAMILY, NFT_MARKER_TABLE as MARKER_TABLE};

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFTA_GEN_ID: u16 = 1;
/// nft's userdata TLV type of a table comment (`NFTNL_UDATA_TABLE_COMMENT`).
const UDATA_TABLE_COMMENT: u8 = 0;
const NFPROTO_INET: u8 = 1;

/// The marker's comment (`None`: no marker table) and the generation read after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quick {
    pub comment: Option<String>,
    pub generation: u32,
}

/// Reads the marker comment, then the generation, on a socket opened by the calling
/// thread (so inside that thread's netns).
pub fn read_here() -> io::Result<Quick> {
    let sock = NfSocket::open()?;
    read_on(&sock)
}

/// [`read_here`] on an open socket.
pub fn read_on(sock: &NfSocket) -> io::Result<Quick> {
    let mut comment = None;
    let mut found = false;
    match sock.request(&get_marker_msg(), |m| {
        if m.kind & 0xff == NFT_MSG_NEWTABLE {
            found = true;
            comment = attr(nft_attrs(m.bytes), NFTA_TABLE_USERDATA).and_then(udata_comment);
        }
    }) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let generation = generation_on(sock)?;
    Ok(Quick {
        comment: if found {
            Some(comment.unwrap_or_default())
        } else {
            None
        },
        generation,
    })
}

/// The netns's ruleset generation.
pub fn generation_on(sock: &NfSocket) -> io::Result<u32> {
    let mut gen = None;
    sock.request(&msg(NFT_MSG_GETGEN, 0, &[]), |m| {
        if m.kind & 0xff == NFT_MSG_NEWGEN {
            gen = attr(nft_attrs(m.bytes), NFTA_GEN_ID)
                .filter(|v| v.len() >= 4)
                .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        }
    })?;
    gen.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no generation in NEWGEN"))
}

/// `gen=N` from a marker comment.
pub fn recorded_generation(comment: &str) -> Option<u32> {
    comment
        .split_whitespace()
        .find_map(|w| w.strip_prefix("gen="))
        .and_then(|g| g.parse().ok())
}

fn get_marker_msg() -> Vec<u8> {
    debug_assert_eq!(MARKER_FAMILY, "inet");
    let mut name = MARKER_TABLE.as_bytes().to_vec();
    name.push(0);
    let mut attrs = Vec::new();
    put_attr(&mut attrs, NFTA_TABLE_NAME, &name);
    msg(NFT_MSG_GETTABLE, NFPROTO_INET, &attrs)
}

/// An nftables request with an ack (so [`NfSocket::request`] knows where it ends).
fn msg(kind: u16, family: u8, attrs: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len();
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&(((libc::NFNL_SUBSYS_NFTABLES as u16) << 8) | kind).to_ne_bytes());
    b.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes()); // seq
    b.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel assigns
    b.extend_from_slice(&[family, libc::NFNETLINK_V0 as u8, 0, 0]);
    b.extend_from_slice(attrs);
    b
}

/// The comment in nft's userdata TLVs (`u8 type, u8 len, value`).
fn udata_comment(mut b: &[u8]) -> Option<String> {
    while b.len() >= 2 {
        let (kind, len) = (b[0], b[1] as usize);
        let val = b.get(2..2 + len)?;
        if kind == UDATA_TABLE_COMMENT {
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

    #[test]
    fn finds_attributes_and_the_comment() {
        let mut ud = vec![UDATA_TABLE_COMMENT, 6];
        ud.extend_from_slice(b"x gen=\0");
        ud.truncate(2 + 6);
        let mut attrs = Vec::new();
        put_attr(&mut attrs, NFTA_TABLE_NAME, b"netprov_state\0");
        put_attr(&mut attrs, NFTA_TABLE_USERDATA, &ud);
        let m = msg(NFT_MSG_NEWTABLE, NFPROTO_INET, &attrs);
        assert_eq!(
            attr(nft_attrs(&m), NFTA_TABLE_NAME),
            Some(&b"netprov_state\0"[..])
        );
        let c = attr(nft_attrs(&m), NFTA_TABLE_USERDATA).and_then(udata_comment);
        assert_eq!(c.as_deref(), Some("x gen="));
        assert_eq!(attr(nft_attrs(&m), 9), None);
        assert_eq!(udata_comment(&[1, 1, 9]), None);
        assert_eq!(udata_comment(&[0, 9, 1]), None, "truncated");
    }

    #[test]
    fn reads_the_recorded_generation() {
        assert_eq!(recorded_generation("netprov src=ab gen=42"), Some(42));
        assert_eq!(recorded_generation("netprov src=ab live=cd"), None);
        assert_eq!(recorded_generation("netprov src=ab gen=x"), None);
    }
}
