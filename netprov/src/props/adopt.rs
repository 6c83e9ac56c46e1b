//! `network.netns_path` must not be the host netns. Unlike the rest of validation this
//! reads the filesystem (the nsfs inode of the path, of the host netns and of PID 1's),
//! so it is a separate step the CLI runs right after loading; the engine repeats it at
//! apply time against its actual host netns.

use std::path::{Path, PathBuf};

use super::errors::problem;
use crate::error::Invalid;
use crate::model::{Desired, NetnsSpec};

/// One problem (at `network.netns_path`) per container that adopts the host netns:
/// the same nsfs inode as `host` (the netns netprov treats as host) or as PID 1's.
pub fn check_adopted_netns(ds: &[Desired], files: &[PathBuf], host: &Path) -> Vec<Invalid> {
    ds.iter()
        .enumerate()
        .filter_map(|(n, d)| {
            let NetnsSpec::Adopted { path } = &d.netns else {
                return None;
            };
            let why = crate::kernel::netns_owner::host_netns(path, host)?;
            let mut e = problem("network.netns_path", why);
            e.file = files.get(n).cloned();
            Some(e)
        })
        .collect()
}
