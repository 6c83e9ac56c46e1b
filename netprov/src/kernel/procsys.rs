//! Where netprov opens sysctl files: `/proc/sys`, or — once lookups there are slow,
//! and where the kernel allows it — a procfs instance of netprov's own.
//!
//! Why not `/proc/sys`: every network namespace has its own dentry named `net` under
//! the `/proc/sys` of one procfs instance, all of them in the same dcache hash chain
//! (same parent, same name), and every path lookup of `…/sys/net` compares them one by
//! one (`proc_sys_compare`, taking `sysctl_lock` each time, and twice: the RCU walk
//! always falls back to a ref walk for `/proc/sys`). A dentry is made by the first
//! lookup from inside a netns and lives as long as that netns. So once netprov has
//! written a sysctl in 1000 containers through the host's `/proc`, every later lookup
//! of `/proc/sys/net` — the host's check of a key, each container's first write and
//! every read — walks 1000 entries: 0.1–0.5 ms each here, the largest cost of an apply
//! that grows with the host (docs/benchmarks.md, round 6).
//!
//! Since Linux 5.8 each mount of procfs is its own instance (`fsopen("proc")`, not
//! attached anywhere: no other process sees it). Through an instance of its own, a
//! process only meets the `net` dentries of the namespaces it looked up itself, and they
//! go when the instance is closed; nothing is added to the host's `/proc`. Creating one
//! costs ~10 µs, but closing it ~45 µs and more (the kernel waits for an RCU grace
//! period when a mount goes) — more than a walk of a short chain. So a process starts
//! with `/proc/sys` and switches to an instance of its own once a lookup through
//! `/proc/sys` took longer than [`SLOW_LOOKUP`] (the host's check of a key is the first:
//! its `net` dentry, the oldest, is at the end of the chain). Either way the chain stops
//! growing: while it is short netprov adds to it, and once it is long netprov adds
//! nothing. One instance serves the lookups of [`ROTATE_AFTER`] namespaces; then the
//! choice is made again with a new one, so a process applying 1000 containers does not
//! grow one long chain of its own.
//!
//! The values are the same either way: `/proc/sys/net` shows the netns of the thread
//! that looks it up, whichever instance it looks through.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::stat::Mode;

use crate::error::OpError;

/// A lookup through `/proc/sys` slower than this makes the process look through a
/// procfs instance of its own from then on: ~0.5 µs per `net` dentry in a fresh process
/// here (0.1 µs in a warm loop), so ~100 namespaces; a cold apply makes about three such
/// lookups, and the instance costs ~0.05–0.1 ms. In a netns with few, a lookup takes
/// 5–15 µs.
const SLOW_LOOKUP: std::time::Duration = std::time::Duration::from_micros(50);

/// Set once a lookup through `/proc/sys` was slow (see [`SLOW_LOOKUP`]).
static SLOW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Network namespaces looked up through one instance before a new one replaces it (each
/// lookup through a private instance compares at most this many `net` dentries).
const ROTATE_AFTER: usize = 16;

/// A `/proc/sys` directory: of a private procfs instance, or the shared `/proc/sys`.
#[derive(Debug)]
pub struct ProcSys {
    dir: OwnedFd,
    private: bool,
}

impl ProcSys {
    /// Opens `path` (relative to `/proc/sys`, e.g. `net/ipv4/ip_forward`) for reading,
    /// or reading and writing, in the netns of the calling thread.
    pub fn open(&self, path: &str, write: bool) -> io::Result<File> {
        let mode = if write {
            OFlag::O_RDWR
        } else {
            OFlag::O_RDONLY
        };
        let t = std::time::Instant::now();
        let r = openat(
            &self.dir,
            path,
            mode | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            Mode::empty(),
        );
        if !self.private && t.elapsed() > SLOW_LOOKUP {
            SLOW.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(File::from(r?))
    }

    /// Whether this is a private procfs instance (else the shared `/proc/sys`).
    pub fn is_private(&self) -> bool {
        self.private
    }

    fn shared() -> io::Result<ProcSys> {
        let dir = open_dir(AT_FDCWD, "/proc/sys")?;
        Ok(ProcSys {
            dir,
            private: false,
        })
    }

    fn private() -> io::Result<ProcSys> {
        let mnt = private_procfs()?;
        let dir = open_dir(&mnt, "sys")?;
        Ok(ProcSys { dir, private: true })
    }
}

/// The instance in use and the namespaces looked up through it (labels given by the
/// callers).
struct Pool {
    current: Option<(Arc<ProcSys>, Vec<String>)>,
}

impl Pool {
    /// The instance for `netns`: the current one, unless it has served [`ROTATE_AFTER`]
    /// other namespaces or is the shared `/proc/sys` when a private one is wanted; then
    /// (or at first) a new one from `make`. A namespace already served keeps its
    /// instance.
    fn get(
        &mut self,
        netns: &str,
        want_private: bool,
        make: impl FnOnce() -> io::Result<ProcSys>,
    ) -> io::Result<Arc<ProcSys>> {
        if let Some((p, seen)) = &mut self.current {
            if seen.iter().any(|s| s == netns) {
                return Ok(p.clone());
            }
            if seen.len() < ROTATE_AFTER && (p.private || !want_private) {
                seen.push(netns.to_owned());
                return Ok(p.clone());
            }
        }
        let p = Arc::new(make()?);
        self.current = Some((p.clone(), vec![netns.to_owned()]));
        Ok(p)
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool { current: None });

/// The `/proc/sys` to look up sysctls of the netns labelled `netns` through (`""` for
/// the host): `/proc/sys` until a lookup through it was slow, then this process's
/// private procfs instance (a fresh one after [`ROTATE_AFTER`] namespaces) — or
/// `/proc/sys` still where the kernel refuses a new procfs instance (before 5.8, or
/// without the privilege to mount).
pub fn for_netns(netns: &str) -> io::Result<Arc<ProcSys>> {
    let want = want_private();
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    pool.get(netns, want, || {
        if want {
            ProcSys::private().or_else(|_| ProcSys::shared())
        } else {
            ProcSys::shared()
        }
    })
}

/// `NETPROV_PROCFS`: `private` or `shared` decide; unset (or anything else), whether a
/// lookup through `/proc/sys` was slow.
fn want_private() -> bool {
    match std::env::var("NETPROV_PROCFS").as_deref() {
        Ok("private") => true,
        Ok("shared") => false,
        _ => SLOW.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// [`for_netns`] for the netns at `path`, as an operation error.
pub fn for_netns_path(path: &std::path::Path) -> Result<Arc<ProcSys>, OpError> {
    let label = path.display().to_string();
    for_netns(&label).map_err(|e| OpError::io("open /proc/sys", &e))
}

fn open_dir(at: impl std::os::fd::AsFd, path: &str) -> io::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    Ok(openat(at, path, flags, Mode::empty())?)
}

/// A new procfs instance, mounted nowhere: the fd of its root.
fn private_procfs() -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let fs = syscall_fd(|| {
        // SAFETY: fsopen(2) with a NUL-terminated filesystem name.
        unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FSOPEN_CLOEXEC) }
    })?;
    // SAFETY: fsconfig(2) on the fs context just opened; CMD_CREATE takes no key/value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    syscall_fd(|| {
        // SAFETY: fsmount(2) of the created context, no mount attributes.
        unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) }
    })
}

fn syscall_fd(f: impl FnOnce() -> libc::c_long) -> io::Result<OwnedFd> {
    let r = f();
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read(sys: &ProcSys, path: &str) -> String {
        let mut v = String::new();
        sys.open(path, false)
            .unwrap()
            .read_to_string(&mut v)
            .unwrap();
        v
    }

    #[test]
    fn a_private_instance_shows_the_same_sysctls_as_proc() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let sys = match ProcSys::private() {
            Ok(s) => s,
            // Only an unprivileged run may be refused a procfs instance.
            Err(e) if !root => return eprintln!("no private procfs: {e}"),
            Err(e) => panic!("a private procfs instance as root: {e}"),
        };
        assert!(sys.is_private());
        for p in [
            "net/ipv4/ip_forward",
            "net/core/somaxconn",
            "net/ipv6/conf/lo/mtu",
        ] {
            let shared = std::fs::read_to_string(std::path::Path::new("/proc/sys").join(p));
            assert_eq!(read(&sys, p), shared.unwrap(), "{p}");
        }
        let e = sys.open("net/ipv4/no_such_key", false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(sys
            .open("net/ipv4/conf", false)
            .unwrap()
            .metadata()
            .unwrap()
            .is_dir());
    }

    /// `/proc/sys` serves until a private instance is wanted (a lookup was slow), and
    /// is chosen again after [`ROTATE_AFTER`] namespaces; a namespace already served
    /// keeps its instance.
    #[test]
    fn the_shared_proc_sys_gives_way_once_a_private_instance_is_wanted() {
        let private = || ProcSys::private().or_else(|_| ProcSys::shared());
        let mut pool = Pool { current: None };
        let first = pool.get("", false, ProcSys::shared).unwrap();
        for i in 1..ROTATE_AFTER {
            let p = pool.get(&format!("c{i}"), false, || panic!("made at {i}"));
            assert!(Arc::ptr_eq(&first, &p.unwrap()));
        }
        let again = pool.get("c-last", false, ProcSys::shared).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));

        let mut pool = Pool { current: None };
        let first = pool.get("", false, ProcSys::shared).unwrap();
        let same = pool
            .get("", true, || panic!("the host was served"))
            .unwrap();
        assert!(Arc::ptr_eq(&first, &same));
        let next = pool.get("c1", true, private).unwrap();
        assert!(!Arc::ptr_eq(&first, &next));
    }

    #[test]
    fn an_instance_is_replaced_after_serving_rotate_after_namespaces() {
        let mut pool = Pool { current: None };
        let made = std::cell::Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            ProcSys::private().or_else(|_| ProcSys::shared())
        };
        let first = pool.get("", true, make).unwrap();
        for i in 1..ROTATE_AFTER {
            let p = pool.get(&format!("/run/netns/c{i}"), true, make).unwrap();
            assert!(Arc::ptr_eq(&first, &p), "namespace {i}");
        }
        // Asking again for a namespace it served does not count.
        assert!(Arc::ptr_eq(&first, &pool.get("", true, make).unwrap()));
        assert_eq!(made.get(), 1);
        let next = pool.get("/run/netns/c-last", true, make).unwrap();
        assert!(!Arc::ptr_eq(&first, &next));
        assert_eq!(made.get(), 2);
        // The old instance still works for whoever holds it.
        assert_eq!(
            read(&first, "net/ipv4/ip_forward"),
            read(&next, "net/ipv4/ip_forward")
        );
    }
}
