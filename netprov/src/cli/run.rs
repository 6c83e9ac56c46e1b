//! The engine-backed commands: what they print and which exit code they return.
//!
//! Human output goes to stdout, one line per change or drift, prefixed with the
//! container id; errors go to stderr. `--json` prints one JSON array on stdout with an
//! entry per container: `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error",
//! "errno"}`.

use serde::Serialize;
use serde_json::{json, Value};

use super::out;
use crate::engine::{DestroyTarget, Engine};
use crate::error::{exit, OpError};
use crate::model::Desired;

/// Reports one result per container (`print` for human output of a success) and
/// returns whether any failed.
fn report<T: Serialize>(
    cmd: &str,
    json: bool,
    results: impl IntoIterator<Item = (String, Result<T, OpError>)>,
    mut print: impl FnMut(&str, &T),
) -> bool {
    let mut failed = false;
    let mut docs = Vec::new();
    for (id, r) in results {
        match &r {
            Ok(v) if json => docs.push(json!({ "id": id, "ok": true, "result": v })),
            Ok(v) => print(&id, v),
            Err(e) => {
                failed = true;
                eprintln!("netprov {cmd}: {id}: {e}");
                if json {
                    docs.push(
                        json!({ "id": id, "ok": false, "error": e.to_string(), "errno": e.errno }),
                    );
                }
            }
        }
    }
    if json {
        out(&Value::Array(docs).to_string());
    }
    failed
}

fn code(failed: bool) -> i32 {
    if failed {
        exit::FAILURE
    } else {
        exit::OK
    }
}

pub fn apply(engine: &Engine, ds: &[Desired], json: bool) -> i32 {
    let results = engine.apply_many(ds);
    let named = ds.iter().map(|d| d.id.to_string()).zip(results);
    code(report("apply", json, named, |id, rep| {
        if rep.plan.steps.is_empty() {
            out(&format!("{id}: in sync, nothing to do"));
        } else {
            print!("{}", rep.plan);
            for (k, p) in rep.repairs.iter().enumerate() {
                out(&format!(
                    "{id}: pass {}: the kernel still differed, repairing:",
                    k + 2
                ));
                print!("{p}");
            }
            let changes: usize =
                rep.plan.steps.len() + rep.repairs.iter().map(|p| p.steps.len()).sum::<usize>();
            let passes = if rep.passes > 1 {
                format!(" in {} passes", rep.passes)
            } else {
                String::new()
            };
            out(&format!(
                "{id}: applied {changes} changes{passes} ({} netlink messages, {} OVSDB transactions)",
                rep.messages,
                rep.ovsdb_transactions
            ));
        }
    }))
}

pub fn plan(engine: &Engine, ds: &[Desired], json: bool) -> i32 {
    let results = ds.iter().map(|d| (d.id.to_string(), engine.plan(d)));
    code(report("plan", json, results, |_, p| print!("{p}")))
}

pub fn check(engine: &Engine, ds: &[Desired], json: bool) -> i32 {
    let results: Vec<_> = ds
        .iter()
        .map(|d| (d.id.to_string(), engine.check(d)))
        .collect();
    let drifted = results
        .iter()
        .any(|(_, r)| r.as_ref().is_ok_and(|drift| !drift.is_empty()));
    let failed = report("check", json, results, |id, drift| {
        if drift.is_empty() {
            out(&format!("{id}: in sync"));
        }
        for x in drift {
            out(&format!("{id}: {x}"));
        }
    });
    if failed {
        exit::FAILURE
    } else if drifted {
        exit::DRIFT
    } else {
        exit::OK
    }
}

pub fn destroy(engine: &Engine, targets: Vec<DestroyTarget>, json: bool) -> i32 {
    let results = targets
        .iter()
        .map(|t| (t.id().to_string(), engine.destroy(t)));
    code(report("destroy", json, results, |id, rep| {
        out(&format!(
            "{id}: destroyed ({} links deleted, {} returned to the host, {} routes, {} OVS ports, netns {})",
            rep.links_deleted.len(),
            rep.links_returned.len(),
            rep.routes_deleted,
            rep.ovs_ports_removed.len(),
            if rep.netns_removed { "removed" } else { "kept" }
        ))
    }))
}
