//! The engine-backed commands: what they print and which exit code they return.
//!
//! Human output goes to stdout, one line per change or drift, prefixed with the
//! container id; errors go to stderr. `--json` prints one JSON document on stdout.

use serde::Serialize;
use serde_json::{json, Value};

use super::out;
use crate::engine::{DestroyTarget, Engine};
use crate::error::{exit, OpError};
use crate::model::Desired;

/// Per-container result for `--json`: the value, or the error.
fn entry<T: Serialize>(id: &str, r: &Result<T, OpError>) -> Value {
    match r {
        Ok(v) => json!({ "id": id, "ok": true, "result": v }),
        Err(e) => json!({ "id": id, "ok": false, "error": e.to_string(), "errno": e.errno }),
    }
}

fn fail(cmd: &str, id: &str, e: &OpError) {
    eprintln!("netprov {cmd}: {id}: {e}");
}

pub fn apply(engine: &Engine, ds: &[Desired], json: bool) -> i32 {
    let results = engine.apply_many(ds);
    let mut code = exit::OK;
    let mut docs = Vec::new();
    for (d, r) in ds.iter().zip(&results) {
        let id = d.id.as_str();
        if json {
            docs.push(entry(id, r));
        }
        match r {
            Ok(rep) if !json => {
                if rep.plan.steps.is_empty() {
                    out(&format!("{id}: in sync, nothing to do"));
                } else {
                    print!("{}", rep.plan);
                    out(&format!(
                        "{id}: applied {} changes ({} netlink messages)",
                        rep.plan.steps.len(),
                        rep.messages
                    ));
                }
            }
            Ok(_) => {}
            Err(e) => {
                fail("apply", id, e);
                code = exit::FAILURE;
            }
        }
    }
    if json {
        out(&Value::Array(docs).to_string());
    }
    code
}

pub fn plan(engine: &Engine, ds: &[Desired], json: bool) -> i32 {
    let mut code = exit::OK;
    let mut docs = Vec::new();
    for d in ds {
        let id = d.id.as_str();
        let r = engine.plan(d);
        if json {
            docs.push(entry(id, &r));
        }
        match r {
            Ok(p) if !json => print!("{p}"),
            Ok(_) => {}
            Err(e) => {
                fail("plan", id, &e);
                code = exit::FAILURE;
            }
        }
    }
    if json {
        out(&Value::Array(docs).to_string());
    }
    code
}

pub fn check(engine: &Engine, ds: &[Desired], json: bool) -> i32 {
    let mut failed = false;
    let mut drifted = false;
    let mut docs = Vec::new();
    for d in ds {
        let id = d.id.as_str();
        let r = engine.check(d);
        if json {
            docs.push(entry(id, &r));
        }
        match r {
            Ok(drift) => {
                drifted |= !drift.is_empty();
                if !json {
                    if drift.is_empty() {
                        out(&format!("{id}: in sync"));
                    }
                    for x in &drift {
                        out(&format!("{id}: {x}"));
                    }
                }
            }
            Err(e) => {
                fail("check", id, &e);
                failed = true;
            }
        }
    }
    if json {
        out(&Value::Array(docs).to_string());
    }
    if failed {
        exit::FAILURE
    } else if drifted {
        exit::DRIFT
    } else {
        exit::OK
    }
}

pub fn destroy(engine: &Engine, targets: Vec<DestroyTarget>, json: bool) -> i32 {
    let mut code = exit::OK;
    let mut docs = Vec::new();
    for t in &targets {
        let id = t.id().to_string();
        let r = engine.destroy(t);
        if json {
            docs.push(entry(&id, &r));
        }
        match r {
            Ok(rep) if !json => out(&format!(
                "{id}: destroyed ({} links deleted, {} returned to the host, {} routes, netns {})",
                rep.links_deleted.len(),
                rep.links_returned.len(),
                rep.routes_deleted,
                if rep.netns_removed { "removed" } else { "kept" }
            )),
            Ok(_) => {}
            Err(e) => {
                fail("destroy", &id, &e);
                code = exit::FAILURE;
            }
        }
    }
    if json {
        out(&Value::Array(docs).to_string());
    }
    code
}
