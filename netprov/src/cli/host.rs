//! The host-wide commands (`list`, `status`, `gc`, `reconcile`): what they print and
//! which exit code they return. The work is in `inventory/`.

use serde_json::json;

use super::output::{err, exit, exit_code, fail, out};
use crate::engine::Engine;
use crate::inventory::{self, Places, Reconciled, SyncState};
use crate::model::ContainerId;

fn ovsdb_note(skipped: &Option<String>) {
    // No socket means no Open vSwitch here: nothing to say.
    if let Some(why) = skipped
        .as_ref()
        .filter(|w| !w.starts_with("no OVSDB socket"))
    {
        err(&format!("netprov: OVS ports not listed: {why}"));
    }
}

pub fn list(engine: &Engine, places: &Places, only: &[ContainerId], json: bool) -> i32 {
    let (entries, scan) = match inventory::list(engine, places, only) {
        Ok(x) => x,
        Err(e) => return fail("list", e),
    };
    ovsdb_note(&scan.ovsdb_skipped);
    if json {
        out(&json!({
            "containers": entries,
            "unattributed": scan.unattributed,
            "ovsdb_skipped": scan.ovsdb_skipped,
        })
        .to_string());
        return exit::OK;
    }
    for e in &entries {
        let props = if e.props.is_some() {
            "props"
        } else {
            "no props"
        };
        let running = if e.running { "running" } else { "not running" };
        let mut line = format!(
            "{}: {props}, {running}, {}; {}",
            e.id,
            e.sync,
            e.objects.summary()
        );
        if e.processes > 0 {
            line.push_str(&format!("; {} processes in its netns", e.processes));
        }
        if e.orphaned {
            line.push_str(" — orphaned (gc removes it)");
        }
        out(&line);
    }
    for u in &scan.unattributed {
        out(&format!("unattributed: {u}"));
    }
    exit::OK
}

pub fn status(engine: &Engine, places: &Places, id: &ContainerId, json: bool) -> i32 {
    let st = match inventory::status(engine, places, id) {
        Ok(s) => s,
        Err(e) => return fail(&format!("status: {id}"), e),
    };
    ovsdb_note(&st.ovsdb_skipped);
    if json {
        out(&serde_json::to_string(&st).expect("status serializes"));
        return exit::OK;
    }
    out(&format!(
        "{id}: {}, {}, {}",
        match &st.props {
            Some(p) => format!("props {}", p.display()),
            None => "no props file".into(),
        },
        if st.running { "running" } else { "not running" },
        match st.processes.len() {
            0 => "no process in its netns".to_owned(),
            n => format!("{n} processes in its netns"),
        }
    ));
    if let Some(why) = &st.netns_not_ours {
        out(&format!("{id}: netns not shown: {why}"));
    }
    for l in &st.links {
        out(&link_line(id, l));
    }
    for p in &st.ovs_ports {
        out(&ovs_port_line(id, p));
    }
    out(&format!(
        "{id}: nftables ruleset {}; host table {}",
        match (&st.nft_digest, st.nft_intact) {
            (Some(d), Some(true)) => format!("sha256:{d}"),
            (Some(d), _) => format!("sha256:{d} (changed since loaded)"),
            (None, _) => "none loaded".into(),
        },
        if st.host_table { "present" } else { "none" }
    ));
    match &st.sync {
        SyncState::Drifted { differences } => {
            for d in differences {
                out(&format!("{id}: drift: {d}"));
            }
        }
        SyncState::Invalid { error } | SyncState::Error { error } => {
            out(&format!("{id}: {}: {error}", st.sync))
        }
        s => out(&format!("{id}: {s}")),
    }
    exit::OK
}

/// `status`'s line for one link: side, kind, state, addresses, counters.
fn link_line(id: &ContainerId, l: &inventory::LinkStatus) -> String {
    format!(
        "{id}: link {} ({}, {}, {}) {} rx {} pkts/{} B tx {} pkts/{} B drop {}/{}",
        l.name,
        l.side,
        l.kind,
        if l.up { "up" } else { "down" },
        if l.addresses.is_empty() {
            "-".to_owned()
        } else {
            l.addresses.join(" ")
        },
        l.rx_packets,
        l.rx_bytes,
        l.tx_packets,
        l.tx_bytes,
        l.rx_dropped,
        l.tx_dropped
    )
}

/// `status`'s line for one OVS port: ofport, VLAN, OVS's error.
fn ovs_port_line(id: &ContainerId, p: &inventory::PortStatus) -> String {
    let vlan = match (p.tag, p.trunks.is_empty()) {
        (Some(t), _) => format!("vlan {t}"),
        (None, false) => format!("trunks {:?}", p.trunks),
        (None, true) => "untagged".into(),
    };
    let mut line = format!(
        "{id}: OVS port {} ofport {} {vlan}",
        p.name,
        p.ofport.map_or("-".into(), |o| o.to_string())
    );
    if let Some(e) = &p.error {
        line.push_str(&format!(" error: {e}"));
    }
    line
}

pub fn gc(engine: &Engine, places: &Places, only: &[ContainerId], dry: bool, json: bool) -> i32 {
    let done = match inventory::gc(engine, places, only, dry) {
        Ok(d) => d,
        Err(e) => return fail("gc", e),
    };
    let failed = done.iter().any(|c| !c.errors.is_empty());
    for c in &done {
        for e in &c.errors {
            err(&format!("netprov gc: {}: {e}", c.id));
        }
    }
    if json {
        out(&serde_json::to_string(&done).expect("gc report serializes"));
    } else {
        for c in &done {
            let what = c.objects.summary();
            let line = match (&c.kept, &c.removed) {
                (Some(why), _) => format!("{}: kept ({why})", c.id),
                (None, None) => format!("{}: would remove {what}", c.id),
                (None, Some(_)) if !c.errors.is_empty() => {
                    format!("{}: removed in part ({what})", c.id)
                }
                (None, Some(_)) => format!("{}: removed {what}", c.id),
            };
            out(&line);
        }
    }
    exit_code(failed, false)
}

pub fn reconcile(engine: &Engine, places: &Places, all: bool, json: bool) -> i32 {
    let results = inventory::reconcile(engine, places, all);
    let mut failed = false;
    let mut invalid = false;
    for (id, r) in &results {
        match r {
            Reconciled::Failed { error, .. } => {
                failed = true;
                err(&format!("netprov reconcile: {id}: {error}"));
            }
            Reconciled::Invalid { error } => {
                invalid = true;
                err(&format!("netprov reconcile: {id}: {error}"));
            }
            _ => {}
        }
    }
    if json {
        let docs: Vec<_> = results
            .iter()
            .map(|(id, r)| {
                let mut v = serde_json::to_value(r).expect("serializes");
                v["id"] = json!(id);
                v
            })
            .collect();
        out(&serde_json::Value::Array(docs).to_string());
    } else {
        for (id, r) in &results {
            match r {
                Reconciled::Applied { changes: 0, .. } => out(&format!("{id}: in sync")),
                Reconciled::Applied { changes, steps } => {
                    for s in steps {
                        out(&format!("{id}: {s}"));
                    }
                    out(&format!("{id}: repaired ({changes} changes)"));
                }
                Reconciled::Skipped { why } => out(&format!("{id}: skipped ({why})")),
                Reconciled::Invalid { .. } | Reconciled::Failed { .. } => {}
            }
        }
    }
    exit_code(failed, invalid)
}
