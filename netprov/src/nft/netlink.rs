//! The nftables side of netlink: a `NETLINK_NETFILTER` socket ([`NfSocket`]) and the
//! helpers to read and write its messages' attributes.

pub use crate::kernel::nlsock::{
    attr, attrs, put_attr, whole_messages, BatchError, NfSocket, NLMSG_HDRLEN,
};

/// `struct nfgenmsg`, after the header of every nftables message.
pub const NFGENMSG_LEN: usize = 4;

/// The attributes of an nftables message (after its `nfgenmsg`); empty if it has none.
pub fn nft_attrs(msg: &[u8]) -> &[u8] {
    msg.get(NLMSG_HDRLEN + NFGENMSG_LEN..).unwrap_or(&[])
}
