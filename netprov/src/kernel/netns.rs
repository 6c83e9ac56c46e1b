//! Network namespaces: handles under /run/netns and threads that live inside one.
//!
//! Kernel quirk that shapes this module: `setns(CLONE_NEWNET)` changes the namespace of
//! the calling *thread* only, and sockets stay bound to the namespace they were created
//! in. So work that must happen inside a container netns runs on the calling thread
//! between a `setns` into the netns and a `setns` back ([`in_netns`]), with no `.await`
//! in between: nothing else runs on the thread meanwhile, so the foreign namespace
//! cannot leak into unrelated tasks. Two `setns` calls cost far less than the thread
//! per call netprov used before (a no-op apply made nine).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use crate::error::OpError;
use crate::model::ContainerId;

/// The calling thread inside another netns until dropped; then back in its own.
struct Entered {
    own: File,
}

impl Entered {
    fn enter(ns: &File, what: &str) -> Result<Self, OpError> {
        let own = File::open("/proc/thread-self/ns/net")
            .map_err(|e| OpError::io("open this thread's netns", &e))?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| OpError::errno(format!("enter netns {what}"), e as i32))?;
        Ok(Self { own })
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        // Returning into the namespace the thread was just in cannot fail short of the
        // kernel running out of memory; a thread left in a container netns would make
        // every later socket on it act there, so that is not survivable.
        if setns(self.own.as_fd(), CloneFlags::CLONE_NEWNET).is_err() {
            eprintln!("netprov: cannot return to the original network namespace");
            std::process::abort();
        }
    }
}

/// Runs `f` on the calling thread inside the network namespace at `path` (a
/// `/run/netns/<id>` handle or any `/proc/<pid>/ns/net`), and returns its result. The
/// thread is back in its own netns when this returns (or unwinds).
pub fn in_netns<T, F>(path: &Path, f: F) -> Result<T, OpError>
where
    F: FnOnce() -> T,
{
    let ns =
        File::open(path).map_err(|e| OpError::io(format!("open netns {}", path.display()), &e))?;
    let _inside = Entered::enter(&ns, &path.display().to_string())?;
    Ok(f())
}

/// [`in_netns`] for async callers: `f` must be short (socket opens, sysctl files), as it
/// runs on the runtime's thread.
pub async fn in_netns_async<T, F>(path: &Path, f: F) -> Result<T, OpError>
where
    F: FnOnce() -> T,
{
    in_netns(path, f)
}

/// Stacked handle mounts [`remove_handle`] takes off at most.
const MAX_STACKED: usize = 64;

/// Creates the named netns handle `path` (e.g. `/run/netns/web`) the way `ip netns add`
/// does, without forking: the directory is made a shared mount (bind-mounted on itself
/// first if it is not a mount point) so the handle propagates to other mount
/// namespaces; then the calling thread `unshare`s a new netns, bind-mounts its
/// `/proc/thread-self/ns/net` onto an empty file at `path` and `setns`es back.
///
/// The new netns gets container `id`'s owner mark on `lo` from the creating thread
/// *before* the bind mount (see [`crate::kernel::netns_owner`]), so the handle is never visible
/// unmarked. An empty file left by an interrupted earlier run is reused; a symlink or
/// any other file at `path` is refused (never followed), and a netns already mounted
/// there is reused only when it carries this container's mark.
pub fn create_handle(path: &Path, id: &ContainerId) -> Result<(), OpError> {
    let op = format!("create netns {}", path.display());
    // Taken whatever happens next, so that one not needed goes now.
    let ahead = match crate::kernel::netns_ahead::take(id) {
        Some(Ok(ns)) => Some(ns),
        Some(Err(e)) => {
            tracing::debug!(%id, "the netns made ahead failed ({e}); making it here");
            None
        }
        None => None,
    };
    let dir = path
        .parent()
        .ok_or_else(|| OpError::new(op.clone(), "handle path has no directory"))?;
    share_dir(dir, &op)?;
    match crate::kernel::netns_owner::handle(path)? {
        // Made since it was observed (a concurrent run): usable only with our mark.
        crate::kernel::netns_owner::Handle::Netns => {
            let lo = in_netns(path, crate::kernel::netns_owner::mark_here)??;
            let who = crate::marks::lo_mark_owner(id, lo.as_deref());
            if who == Some(crate::marks::Owner::Ours) {
                return Ok(());
            }
            let who = who.unwrap_or(crate::marks::Owner::Foreign);
            return Err(crate::marks::netns_not_ours(id, path, &who));
        }
        crate::kernel::netns_owner::Handle::Absent
        | crate::kernel::netns_owner::Handle::EmptyFile => {}
    }
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW, and the bind mount goes onto this open file (through its
    // /proc/self/fd magic link), not onto the path: a symlink planted since the check
    // above is never followed.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| OpError::io(op.clone(), &e))?;
    let target = std::path::PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&file)
    ));
    let made = match ahead {
        Some(ns) => mount_ahead(&ns, &target, &op),
        None => unshare_mark_mount(&target, id, &op),
    };
    drop(file);
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Makes the handle directory a shared mount (bind-mounted on itself first if it is not
/// a mount point), so handles made in it propagate to other mount namespaces.
fn share_dir(dir: &Path, op: &str) -> Result<(), OpError> {
    use nix::mount::{mount, MsFlags};
    std::fs::create_dir_all(dir).map_err(|e| OpError::io(op, &e))?;
    let none: Option<&str> = None;
    // EINVAL means it is not a mount point yet. Not MS_REC (as `ip netns add` does):
    // a handle mounted later under a shared mount propagates whatever the older
    // handles' own propagation is, and the recursive change walks every handle mount
    // in the directory — one per netns on the host, at every create.
    if let Err(e) = mount(none, dir, none, MsFlags::MS_SHARED, none) {
        if e != nix::errno::Errno::EINVAL {
            return Err(OpError::errno(op, e as i32));
        }
        mount(
            Some(dir),
            dir,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .map_err(|e| OpError::errno(op, e as i32))?;
        mount(none, dir, none, MsFlags::MS_SHARED | MsFlags::MS_REC, none)
            .map_err(|e| OpError::errno(op, e as i32))?;
    }
    Ok(())
}

/// Unshares a new netns on the calling thread, marks it for `id` and bind-mounts it on
/// `target` (the open placeholder file), then returns the thread to its netns.
fn unshare_mark_mount(target: &Path, id: &ContainerId, op: &str) -> Result<(), OpError> {
    use nix::mount::{mount, MsFlags};
    let none: Option<&str> = None;
    // On this thread, not on one of its own: a thread spawn and join cost more than
    // the two `setns` calls around the work, and on a loaded machine the new thread
    // waits for a CPU. The guard returns the thread to its netns on every path; the
    // new netns then dies unless the bind mount below holds it.
    let own = File::open("/proc/thread-self/ns/net")
        .map_err(|e| OpError::io("open this thread's netns", &e))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| OpError::errno(op, e as i32))?;
    let _back = Entered { own };
    // Never stack a second netns on a live handle: nspawn and every later
    // netprov would see only the top one, and `destroy` would need one unmount
    // per layer. The caller holds the container's lock (the engine's lock module), so no
    // netprov creates this handle meanwhile; this re-check, right before the
    // mount, keeps a sequential re-run from ever stacking.
    if crate::kernel::netns_owner::is_handle(target) {
        return Ok(());
    }
    // Mark before the handle exists: a crash from here on leaves no handle (the
    // netns dies with the process) or a marked one.
    crate::kernel::netns_owner::set_mark_here(id)?;
    mount(
        Some("/proc/thread-self/ns/net"),
        target,
        none,
        MsFlags::MS_BIND,
        none,
    )
    .map_err(|e| OpError::errno(op, e as i32))
}

/// Bind-mounts `ns`, a netns made and marked ahead ([`crate::kernel::netns_ahead`]), on
/// `target` (the open placeholder file), with the same re-check as
/// [`unshare_mark_mount`].
fn mount_ahead(ns: &File, target: &Path, op: &str) -> Result<(), OpError> {
    use nix::mount::{mount, MsFlags};
    if crate::kernel::netns_owner::is_handle(target) {
        return Ok(());
    }
    let none: Option<&str> = None;
    let source = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(ns));
    mount(Some(source.as_str()), target, none, MsFlags::MS_BIND, none)
        .map_err(|e| OpError::errno(op, e as i32))
}

/// Removes a handle made by [`create_handle`]: lazy unmount, then unlink. Already gone
/// is fine. The netns itself dies when its last user (process, socket, mount) is gone.
///
/// Every stacked mount goes (left by concurrent creators before netprov took a lock per
/// container, or by a bind mount made on top of ours by hand): one unmount detaches
/// only the top one, and unlinking a path that is still a mount point fails with EBUSY.
pub fn remove_handle(path: &Path) -> Result<(), OpError> {
    use nix::mount::{umount2, MntFlags};
    let op = format!("delete netns {}", path.display());
    // Bounded: a path cannot hold more layers than the mount table allows, but a
    // runaway loop must not be possible either.
    for _ in 0..MAX_STACKED {
        if !crate::kernel::netns_owner::is_handle(path) {
            break;
        }
        umount2(path, MntFlags::MNT_DETACH).map_err(|e| OpError::errno(op.clone(), e as i32))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OpError::io(op, &e)),
    }
}
