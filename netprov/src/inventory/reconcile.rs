//! `netprov reconcile`: re-applies the props files whose network is live.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use super::{load_props, machine_running, props_files, Places};
use crate::engine::Engine;
use crate::model::{Desired, NetnsSpec};

/// One container's outcome in `reconcile`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Reconciled {
    /// Applied: the number of changes (0: it was in sync).
    Applied {
        changes: usize,
        steps: Vec<String>,
    },
    /// Not applied: its network does not exist and its machine is not running (a
    /// stopped container; reconcile heals networks, it does not start containers).
    Skipped {
        why: String,
    },
    Invalid {
        error: String,
    },
    Failed {
        error: String,
        errno: Option<i32>,
    },
}

/// Whether a container's network is live: its netns exists (an owned handle, or the
/// adopted `netns_path`), or its machine runs.
fn network_live(places: &Places, d: &Desired) -> bool {
    let netns = match &d.netns {
        NetnsSpec::Owned { path } | NetnsSpec::Adopted { path } => path,
    };
    crate::kernel::netns_owner::is_handle(netns) || machine_running(places, d.id.as_str())
}

/// `netprov reconcile`: re-applies every props file of the props directory whose
/// network is live, concurrently in this process; `all` applies stopped ones too.
/// Files are validated one by one, so a bad file is reported and the others still
/// applied; files that conflict with each other are all refused.
pub fn reconcile(engine: &Engine, places: &Places, all: bool) -> Vec<(String, Reconciled)> {
    let files = props_files(&places.props_dir);
    let mut out: BTreeMap<String, Reconciled> = BTreeMap::new();
    let mut ok: Vec<(PathBuf, Desired)> = Vec::new();
    for (id, p) in &files {
        match load_props(p) {
            Ok(d) if d.id.as_str() == id => ok.push((p.clone(), d)),
            Ok(d) => {
                out.insert(
                    id.clone(),
                    Reconciled::Invalid {
                        error: format!(
                            "{}: its \"id\" is {:?} but the file name says {id:?}",
                            p.display(),
                            d.id.as_str()
                        ),
                    },
                );
            }
            Err(error) => {
                out.insert(id.clone(), Reconciled::Invalid { error });
            }
        }
    }
    let (paths, ds): (Vec<PathBuf>, Vec<Desired>) = ok.into_iter().unzip();
    let mut conflicted = BTreeSet::new();
    for e in crate::props::check_conflicts(&ds, &paths) {
        if let Some(i) = e
            .file
            .as_ref()
            .and_then(|f| paths.iter().position(|p| p == f))
        {
            conflicted.insert(i);
            out.insert(
                ds[i].id.to_string(),
                Reconciled::Invalid {
                    error: e.to_string(),
                },
            );
        }
    }
    let ds: Vec<Desired> = ds
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !conflicted.contains(i))
        .map(|(_, d)| d)
        .collect();
    let results = engine.apply_many_if(&ds, |d| all || network_live(places, d));
    for (d, r) in ds.iter().zip(results) {
        let v = match r {
            None => Reconciled::Skipped {
                why: "not running: no netns and no machine".into(),
            },
            Some(Ok(rep)) => Reconciled::Applied {
                changes: rep.plan.steps.len(),
                steps: rep.plan.steps.iter().map(|s| s.to_string()).collect(),
            },
            Some(Err(e)) => Reconciled::Failed {
                error: e.to_string(),
                errno: e.errno,
            },
        };
        out.insert(d.id.to_string(), v);
    }
    out.into_iter().collect()
}
