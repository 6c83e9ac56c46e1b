//! What netprov owns on this host, found from its marks alone: the host-wide commands
//! `list`, `status`, `gc` and `reconcile`.
//!
//! Unlike apply/plan/check (O(one container), never a host dump), these commands ask
//! about the whole host, so they dump it once: the host netns's links (netprov's are in
//! its link group or carry a `netprov:` alias) and protocol-77 routes, its `inet
//! netprov-<id>` tables, the `/run/netns` handles whose `lo` carries netprov's owner mark,
//! and — when OVSDB is reachable — the Port rows with `external_ids:netprov-id`. Nothing
//! is attributed by name alone: a link called `ve-web-wan` without netprov's alias, or a
//! `/run/netns/web` made by `ip netns add`, is not netprov's and is neither listed nor
//! collected.
//!
//! A container is *orphaned* when it has objects here but no props file in the props
//! directory and no running machine (`/run/systemd/machines/<id>`), and no process
//! lives in its netns. `gc` destroys exactly the orphans, each re-checked under the
//! container's lock (so a container whose start raced the scan is left alone).
//!
//! The parts: [`scan`] finds the marked objects, [`list`] turns them into entries (and
//! decides which are orphans), [`status`] shows one container, [`gc`] collects the
//! orphans and [`reconcile`] re-applies the props files.

mod gc;
mod list;
mod reconcile;
mod scan;
mod status;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::Invalid;
use crate::model::{ContainerId, Desired};

pub use self::gc::{gc, Collected};
pub use self::list::{list, Entry, SyncState};
pub use self::reconcile::{reconcile, Reconciled};
pub use self::scan::{scan, Holdings, Scan};
pub use self::status::{status, LinkStatus, PortStatus, Status};

/// Where the host-wide commands look besides the kernel.
#[derive(Debug, Clone)]
pub struct Places {
    /// The props directory (`/etc/netprov`, what the generator reads).
    pub props_dir: PathBuf,
    /// systemd-machined's state directory: `<dir>/<name>` exists while machine `<name>`
    /// runs (`/run/systemd/machines`).
    pub machines_dir: PathBuf,
}

impl Default for Places {
    fn default() -> Self {
        Self {
            props_dir: PathBuf::from(PROPS_DIR),
            machines_dir: PathBuf::from(MACHINES_DIR),
        }
    }
}

/// The default props directory.
pub const PROPS_DIR: &str = "/etc/netprov";
/// systemd-machined's per-machine state files.
pub const MACHINES_DIR: &str = "/run/systemd/machines";

/// The props files of `dir` by container id: `*.json`, not hidden, whose name is a
/// valid id (the generator's rule). A missing directory has none.
pub fn props_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            if name.starts_with('.') || ContainerId::new(stem).is_err() {
                return None;
            }
            let path = e.path();
            path.is_file().then(|| (stem.to_owned(), path))
        })
        .collect()
}

/// Whether machine `id` is registered with systemd-machined.
pub fn machine_running(places: &Places, id: &str) -> bool {
    places.machines_dir.join(id).exists()
}

/// Processes whose network namespace is the one at `netns` (compared by nsfs inode
/// against every `/proc/<pid>/ns/net`). Processes of other PID namespaces are seen too:
/// /proc here is the host's.
pub fn netns_processes(netns: &Path) -> Vec<u32> {
    let Ok(md) = std::fs::metadata(netns) else {
        return Vec::new();
    };
    let target = (md.dev(), md.ino());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| (m.dev(), m.ino()) == target)
        })
        .collect();
    pids.sort_unstable();
    pids
}

pub(super) fn load_props(path: &Path) -> Result<Desired, String> {
    crate::props::load(path).map_err(|errs| {
        errs.iter()
            .map(Invalid::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marks::alias_owner;

    #[test]
    fn alias_owner_reads_both_alias_forms_only() {
        let id = |s: &str| alias_owner(s).map(|i| i.to_string());
        assert_eq!(id("netprov:web"), Some("web".into()));
        assert_eq!(id("netprov:web:wan"), Some("web".into()));
        assert_eq!(id("netprov-netns:web"), None);
        assert_eq!(id("netprov:"), None);
        assert_eq!(id("netprov:../x:y"), None);
        assert_eq!(id("other:web"), None);
    }

    #[test]
    fn props_files_follow_the_generator_rule() {
        let d = std::env::temp_dir().join(format!("netprov-inv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("dir.json")).unwrap();
        for n in [
            "web.json",
            ".web.json.swp",
            "bad name.json",
            "README",
            "db-1.json",
        ] {
            std::fs::write(d.join(n), "{}").unwrap();
        }
        let got: Vec<String> = props_files(&d).into_keys().collect();
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(got, ["db-1", "web"]);
        assert!(props_files(Path::new("/nonexistent/netprov")).is_empty());
    }

    #[test]
    fn processes_of_my_own_netns_include_me() {
        let me = std::process::id();
        assert!(netns_processes(Path::new("/proc/self/ns/net")).contains(&me));
        assert!(netns_processes(Path::new("/nonexistent")).is_empty());
    }
}
