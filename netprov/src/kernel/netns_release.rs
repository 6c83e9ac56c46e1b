//! Destroying an owned netns in bulk: let the kernel tear it down, and wait for the
//! host ends of its veths to go, by notification.
//!
//! Deleting links one by one costs an RCU grace period each (`RTM_DELLINK` waits in
//! `synchronize_net` under RTNL: 20–30 ms per link here). Dropping the last reference
//! to the netns instead (the handle's bind mount and netprov's own sockets in it) lets
//! the kernel's netns cleanup delete every virtual device in it in one batch
//! (`default_device_exit_batch`), a veth's peer included: the host end goes with the
//! container end. That cleanup runs asynchronously, after `umount` returned, so
//! `destroy` subscribes to the host netns's link notifications (`RTNLGRP_LINK`)
//! *before* releasing the netns and returns only when every host end it expects is
//! gone: `destroy` returning still means nothing is left. Virtual devices only: a
//! physical device in a dying netns would be pushed to the initial netns, which is why
//! destroy moves links netprov does not own back to the host first.

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::OpError;
use crate::kernel::link::{self, Kind, LinkState};
use crate::kernel::netlink::Netlink;
use crate::kernel::netns::in_netns;
use crate::kernel::state::NsState;
use crate::model::ContainerId;

const RTM_DELLINK: u16 = 17;
const RTMGRP_LINK: u32 = 1;

/// A host link that dies with the container netns: its index and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPeer {
    pub index: u32,
    pub name: String,
    /// Its mark, `host_alias(id, container end)`; `None`: unmarked, in the netprov
    /// group (an interrupted apply).
    pub alias: Option<String>,
}

/// The host ends of the container's veths netprov created (`owned_as(alias)`): the
/// peer index the container end reports, confirmed in the host netns by its mark
/// (`host_alias(id, container end)`), so a peer elsewhere or foreign is never waited for.
pub async fn host_peers(
    host: &Netlink,
    id: &ContainerId,
    st: &NsState,
    calias: &str,
) -> Result<Vec<HostPeer>, OpError> {
    let mut out = Vec::new();
    for l in st.links.values() {
        let (Kind::Veth, Some(peer), true) = (&l.kind, l.link, l.owned_as(calias)) else {
            continue;
        };
        let got = host.get_link(link::get_by_index(peer)).await.map_err(|e| {
            OpError::errno(format!("get the host end of {} (index {peer})", l.name), e)
        })?;
        if let Some(h) = got {
            // Its mark, or — a SIGKILL between creating the veth and marking it — the
            // netprov group without an alias (see marks.rs).
            let alias = crate::marks::host_alias(id, &l.name);
            if is_peer(&h, Some(alias.as_str())) || is_peer(&h, None) {
                out.push(HostPeer {
                    index: h.index,
                    name: h.name.clone(),
                    alias: h.alias.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// A NETLINK_ROUTE socket in the host netns subscribed to link notifications.
pub struct LinkWatch {
    fd: OwnedFd,
}

impl LinkWatch {
    /// Subscribes in the netns at `host_path` (before the netns is released, so no
    /// deletion can be missed).
    pub fn open(host_path: &Path) -> Result<Self, OpError> {
        let op = "subscribe to link notifications in the host netns";
        let fd = in_netns(host_path, || -> std::io::Result<OwnedFd> {
            // SAFETY: plain socket(2)/bind(2); the fd is owned right away.
            unsafe {
                let fd = libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::NETLINK_ROUTE,
                );
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let fd = OwnedFd::from_raw_fd(fd);
                let mut addr: libc::sockaddr_nl = std::mem::zeroed();
                addr.nl_family = libc::AF_NETLINK as u16;
                addr.nl_groups = RTMGRP_LINK;
                let rc = libc::bind(
                    fd.as_raw_fd(),
                    (&addr as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as u32,
                );
                if rc < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(fd)
            }
        })?
        .map_err(|e| OpError::io(op, &e))?;
        Ok(Self { fd })
    }

    /// Waits until every link in `left` was deleted (an `RTM_DELLINK` for it arrived,
    /// and it is taken out of `left`) or until `end`. Returns false when notifications
    /// were dropped (a busy host: `ENOBUFS`): the caller must look the rest up again.
    pub fn wait_gone(&self, left: &mut BTreeSet<u32>, end: Instant) -> bool {
        let mut buf = vec![0u8; 1 << 16];
        while !left.is_empty() {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let ms = (end - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                continue;
            }
            // SAFETY: buf is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                    return false;
                }
                continue;
            }
            for idx in dellinks(&buf[..n as usize]) {
                left.remove(&idx);
            }
        }
        true
    }
}

/// How long destroy waits for the kernel's netns cleanup before deleting the host ends
/// itself (it takes a few milliseconds here; a stalled cleanup must not hang destroy).
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits for `peers` to go (see the module docs), re-looking them up in `host` after an
/// overrun; after [`CLEANUP_TIMEOUT`] deletes the ones left (still carrying their
/// mark) itself. `watch` must have been opened before the netns was released.
pub async fn await_peers(
    host: &Netlink,
    watch: LinkWatch,
    peers: &[HostPeer],
    count: &crate::kernel::netlink::MutationCount,
) -> Result<(), OpError> {
    let end = Instant::now() + CLEANUP_TIMEOUT;
    let watch = std::sync::Arc::new(watch);
    loop {
        let mut left = BTreeSet::new();
        for p in peers {
            if exists(host, p).await? {
                left.insert(p.index);
            }
        }
        if left.is_empty() || Instant::now() >= end {
            break;
        }
        let w = watch.clone();
        // Then one more look: every expected deletion was seen, the deadline passed,
        // or notifications were dropped.
        crate::blocking::blocking("wait for the netns cleanup", move || {
            w.wait_gone(&mut left, end);
            Ok(())
        })
        .await?;
    }
    for p in peers {
        if exists(host, p).await? {
            match host.mutate(link::delete(p.index), 0, count).await {
                Ok(()) | Err(libc::ENODEV) => {}
                Err(e) => {
                    return Err(OpError::errno(
                        format!("delete link {} in host netns", p.name),
                        e,
                    ))
                }
            }
        }
    }
    Ok(())
}

/// The host end still exists with its mark (an ifindex is not reused while it does).
async fn exists(host: &Netlink, p: &HostPeer) -> Result<bool, OpError> {
    let got = host
        .get_link(link::get_by_index(p.index))
        .await
        .map_err(|e| OpError::errno(format!("get link {} in host netns", p.name), e))?;
    Ok(matches!(got, Some(h) if is_peer(&h, p.alias.as_deref())))
}

/// `h` is a veth with this mark (`None`: no alias and the netprov group).
fn is_peer(h: &LinkState, alias: Option<&str>) -> bool {
    h.kind == Kind::Veth && h.has_mark(alias)
}

/// The ifindexes of the `RTM_DELLINK` messages in one datagram.
fn dellinks(mut b: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let kind = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            break;
        }
        // struct ifinfomsg after the header: family, pad, type (u16), index (i32), ...
        if kind == RTM_DELLINK && len >= 16 + 8 {
            out.push(u32::from_ne_bytes([b[20], b[21], b[22], b[23]]));
        }
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, index: u32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&32u32.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(&[0, 0, 1, 0]);
        m.extend_from_slice(&index.to_ne_bytes());
        m.extend_from_slice(&[0u8; 8]);
        m
    }

    #[test]
    fn picks_the_deleted_indexes() {
        let mut b = msg(RTM_DELLINK, 7);
        b.extend(msg(16, 8)); // RTM_NEWLINK
        b.extend(msg(RTM_DELLINK, 9));
        b.extend_from_slice(&[1, 2, 3]); // a truncated tail is ignored
        assert_eq!(dellinks(&b), vec![7, 9]);
    }
}
