//! The netns checks that touch the kernel: what is at `/run/netns/<id>` before netprov
//! uses or removes it, the host-netns guard on `netns_path`, and reading/setting the
//! owner mark on `lo` of the calling thread's netns. The mark itself (`netprov-netns:<id>`),
//! why it is the mark, and whose a netns is by its links: [`crate::marks`].

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::OpError;
use crate::kernel::netlink::Netlink;
use crate::marks::netns_mark as mark;
use crate::model::ContainerId;

/// `lo`'s ifindex: always 1 in a network namespace (`LOOPBACK_IFINDEX`).
const LO_INDEX: u32 = 1;

/// `nsfs` magic number: a bind-mounted netns handle lives on this filesystem.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Whether `path` is a live netns handle (an nsfs bind mount), not just a file.
// `f_type`'s integer type differs between libcs and architectures.
#[allow(clippy::unnecessary_cast)]
pub fn is_handle(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 as i64 == NSFS_MAGIC)
        .unwrap_or(false)
}

/// What is at an owned handle path (`/run/netns/<id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handle {
    Absent,
    /// A regular empty file: left by a `create` interrupted before its bind mount.
    EmptyFile,
    /// A netns (an nsfs bind mount).
    Netns,
}

/// Checks an owned handle path without following a symlink: a symlink, or anything
/// but an nsfs bind mount or an empty regular file, is refused — netprov would
/// otherwise act on whatever it points to.
pub fn handle(path: &Path) -> Result<Handle, OpError> {
    let refuse = |what: &str| {
        OpError::new(
            format!("use netns handle {}", path.display()),
            format!("it is {what}, not a netns handle; refusing to use or remove it"),
        )
    };
    let md = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Handle::Absent),
        Err(e) => return Err(OpError::io(format!("stat {}", path.display()), &e)),
    };
    let ft = md.file_type();
    if ft.is_symlink() {
        return Err(refuse("a symlink"));
    }
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() || ft.is_socket() || ft.is_char_device() || ft.is_block_device() {
            "a special file"
        } else {
            "not a regular file"
        };
        return Err(refuse(what));
    }
    if is_handle(path) {
        Ok(Handle::Netns)
    } else if md.len() == 0 {
        Ok(Handle::EmptyFile)
    } else {
        Err(refuse("a regular file with content"))
    }
}

/// The (device, inode) of the nsfs inode a netns path refers to (symlinks followed:
/// `/proc/<pid>/ns/net` is one).
fn ns_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// `Some(reason)` when `path` is the host netns — the same nsfs inode as `host` (the
/// netns netprov treats as host) or as PID 1's netns. A path that cannot be read is not
/// judged here (apply reports it as missing).
pub fn host_netns(path: &Path, host: &Path) -> Option<String> {
    let why = |what: &str, h: &Path| {
        format!(
            "{} is {what} ({}); adopting it would let netprov replace the host's nftables tables and routes. Use a container netns (or \"\" to let netprov create {}/<id>)",
            path.display(),
            h.display(),
            crate::marks::NETNS_DIR
        )
    };
    // By name too: PID 1's netns may be unreadable (ptrace rules), and /proc/self is
    // whatever process reads the props.
    let named = |p: &str| path.components().eq(Path::new(p).components());
    if ["/proc/1/ns/net", "/proc/1/task/1/ns/net"]
        .iter()
        .any(|p| named(p))
    {
        return Some(why("PID 1's netns", Path::new("/proc/1/ns/net")));
    }
    if ["/proc/self/ns/net", "/proc/thread-self/ns/net"]
        .iter()
        .any(|p| named(p))
    {
        return Some(why("netprov's own netns, the host", path));
    }
    let ns = ns_id(path)?;
    for (h, what) in [
        (host, "the host netns netprov runs against"),
        (Path::new("/proc/1/ns/net"), "PID 1's netns"),
    ] {
        if ns_id(h) == Some(ns) {
            return Some(why(what, h));
        }
    }
    None
}

/// Refuses to use the host netns as a container netns (the apply-time twin of the
/// validation check, against the engine's actual host netns).
pub fn refuse_host(id: &ContainerId, path: &Path, host: &Path) -> Result<(), OpError> {
    match host_netns(path, host) {
        Some(why) => Err(OpError::new(
            format!("use netns {} for {id}", path.display()),
            why,
        )),
        None => Ok(()),
    }
}

/// Sets the owner mark on `lo` of the calling thread's netns, over a netlink socket
/// opened on this thread, and returns that socket's connection (in that netns). Used
/// by the thread that just created the netns.
pub fn set_mark_here(id: &ContainerId) -> Result<Netlink, OpError> {
    use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
    let op = format!("mark new netns of {id} (alias {} on lo)", mark(id));
    let change = crate::kernel::link::LinkChange {
        alias: Some(mark(id)),
        ..Default::default()
    };
    let nl = Netlink::open(None, format!("new netns of {id}"))?;
    nl.request_now(
        crate::kernel::link::set(LO_INDEX, &change),
        NLM_F_REQUEST | NLM_F_ACK,
    )
    .map_err(|e| OpError::errno(op, e))?;
    Ok(nl)
}

/// The alias of `lo` in the calling thread's netns (the owner mark, if any).
pub fn mark_here() -> Result<Option<String>, OpError> {
    let op = "read the owner mark (alias of lo) of a netns";
    let nl = Netlink::open(None, "a netns".into())?;
    match nl.get_link_now(crate::kernel::link::get_by_index(LO_INDEX)) {
        Ok(Some(lo)) => Ok(lo.alias),
        Ok(None) => Err(OpError::errno(op, libc::ENODEV)),
        Err(e) => Err(OpError::errno(op, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_refuses_symlinks_and_other_files() {
        let dir = std::env::temp_dir().join(format!("netprov-owner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("empty");
        std::fs::write(&f, "").unwrap();
        assert_eq!(handle(&f).unwrap(), Handle::EmptyFile);
        let full = dir.join("full");
        std::fs::write(&full, "x").unwrap();
        assert!(handle(&full).is_err());
        let l = dir.join("link");
        let _ = std::fs::remove_file(&l);
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let e = handle(&l).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        assert!(handle(&dir).is_err());
        assert_eq!(handle(&dir.join("none")).unwrap(), Handle::Absent);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_netns_path_is_the_host_when_it_is_the_same_inode() {
        let host = Path::new("/proc/thread-self/ns/net");
        let me = format!("/proc/{}/ns/net", std::process::id());
        assert!(host_netns(Path::new(&me), host).is_some());
        assert!(host_netns(Path::new("/nonexistent/ns"), host).is_none());
        // By name, even where PID 1's netns cannot be read.
        for p in ["/proc/1/ns/net", "/proc/1/ns//net", "/proc/self/ns/net"] {
            assert!(
                host_netns(Path::new(p), Path::new("/nonexistent")).is_some(),
                "{p}"
            );
        }
    }
}
