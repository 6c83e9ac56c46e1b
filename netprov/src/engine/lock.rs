//! One operation per container at a time: an exclusive `flock` on
//! `/run/netprov/<id>.lock`, held from observe to the last change of an apply (and for
//! the whole of a plan, check or destroy).
//!
//! Two units, a retry storm or a hand-run `netprov apply` racing `ExecStopPost` would
//! otherwise interleave their observe → execute cycles on one container: both see the
//! netns missing and both bind-mount it (stacked mounts, which `destroy` then cannot
//! remove in one go), both create the same veth (`File exists`), or a destroy deletes
//! links an apply is configuring. Different ids take different locks and stay
//! concurrent.
//!
//! Why `flock`: the kernel releases it when the holder dies, however it dies, so a
//! SIGKILLed netprov never leaves a stale lock.
//!
//! A lock file lives as long as its container: a successful apply keeps it, so that the
//! next apply, check or plan of the container — every unit start — reuses it instead of
//! creating and deleting a file each time (on a filesystem without a journal, like this
//! development machine's `/run`, ext4 skips every recently deleted inode when it
//! allocates one: 0.3 ms and more per file on a host that deleted a thousand). Destroy
//! removes it, and so does an operation that made the file and leaves no container (a
//! `check` of a container never applied, a failed first apply). Removing never breaks
//! mutual exclusion, by the lock-then-verify pattern: the holder unlinks the file
//! *while still holding* the lock; a process that got the lock checks that the path
//! still names the inode it locked, and otherwise (it locked an unlinked file) starts
//! over on the new one. A process killed while holding leaves its file behind; the next
//! one reuses it.
//!
//! A process that must wait says so (a warning after [`WAIT_NOTICE`]), naming the lock
//! and what its holder is doing, which the holder writes into the file.

use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::OpError;
use crate::marks::LOCK_DIR;
use crate::model::ContainerId;

/// How long a process waits silently before it says what it waits for.
pub const WAIT_NOTICE: Duration = Duration::from_secs(1);

/// What the lock is taken for (written into the lock file for waiters to read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Apply,
    Plan,
    Check,
    Destroy,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Apply => "apply",
            Op::Plan => "plan",
            Op::Check => "check",
            Op::Destroy => "destroy",
        }
    }
}

/// The lock file of container `id`.
pub fn path_of(id: &ContainerId) -> PathBuf {
    Path::new(LOCK_DIR).join(format!("{id}.lock"))
}

/// A held lock; released on drop, and its file removed unless it is kept (see the
/// module doc: a container that exists keeps its lock file).
#[derive(Debug)]
pub struct IdLock {
    file: File,
    path: PathBuf,
    op: Op,
    /// The file held an earlier holder's record when we got it.
    existed: bool,
    keep: bool,
}

impl IdLock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the file in place on release: the container now exists, and the next
    /// operation on it reuses the file instead of creating one.
    pub fn keep_file(&mut self) {
        self.keep = true;
    }
}

impl Drop for IdLock {
    fn drop(&mut self) {
        if self.keep || (self.existed && self.op != Op::Destroy) {
            return;
        }
        // Unlink while still holding the lock (closing `file` after this releases it);
        // waiters that then get the unlinked inode notice and retry.
        if names(&self.path, &self.file) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Takes container `id`'s lock for `op`, waiting (without blocking the async runtime)
/// as long as another process holds it.
pub async fn acquire(id: &ContainerId, op: Op) -> Result<IdLock, OpError> {
    acquire_at(&path_of(id), op).await
}

/// [`acquire`] with an explicit lock file path.
pub async fn acquire_at(path: &Path, op: Op) -> Result<IdLock, OpError> {
    let what = format!("lock {}", path.display());
    let mut noticed = false;
    loop {
        let mut file = open(path).map_err(|e| OpError::io(what.clone(), &e))?;
        if !try_lock(&file).map_err(|e| OpError::io(what.clone(), &e))? {
            let holder = holder(&mut file);
            let wait = tokio::task::spawn_blocking(move || lock_blocking(&file).map(|()| file));
            tokio::pin!(wait);
            let waited = if noticed {
                wait.await
            } else {
                match tokio::time::timeout(WAIT_NOTICE, &mut wait).await {
                    Ok(r) => r,
                    Err(_) => {
                        noticed = true;
                        tracing::warn!(
                            "waiting for lock {} held by another netprov ({holder})",
                            path.display()
                        );
                        wait.await
                    }
                }
            };
            file = waited
                .map_err(|_| OpError::new(what.clone(), "lock thread panicked"))?
                .map_err(|e| OpError::io(what.clone(), &e))?;
        }
        if names(path, &file) {
            // Ours. Say what we do, for whoever waits next.
            let existed = file.metadata().is_ok_and(|m| m.len() > 0);
            let _ = file.write_all_at(&record(op), 0);
            if noticed {
                tracing::info!("got lock {}", path.display());
            }
            return Ok(IdLock {
                file,
                path: path.to_owned(),
                op,
                existed,
                keep: false,
            });
        }
        // The previous holder unlinked the file we waited on: start over.
    }
}

/// What the holder writes: "apply pid 1234", padded to a fixed width so that it
/// overwrites any earlier record whole. No `ftruncate`: on ext4 (`auto_da_alloc`)
/// truncating a file that had data forces a writeout, which made a lock cost 0.2–1.5 ms
/// instead of ~20 µs.
fn record(op: Op) -> Vec<u8> {
    let mut r = format!("{} pid {}", op.as_str(), std::process::id());
    while r.len() < RECORD_LEN - 1 {
        r.push(' ');
    }
    r.push('\n');
    r.into_bytes()
}

/// Width of a holder record, newline included.
const RECORD_LEN: usize = 48;

/// Opens (creating, mode 0600) the lock file; the directory is made (0700) if missing.
fn open(path: &Path) -> std::io::Result<File> {
    let mk = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // Never follow a symlink planted in place of a lock file.
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    };
    match mk() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            mk()
        }
        r => r,
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `false` when another open file holds it.
fn try_lock(f: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a valid, owned descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// `flock(LOCK_EX)`, waiting as long as it takes.
fn lock_blocking(f: &File) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a valid, owned descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether `path` still names the inode open as `f`.
fn names(path: &Path, f: &File) -> bool {
    match (std::fs::symlink_metadata(path), f.metadata()) {
        (Ok(p), Ok(m)) => p.dev() == m.dev() && p.ino() == m.ino(),
        _ => false,
    }
}

/// What the holder wrote ("apply pid 1234"), or a placeholder if it has not yet.
fn holder(f: &mut File) -> String {
    let mut s = String::new();
    let _ = f.rewind().and_then(|()| f.take(128).read_to_string(&mut s));
    let s = s.trim();
    if s.is_empty() {
        "operation unknown".into()
    } else {
        match s.split_once(' ') {
            Some((op, rest)) => format!("{op}, {rest}"),
            None => s.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("netprov-lock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d.join("x.lock")
    }

    #[test]
    fn lock_file_is_private_holds_the_op_and_goes_on_release() {
        let p = tmp("a");
        let rt = rt();
        let l = rt.block_on(acquire_at(&p, Op::Apply)).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(p.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.len(), RECORD_LEN);
        assert_eq!(text.trim(), format!("apply pid {}", std::process::id()));
        let mut f = File::open(&p).unwrap();
        assert_eq!(holder(&mut f), format!("apply, pid {}", std::process::id()));
        drop(l);
        assert!(!p.exists());
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    /// Many threads (each with its own open file, as separate processes have) take the
    /// same lock while holders unlink it on release: never two inside at once.
    #[test]
    fn mutual_exclusion_survives_unlink_on_release() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let p = tmp("b");
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (p, inside, max) = (p.clone(), inside.clone(), max.clone());
                std::thread::spawn(move || {
                    let rt = rt();
                    for _ in 0..50 {
                        let l = rt.block_on(acquire_at(&p, Op::Destroy)).unwrap();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(n, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(l);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(max.load(Ordering::SeqCst), 1);
        assert!(!p.exists());
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    #[test]
    fn a_file_left_by_a_killed_holder_is_reused() {
        let p = tmp("c");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let old = format!("destroy pid 1234567{}\n", " ".repeat(RECORD_LEN - 20));
        std::fs::write(&p, old).unwrap();
        let l = rt().block_on(acquire_at(&p, Op::Check)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.trim(), format!("check pid {}", std::process::id()));
        drop(l);
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    /// A kept file stays, and the next holder of any op reuses the same inode; a file
    /// that was there stays after a check; destroy removes it; a file an op made and did
    /// not keep goes.
    #[test]
    fn a_kept_file_is_reused_until_destroy() {
        let p = tmp("k");
        let rt = rt();
        let mut l = rt.block_on(acquire_at(&p, Op::Apply)).unwrap();
        l.keep_file();
        drop(l);
        let ino = std::fs::metadata(&p).unwrap().ino();
        for op in [Op::Apply, Op::Check, Op::Plan] {
            drop(rt.block_on(acquire_at(&p, op)).unwrap());
            assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino, "{op:?}");
        }
        drop(rt.block_on(acquire_at(&p, Op::Destroy)).unwrap());
        assert!(!p.exists());
        drop(rt.block_on(acquire_at(&p, Op::Check)).unwrap());
        assert!(!p.exists());
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}
