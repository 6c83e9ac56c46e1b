//! The engine-backed commands: what they print and which exit code they return.
//!
//! Human output goes to stdout, one line per change or drift, prefixed with the
//! container id; errors go to stderr. `--json` prints one JSON array on stdout with an
//! entry per container: `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error",
//! "errno"}`.

use serde::Serialize;
use serde_json::json;

use std::path::PathBuf;

use super::output::{err, exit, exit_code, out, out_raw};
use crate::engine::{ApplyError, DestroyFailed, DestroyTarget, Engine};
use crate::error::OpError;
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
            Ok(v) if json => docs.push(Done::json(&id, v)),
            Ok(v) => print(&id, v),
            Err(e) => {
                failed = true;
                err(&format!("netprov {cmd}: {id}: {e}"));
                if json {
                    docs.push(
                        json!({ "id": id, "ok": false, "error": e.to_string(), "errno": e.errno })
                            .to_string(),
                    );
                }
            }
        }
    }
    if json {
        out(&format!("[{}]", docs.join(",")));
    }
    failed
}

/// A container's successful result as one `--json` entry, serialized straight to text:
/// through a `serde_json::Value` (the `json!` macro) an apply's entry took ~170,000
/// instructions, a tenth of a cold apply with `--json` (callgrind, docs/benchmarks.md
/// round 9).
#[derive(Serialize)]
struct Done<'a, T> {
    id: &'a str,
    ok: bool,
    result: &'a T,
}

impl<'a, T: Serialize> Done<'a, T> {
    fn json(id: &'a str, result: &'a T) -> String {
        let d = Done {
            id,
            ok: true,
            result,
        };
        // Serializing netprov's own reports cannot fail (string keys, no non-finite floats).
        serde_json::to_string(&d).expect("a report serializes to JSON")
    }
}

fn code(failed: bool) -> i32 {
    exit_code(failed, false)
}

/// Applies every container, printing each one's result as soon as it is known (one
/// JSON array element at a time with `--json`): nothing is kept per container, so the
/// memory of an apply over a thousand files stays flat. Exit 1 if any failed, else 2 if
/// the kernel refused a ruleset (see `ApplyError::Refused`), else 0.
pub fn apply(engine: &Engine, ds: &[Desired], files: &[PathBuf], json: bool) -> i32 {
    let (mut failed, mut invalid) = (false, false);
    if json && ds.is_empty() {
        out("[]");
    }
    let last = ds.len().saturating_sub(1);
    engine.apply_each(ds, |i, r| {
        let id = ds[i].id.to_string();
        let doc = match r {
            Ok(rep) if json => Done::json(&id, &rep),
            Ok(rep) => {
                out_raw(&applied(&id, &rep));
                return;
            }
            Err(ApplyError::Refused { error, .. }) => {
                invalid = true;
                let inv = super::input::ruleset_invalid(&files[i], &error);
                err(&inv.to_string());
                json!({ "id": id, "ok": false, "invalid": true, "error": inv.to_string(), "errno": null })
                    .to_string()
            }
            Err(ApplyError::Op(e)) => {
                failed = true;
                err(&format!("netprov apply: {id}: {e}"));
                json!({ "id": id, "ok": false, "error": e.to_string(), "errno": e.errno })
                    .to_string()
            }
        };
        // One write per container: the array's "[" goes with the first, its "]" with
        // the last (results come in the order of `ds`).
        if json {
            let open = if i == 0 { "[" } else { "," };
            let close = if i == last { "]\n" } else { "" };
            out_raw(&format!("{open}{doc}{close}"));
        }
    });
    exit_code(failed, invalid)
}

/// The human output of one successful apply, printed with one write: its plan, the
/// repairs of later passes, and a summary line.
fn applied(id: &str, rep: &crate::engine::ApplyReport) -> String {
    use std::fmt::Write;
    if rep.plan.steps.is_empty() {
        return format!("{id}: in sync, nothing to do\n");
    }
    let mut text = rep.plan.to_string();
    for (k, p) in rep.repairs.iter().enumerate() {
        let _ = writeln!(
            text,
            "{id}: pass {}: the kernel still differed, repairing:",
            k + 2
        );
        text += &p.to_string();
    }
    let changes: usize =
        rep.plan.steps.len() + rep.repairs.iter().map(|p| p.steps.len()).sum::<usize>();
    let passes = if rep.passes > 1 {
        format!(" in {} passes", rep.passes)
    } else {
        String::new()
    };
    let _ = writeln!(
        text,
        "{id}: applied {changes} changes{passes} ({} netlink messages, {} OVSDB transactions)",
        rep.messages, rep.ovsdb_transactions
    );
    text
}

pub fn plan(engine: &Engine, ds: &[Desired], json: bool) -> i32 {
    let results = ds.iter().map(|d| (d.id.to_string(), engine.plan(d)));
    code(report("plan", json, results, |_, p| {
        out_raw(&p.to_string())
    }))
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

/// Destroy is best effort: a container whose destroy failed in part still gets its
/// summary line (what was removed), then one line per failure on stderr. The targets
/// are destroyed concurrently (see `Engine::destroy_each`); results print in order.
pub fn destroy(engine: &Engine, targets: Vec<DestroyTarget>, json: bool) -> i32 {
    let mut failed = false;
    let mut docs = Vec::new();
    engine.destroy_each(&targets, |i, r| {
        let id = targets[i].id().to_string();
        let (rep, fails) = match r {
            Ok(rep) => (rep, Vec::new()),
            Err(DestroyFailed { report, failures }) => (*report, failures),
        };
        failed |= !fails.is_empty();
        if json && fails.is_empty() {
            docs.push(Done::json(&id, &rep));
            return;
        }
        if json {
            let mut doc = json!({ "id": id, "ok": false, "result": rep });
            if let Some(first) = fails.first() {
                let all: Vec<_> = fails.iter().map(|e| e.to_string()).collect();
                doc["error"] = json!(all.join("; "));
                doc["errno"] = json!(first.errno);
                doc["errors"] = fails
                    .iter()
                    .map(|e| json!({ "error": e.to_string(), "errno": e.errno }))
                    .collect();
            }
            docs.push(doc.to_string());
            for e in &fails {
                err(&format!("netprov destroy: {id}: {e}"));
            }
            return;
        }
        out(&format!(
            "{id}: {} ({} links deleted, {} returned to the host, {} routes, {} OVS ports, {}netns {})",
            if fails.is_empty() { "destroyed" } else { "destroyed in part" },
            rep.links_deleted.len(),
            rep.links_returned.len(),
            rep.routes_deleted,
            rep.ovs_ports_removed.len(),
            match rep.ovn_ports_removed.len() {
                0 => String::new(),
                n => format!("{n} OVN ports, "),
            },
            if rep.netns_removed { "removed" } else { "kept" }
        ));
        if let Some(why) = &rep.netns_not_ours {
            out(&format!("{id}: left the netns alone: {why}"));
        }
        for e in &fails {
            err(&format!("netprov destroy: {id}: {e}"));
        }
    });
    if json {
        out(&format!("[{}]", docs.join(",")));
    }
    code(failed)
}
