//! Network namespaces: handles under /run/netns and threads that live inside one.
//!
//! Kernel quirk that shapes this module: `setns(CLONE_NEWNET)` changes the namespace of
//! the calling *thread* only, and sockets stay bound to the namespace they were created
//! in. So work that must happen inside a container netns runs on the calling thread
//! between a `setns` into the netns and a `setns` back ([`in_netns`]), with no `.await`
//! in between: nothing else runs on the thread meanwhile, so the foreign namespace
//! cannot leak into unrelated tasks. Two `setns` calls cost far less than the thread
//! per call netprov used before (a no-op apply made nine).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::sched::{setns, CloneFlags};

use crate::error::OpError;
use crate::model::ContainerId;

/// The calling thread's own netns (the main thread's is `/proc/self/ns/net`).
pub const THIS_THREAD: &str = "/proc/thread-self/ns/net";

thread_local! {
    /// How many visits ([`Entered`]) are under way on this thread: 0 means the thread
    /// is in the netns it was in when it made no visit.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Inside a [`Home`] scope: this thread's own netns, opened once for all its
    /// visits.
    static HOME: RefCell<Option<HomeNs>> = const { RefCell::new(None) };
}

struct HomeNs {
    ns: Rc<File>,
    /// A path of the host netns when the thread's own netns is that one: a visit
    /// there from home needs no `setns`.
    host: Option<PathBuf>,
    /// The handles of the netns visited last in this scope, by path, so that the next
    /// visit of one needs no `openat` (a cold apply visits its container three times:
    /// the sysctl, then the verify's sysctl and ruleset reads). Forgotten when netprov
    /// mounts or unmounts a handle there ([`forget_visits`]). A handle replaced by
    /// someone else during the scope is still visited as it was when first opened, as
    /// the apply's sockets in it already are.
    visited: RefCell<Vec<(PathBuf, Rc<File>)>>,
}

/// How many visited handles a [`Home`] scope keeps: an apply of many files visits
/// a few containers at once, one after another; one handle per container would hold
/// a thousand descriptors.
const VISITED: usize = 4;

/// Netprov is about to mount or unmount a netns at `path`: what this process holds for
/// the handle there — a visited handle, the connection and ruleset load of a netns made
/// ahead — names the old netns and is forgotten.
fn handle_changes(path: &Path) {
    crate::kernel::netns_ahead::forget(path);
    forget_visits(path);
}

/// Forgets the handle visited at `path` in this thread's scope.
fn forget_visits(path: &Path) {
    HOME.with(|h| {
        if let Some(h) = h.borrow().as_ref() {
            h.visited.borrow_mut().retain(|(p, _)| p != path);
        }
    });
}

/// The handle of the netns at `path`: the one visited before in this scope, else
/// opened now (and kept, when in a scope). Paths under /proc are never kept: they name
/// a netns through a process or a descriptor, whose number a later one may reuse.
pub fn handle_at(path: &Path) -> std::io::Result<Rc<File>> {
    let known = HOME.with(|h| {
        let h = h.borrow();
        let visited = h.as_ref()?.visited.borrow();
        visited
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, f)| f.clone())
    });
    if let Some(f) = known {
        return Ok(f);
    }
    let ns = Rc::new(File::open(path)?);
    if path.starts_with("/proc") {
        return Ok(ns);
    }
    HOME.with(|h| {
        if let Some(h) = h.borrow().as_ref() {
            let mut visited = h.visited.borrow_mut();
            if visited.len() == VISITED {
                visited.remove(0);
            }
            visited.push((path.to_path_buf(), ns.clone()));
        }
    });
    Ok(ns)
}

/// While it lives, visits of the calling thread ([`in_netns`]) return to the thread's
/// netns by a handle opened once, instead of opening `/proc/thread-self/ns/net` for
/// each, and a visit of the host netns from it (when it is the host netns) is no visit
/// at all. An apply visits container and host netns about ten times; each visit used
/// to cost an `openat` and a `close` of that file more (and the host visits two `setns`
/// and the opening of the host's handle).
///
/// Sound because every change of this thread's netns in netprov is a visit, which
/// returns before the next one starts (or nests in it: a nested visit opens its way
/// back as before), so at depth 0 the thread is in the netns this scope opened. Not
/// `Send`: it belongs to the thread that made it.
pub struct Home {
    prev: Option<HomeNs>,
    _not_send: std::marker::PhantomData<Rc<()>>,
}

impl Home {
    /// Opens the calling thread's netns for the scope; `host_path` names the host
    /// netns, `host` is its open handle, compared with it. On any failure the scope
    /// changes nothing: visits open their way back as before.
    pub fn enter(host_path: &Path, host: &File) -> Home {
        let prev = HOME.with(|h| h.borrow_mut().take());
        let home = (DEPTH.get() == 0)
            .then(|| File::open(THIS_THREAD).ok())
            .flatten()
            .map(|ns| {
                let id = |f: &File| f.metadata().ok().map(|m| (m.dev(), m.ino()));
                let host =
                    (id(host).is_some() && id(host) == id(&ns)).then(|| host_path.to_path_buf());
                HomeNs {
                    ns: Rc::new(ns),
                    host,
                    visited: RefCell::new(Vec::new()),
                }
            });
        HOME.with(|h| *h.borrow_mut() = home);
        Home {
            prev,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let prev = self.prev.take();
        HOME.with(|h| *h.borrow_mut() = prev);
    }
}

/// The calling thread inside another netns until dropped; then back in its own.
struct Entered {
    own: Rc<File>,
}

impl Entered {
    /// The netns this thread returns to after a visit: the scope's handle at depth 0,
    /// else its current netns opened now.
    fn way_back() -> Result<Rc<File>, OpError> {
        if DEPTH.get() == 0 {
            if let Some(ns) = HOME.with(|h| h.borrow().as_ref().map(|h| h.ns.clone())) {
                return Ok(ns);
            }
        }
        File::open(THIS_THREAD)
            .map(Rc::new)
            .map_err(|e| OpError::io("open this thread's netns", &e))
    }

    /// Counts a visit started by a change of this thread's netns (a `setns`, or the
    /// `unshare` that makes a netns) after `own` was taken as the way back.
    fn away(own: Rc<File>) -> Self {
        DEPTH.set(DEPTH.get() + 1);
        Self { own }
    }

    fn enter(ns: &File, what: &str) -> Result<Self, OpError> {
        let own = Self::way_back()?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| OpError::errno(format!("enter netns {what}"), e as i32))?;
        Ok(Self::away(own))
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
        DEPTH.set(DEPTH.get() - 1);
    }
}

/// Runs `f` on the calling thread inside the network namespace at `path` (a
/// `/run/netns/<id>` handle or any `/proc/<pid>/ns/net`), and returns its result. The
/// thread is back in its own netns when this returns (or unwinds).
pub fn in_netns<T, F>(path: &Path, f: F) -> Result<T, OpError>
where
    F: FnOnce() -> T,
{
    // Already there: the host netns, visited from home inside a Home scope.
    let at_home = DEPTH.get() == 0
        && HOME.with(|h| h.borrow().as_ref().and_then(|h| h.host.as_deref()) == Some(path));
    if at_home {
        return Ok(f());
    }
    let ns =
        handle_at(path).map_err(|e| OpError::io(format!("open netns {}", path.display()), &e))?;
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
    handle_changes(path);
    // The placeholder first: a netns made ahead may still be on its way meanwhile.
    let placeholder = placeholder(path, id, &op);
    // Taken whatever happened, so that one not needed goes now.
    let ahead = match crate::kernel::netns_ahead::take(id) {
        Some(Ok(ns)) => Some(ns),
        Some(Err(e)) => {
            tracing::debug!(%id, "the netns made ahead failed ({e}); making it here");
            None
        }
        None => None,
    };
    let Some(file) = placeholder? else {
        return Ok(());
    };
    let target = std::path::PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&file)
    ));
    let made = match ahead {
        Some(m) => mount_ahead(&m.netns, &target, &op).map(|mounted| {
            if mounted {
                tracing::debug!(%id, "mounted the netns made ahead");
                crate::kernel::netns_ahead::mounted(path, m);
            }
        }),
        None => unshare_mark_mount(&target, id, &op),
    };
    drop(file);
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// The open file at `path` that [`create_handle`] mounts a netns on (made empty if
/// absent), in a shared directory; `None` when a netns with `id`'s mark is there
/// already (made since it was observed, by a concurrent run).
fn placeholder(path: &Path, id: &ContainerId, op: &str) -> Result<Option<File>, OpError> {
    let dir = path
        .parent()
        .ok_or_else(|| OpError::new(op, "handle path has no directory"))?;
    share_dir(dir, op)?;
    match crate::kernel::netns_owner::handle(path)? {
        // Made since it was observed (a concurrent run): usable only with our mark.
        crate::kernel::netns_owner::Handle::Netns => {
            let lo = in_netns(path, crate::kernel::netns_owner::mark_here)??;
            let who = crate::marks::lo_mark_owner(id, lo.as_deref());
            if who == Some(crate::marks::Owner::Ours) {
                return Ok(None);
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
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map(Some)
        .map_err(|e| OpError::io(op, &e))
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
    let own = Entered::way_back()?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| OpError::errno(op, e as i32))?;
    let _back = Entered::away(own);
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
    mount(Some(THIS_THREAD), target, none, MsFlags::MS_BIND, none)
        .map_err(|e| OpError::errno(op, e as i32))
}

/// Bind-mounts `ns`, a netns made and marked ahead ([`crate::kernel::netns_ahead`]), on
/// `target` (the open placeholder file), with the same re-check as
/// [`unshare_mark_mount`]. `Ok(false)`: a handle was already there, nothing mounted.
fn mount_ahead(ns: &File, target: &Path, op: &str) -> Result<bool, OpError> {
    use nix::mount::{mount, MsFlags};
    if crate::kernel::netns_owner::is_handle(target) {
        return Ok(false);
    }
    let none: Option<&str> = None;
    let source = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(ns));
    mount(Some(source.as_str()), target, none, MsFlags::MS_BIND, none)
        .map(|()| true)
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
    handle_changes(path);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> u64 {
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    }

    /// A netns of its own held by a file (made on a thread that exits).
    fn other_netns() -> File {
        std::thread::spawn(|| {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).unwrap();
            File::open("/proc/thread-self/ns/net").unwrap()
        })
        .join()
        .unwrap()
    }

    fn path_of(f: &File) -> PathBuf {
        PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(f)
        ))
    }

    #[test]
    fn visits_inside_a_home_scope_return_home_and_skip_the_host() {
        crate::kernel::nlsock::testing::in_fresh_netns(|| {
            let home_ino = here();
            let host = File::open("/proc/thread-self/ns/net").unwrap();
            let host_path = path_of(&host);
            let (a, b) = (other_netns(), other_netns());
            let (a_ino, b_ino) = (a.metadata().unwrap().ino(), b.metadata().unwrap().ino());
            for scoped in [false, true] {
                let _home = scoped.then(|| Home::enter(&host_path, &host));
                // the host from home: there already
                assert_eq!(in_netns(&host_path, here).unwrap(), home_ino);
                // a visit, and one nested in it, each returning where it came from
                let inner = in_netns(&path_of(&a), || {
                    assert_eq!(here(), a_ino);
                    let nested = in_netns(&path_of(&b), here).unwrap();
                    assert_eq!(here(), a_ino, "back in a after the nested visit");
                    // the host from inside a: a real visit, back to a after it
                    let h = in_netns(&host_path, here).unwrap();
                    assert_eq!(here(), a_ino);
                    (nested, h)
                })
                .unwrap();
                assert_eq!(inner, (b_ino, home_ino));
                assert_eq!(here(), home_ino, "home after the visits (scoped: {scoped})");
                assert_eq!(DEPTH.get(), 0);
            }
            assert!(HOME.with(|h| h.borrow().is_none()), "the scope is gone");
        });
    }

    /// A handle under /run/netns of the test's own, mounting `ns` (a placeholder file
    /// with a bind mount on it, as `create_handle` makes).
    fn mounted(dir: &Path, name: &str, ns: &File) -> PathBuf {
        use nix::mount::{mount, MsFlags};
        let p = dir.join(name);
        File::create(&p).unwrap();
        let none: Option<&str> = None;
        mount(Some(&path_of(ns)), &p, none, MsFlags::MS_BIND, none).unwrap();
        p
    }

    fn unmount(p: &Path) {
        nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH).unwrap();
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn a_home_scope_opens_a_visited_handle_once_until_netprov_remounts_it() {
        crate::kernel::nlsock::testing::in_fresh_netns(|| {
            // Mounts in a mount namespace of this thread's own: none outlives the test.
            use nix::mount::{mount, MsFlags};
            nix::sched::unshare(CloneFlags::CLONE_NEWNS).unwrap();
            let none: Option<&str> = None;
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).unwrap();
            let dir = std::env::temp_dir().join(format!("netprov-visits-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let host = File::open("/proc/thread-self/ns/net").unwrap();
            let (a, b) = (other_netns(), other_netns());
            let (a_ino, b_ino) = (a.metadata().unwrap().ino(), b.metadata().unwrap().ino());
            let p = mounted(&dir, "web", &a);
            {
                let _home = Home::enter(&path_of(&host), &host);
                let first = handle_at(&p).unwrap();
                assert!(
                    Rc::ptr_eq(&first, &handle_at(&p).unwrap()),
                    "kept in the scope"
                );
                assert_eq!(in_netns(&p, here).unwrap(), a_ino);
                // netprov unmounts and mounts another netns there: that one is visited
                remove_handle(&p).unwrap();
                let p = mounted(&dir, "web", &b);
                forget_visits(&p);
                assert_eq!(in_netns(&p, here).unwrap(), b_ino);
                // bounded: the oldest goes
                let others: Vec<PathBuf> = (0..VISITED)
                    .map(|i| mounted(&dir, &format!("o{i}"), &a))
                    .collect();
                for o in &others {
                    handle_at(o).unwrap();
                }
                HOME.with(|h| {
                    let h = h.borrow();
                    let v = h.as_ref().unwrap().visited.borrow();
                    assert_eq!(v.len(), VISITED);
                    assert!(!v.iter().any(|(q, _)| q == &p), "the oldest is forgotten");
                });
                // never a path under /proc
                let q = path_of(&a);
                assert!(!Rc::ptr_eq(
                    &handle_at(&q).unwrap(),
                    &handle_at(&q).unwrap()
                ));
                for o in &others {
                    unmount(o);
                }
                unmount(&p);
            }
            // outside a scope nothing is kept
            let p = mounted(&dir, "web", &a);
            assert!(!Rc::ptr_eq(
                &handle_at(&p).unwrap(),
                &handle_at(&p).unwrap()
            ));
            unmount(&p);
            std::fs::remove_dir(&dir).unwrap();
        });
    }

    #[test]
    fn a_home_scope_that_is_not_the_host_visits_the_host() {
        crate::kernel::nlsock::testing::in_fresh_netns(|| {
            let host = other_netns();
            let host_ino = host.metadata().unwrap().ino();
            let home_ino = here();
            let _home = Home::enter(&path_of(&host), &host);
            assert_eq!(in_netns(&path_of(&host), here).unwrap(), host_ino);
            assert_eq!(here(), home_ino);
        });
    }
}
