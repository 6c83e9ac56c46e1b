//! `netprov gc`: destroys the orphans, each re-checked under its container's lock.

use std::path::Path;

use serde::Serialize;

use super::list::entries;
use super::scan::Holdings;
use super::{machine_running, netns_processes, props_files, Places};
use crate::engine::{DestroyFailed, DestroyReport, DestroyTarget, Engine};
use crate::error::OpError;
use crate::model::ContainerId;

/// What `gc` did (or, dry, would do) with one orphan.
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    pub id: String,
    /// What it held when scanned.
    pub objects: Holdings,
    /// What destroy removed (`None`: dry run, or no longer an orphan under its lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<DestroyReport>,
    /// Why it was kept after all (it became live between the scan and its lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
    /// Failures of a partial destroy.
    pub errors: Vec<String>,
}

/// Why `id` is not an orphan right now, if it is not.
fn alive(places: &Places, id: &str, netns: Option<&Path>) -> Option<String> {
    if let Some(p) = props_files(&places.props_dir).get(id) {
        return Some(format!("it has a props file ({})", p.display()));
    }
    if machine_running(places, id) {
        return Some(format!(
            "machine {id} is running ({})",
            places.machines_dir.join(id).display()
        ));
    }
    let pids = netns.map(netns_processes).unwrap_or_default();
    if !pids.is_empty() {
        return Some(format!("processes live in its netns (pid {:?})", pids));
    }
    None
}

/// `netprov gc`: destroys every orphan (restricted to `only` when not empty); with
/// `dry_run`, only says which.
pub fn gc(
    engine: &Engine,
    places: &Places,
    only: &[ContainerId],
    dry_run: bool,
) -> Result<Vec<Collected>, OpError> {
    // Without a readable props directory every container would look orphaned (a typo
    // in --props-dir must not collect them all).
    std::fs::read_dir(&places.props_dir).map_err(|e| {
        OpError::io(
            format!(
                "read props directory {} (refusing to collect: without it every container looks orphaned)",
                places.props_dir.display()
            ),
            &e,
        )
    })?;
    let (entries, _) = entries(engine, places, only, false)?;
    let mut out = Vec::new();
    for e in entries.into_iter().filter(|e| e.orphaned) {
        let mut c = Collected {
            id: e.id.clone(),
            objects: e.objects.clone(),
            removed: None,
            kept: None,
            errors: Vec::new(),
        };
        if !dry_run {
            let id = ContainerId::new(&e.id).expect("scanned ids are valid");
            let netns = e.objects.netns.clone();
            let mut why = None;
            let r = engine.destroy_if(
                &DestroyTarget::Id(id),
                || {
                    why = alive(places, &e.id, netns.as_deref());
                    why.is_none()
                },
                &e.objects.host_links,
            );
            match r {
                Ok(Some(rep)) => c.removed = Some(rep),
                Ok(None) => c.kept = why,
                Err(DestroyFailed { report, failures }) => {
                    c.removed = Some(*report);
                    c.errors = failures.iter().map(|f| f.to_string()).collect();
                }
            }
        }
        out.push(c);
    }
    Ok(out)
}
