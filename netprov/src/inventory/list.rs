//! `netprov list`: one entry per container with objects here or a props file, and the
//! orphan decision `gc` acts on.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde::Serialize;

use super::scan::{scan, Holdings, Scan};
use super::{load_props, machine_running, props_files, Places};
use crate::engine::Engine;
use crate::error::OpError;
use crate::model::ContainerId;

/// Whether the container's props say so, compared with the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SyncState {
    /// No props file: nothing to compare with.
    NoProps,
    InSync,
    Drifted {
        differences: Vec<String>,
    },
    /// The props file does not validate.
    Invalid {
        error: String,
    },
    /// The comparison failed.
    Error {
        error: String,
    },
}

impl std::fmt::Display for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncState::NoProps => f.write_str("-"),
            SyncState::InSync => f.write_str("in sync"),
            SyncState::Drifted { differences } => write!(f, "drifted ({})", differences.len()),
            SyncState::Invalid { .. } => f.write_str("invalid props"),
            SyncState::Error { .. } => f.write_str("error"),
        }
    }
}

/// One line of `netprov list`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub props: Option<PathBuf>,
    pub running: bool,
    /// Processes in its netns.
    pub processes: usize,
    pub objects: Holdings,
    pub sync: SyncState,
    /// No props file, no machine, no process in its netns: `gc` removes it.
    pub orphaned: bool,
}

pub(super) fn sync_of(engine: &Engine, props: Option<&PathBuf>) -> SyncState {
    let Some(p) = props else {
        return SyncState::NoProps;
    };
    let d = match load_props(p) {
        Ok(d) => d,
        Err(error) => return SyncState::Invalid { error },
    };
    match engine.check(&d) {
        Ok(drift) if drift.is_empty() => SyncState::InSync,
        Ok(drift) => SyncState::Drifted {
            differences: drift.iter().map(|x| x.to_string()).collect(),
        },
        Err(e) => SyncState::Error {
            error: e.to_string(),
        },
    }
}

/// How many processes are in each network namespace, by nsfs (device, inode): one pass
/// over `/proc`, however many containers are listed.
fn netns_users() -> BTreeMap<(u64, u64), usize> {
    let mut users = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return users;
    };
    for pid in procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            *users.entry((m.dev(), m.ino())).or_default() += 1;
        }
    }
    users
}

fn entry(
    engine: Option<&Engine>,
    places: &Places,
    users: &BTreeMap<(u64, u64), usize>,
    id: &str,
    objects: Holdings,
    props: Option<PathBuf>,
) -> Entry {
    let running = machine_running(places, id);
    let processes = objects
        .netns
        .as_deref()
        .and_then(|p| std::fs::metadata(p).ok())
        .and_then(|m| users.get(&(m.dev(), m.ino())).copied())
        .unwrap_or(0);
    let sync = match engine {
        Some(e) => sync_of(e, props.as_ref()),
        None if props.is_some() => SyncState::Error {
            error: "not checked".into(),
        },
        None => SyncState::NoProps,
    };
    // The handle is the netns the peers live in; without it, a live peer means the
    // netns is held by something else.
    let held = objects.netns.is_none() && objects.held_elsewhere;
    let orphaned = props.is_none() && !running && processes == 0 && !held && !objects.is_empty();
    Entry {
        id: id.to_owned(),
        props,
        running,
        processes,
        objects,
        sync,
        orphaned,
    }
}

/// `netprov list`: every id with objects here or a props file, restricted to `only`
/// when it is not empty.
pub fn list(
    engine: &Engine,
    places: &Places,
    only: &[ContainerId],
) -> Result<(Vec<Entry>, Scan), OpError> {
    entries(engine, places, only, true)
}

/// The entries of `list`; `check` compares each with its props file (`gc` does not
/// need that).
pub(super) fn entries(
    engine: &Engine,
    places: &Places,
    only: &[ContainerId],
    check: bool,
) -> Result<(Vec<Entry>, Scan), OpError> {
    let mut scan = scan(engine)?;
    let users = netns_users();
    let mut props = props_files(&places.props_dir);
    let mut ids: BTreeSet<String> = scan.ids.keys().cloned().collect();
    ids.extend(props.keys().cloned());
    let wanted = |id: &String| only.is_empty() || only.iter().any(|o| o.as_str() == id);
    let entries = ids
        .into_iter()
        .filter(wanted)
        .map(|id| {
            let objects = scan.ids.remove(&id).unwrap_or_default();
            let p = props.remove(&id);
            entry(check.then_some(engine), places, &users, &id, objects, p)
        })
        .collect();
    Ok((entries, scan))
}
