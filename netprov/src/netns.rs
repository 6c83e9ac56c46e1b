//! Network namespaces: handles under /run/netns and threads that live inside one.
//!
//! Kernel quirk that shapes this module: `setns(CLONE_NEWNET)` changes the namespace of
//! the calling *thread* only, and sockets stay bound to the namespace they were created
//! in. So work that must happen inside a container netns runs on a dedicated OS thread
//! that joins it — never on a tokio worker or blocking-pool thread, which would carry
//! the foreign namespace into unrelated tasks.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use crate::error::OpError;

/// Runs `f` on a fresh OS thread that has joined the network namespace at `path`
/// (a `/run/netns/<id>` handle or any `/proc/<pid>/ns/net`), and returns its result.
/// The thread ends with `f`, so the namespace switch cannot leak.
pub fn in_netns<T, F>(path: &Path, f: F) -> Result<T, OpError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns =
        File::open(path).map_err(|e| OpError::io(format!("open netns {}", path.display()), &e))?;
    let what = path.display().to_string();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || -> Result<T, OpError> {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|e| OpError::errno(format!("enter netns {what}"), e as i32))?;
            Ok(f())
        })
        .map_err(|e| OpError::io("spawn netns thread", &e))?
        .join()
        .map_err(|_| OpError::new("netns thread", "panicked"))?
}
