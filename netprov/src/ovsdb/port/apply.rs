//! Making OVSDB match a plan: transactions, retries, teardown.

use std::time::Duration;

use serde_json::{json, Value};

use super::observe::{observe, parse_port};
use super::plan::plan;
use super::OvsChange;
use super::{owner_cond, PortRow, PortSpec};
use crate::error::OpError;
use crate::model::ContainerId;
use crate::ovsdb::client::{Client, TransactError, Txn};
use crate::ovsdb::ops::{int_set, named_uuid, optional, rows, string_map, Cond, Op};

/// How often a transaction that lost a race (a `wait` no longer held) is retried.
const MAX_ATTEMPTS: u32 = 10;

/// Takes a port off whatever bridge holds it; OVSDB then garbage-collects the Port and
/// its Interfaces (they are not root tables), and the explicit deletes make that
/// independent of other references.
fn push_removal(txn: &mut Txn, port_uuid: &str, ifaces: &[String], label: &str) {
    txn.push(Op::remove_ref("Bridge", "ports", port_uuid), Some(label));
    txn.push(
        Op::Delete {
            table: "Port",
            conds: vec![Cond::uuid(port_uuid)],
        },
        Some(label),
    );
    for i in ifaces {
        txn.push(
            Op::Delete {
                table: "Interface",
                conds: vec![Cond::uuid(i)],
            },
            Some(label),
        );
    }
}

fn push_create(txn: &mut Txn, spec: &PortSpec, n: usize) {
    let label = spec.create_label();
    let label = Some(label.as_str());
    let (iface_ref, port_ref) = (format!("iface{n}"), format!("port{n}"));
    // The bridge must still exist and the names be free; if another writer got there
    // first the transaction fails as a whole ("timed out") and is retried after a
    // fresh observe.
    txn.push(Op::wait_named("Bridge", spec.bridge.as_str()), label);
    for table in ["Port", "Interface"] {
        txn.push(Op::wait_unnamed(table, spec.port.as_str()), label);
    }
    txn.push(
        Op::Insert {
            table: "Interface",
            row: json!({
                "name": spec.port.as_str(),
                "type": spec.iface_type(),
                "external_ids": string_map(&spec.iface_ids()),
            }),
            uuid_name: Some(iface_ref.clone()),
        },
        label,
    );
    txn.push(
        Op::Insert {
            table: "Port",
            row: json!({
                "name": spec.port.as_str(),
                "interfaces": named_uuid(&iface_ref),
                "tag": optional(spec.tag_column().map(|t| json!(t))),
                "trunks": int_set(spec.trunk_column().into_iter().map(i64::from)),
                "vlan_mode": optional(spec.mode_column().map(|m| json!(m))),
                "external_ids": string_map(&spec.port_ids()),
            }),
            uuid_name: Some(port_ref.clone()),
        },
        label,
    );
    txn.push(
        Op::insert_ref("Bridge", spec.bridge.as_str(), "ports", &port_ref),
        label,
    );
}

/// Updates columns of a row that must still exist (else: conflict, retry).
fn push_update(txn: &mut Txn, table: &'static str, row_uuid: &str, row: Value, label: &str) {
    txn.push(
        Op::Wait {
            table,
            conds: vec![Cond::uuid(row_uuid)],
            columns: vec!["_uuid"],
            until_equal: false,
            rows: vec![],
        },
        Some(label),
    );
    txn.push(
        Op::Update {
            table,
            conds: vec![Cond::uuid(row_uuid)],
            row,
        },
        Some(label),
    );
}

/// Commits `txn` with a `next_cfg` bump and waits until ovs-vswitchd has applied it.
fn commit_and_wait(client: &mut Client, what: &str, mut txn: Txn) -> Result<(), TransactError> {
    if txn.is_empty() {
        return Ok(());
    }
    let cfg_at = txn.bump_next_cfg();
    let results = client.transact(what, &txn)?;
    let next_cfg = results[cfg_at]["rows"][0]["next_cfg"].as_i64().unwrap_or(0);
    client
        .wait_applied(next_cfg, client.apply_timeout())
        .map_err(|error| TransactError {
            error,
            conflict: false,
        })
}

/// Executes `changes` (from [`plan`]): removals first (one transaction, applied by
/// ovs-vswitchd), then creations and in-place updates (one transaction, applied). When
/// it returns Ok, every internal port's device exists in ovs-vswitchd's netns.
pub fn apply(
    client: &mut Client,
    owner: &ContainerId,
    changes: &[OvsChange],
) -> Result<(), TransactError> {
    let what = format!("configure OVS ports of {owner}");
    let mut removals = Txn::new();
    for c in changes {
        match c {
            OvsChange::Recreate { port_uuid, .. } | OvsChange::Remove { port_uuid, .. } => {
                // Interfaces go with the Port (garbage collection); no need to name them.
                push_removal(&mut removals, port_uuid, &[], &c.to_string());
            }
            _ => {}
        }
    }
    commit_and_wait(client, &what, removals)?;

    let mut txn = Txn::new();
    for (n, c) in changes.iter().enumerate() {
        let label = c.to_string();
        match c {
            OvsChange::Create { spec } | OvsChange::Recreate { spec, .. } => {
                push_create(&mut txn, spec, n)
            }
            OvsChange::SetVlan { port_uuid, to, .. } => push_update(
                &mut txn,
                "Port",
                port_uuid,
                json!({"tag": optional(to.map(|t| json!(t)))}),
                &label,
            ),
            OvsChange::SetTrunks { port_uuid, to, .. } => push_update(
                &mut txn,
                "Port",
                port_uuid,
                json!({"trunks": int_set(to.iter().map(|t| i64::from(*t)))}),
                &label,
            ),
            OvsChange::SetVlanMode { port_uuid, to, .. } => push_update(
                &mut txn,
                "Port",
                port_uuid,
                json!({"vlan_mode": optional(to.as_ref().map(|m| json!(m)))}),
                &label,
            ),
            OvsChange::SetExternalIds { iface_uuid, to, .. } => push_update(
                &mut txn,
                "Interface",
                iface_uuid,
                json!({"external_ids": string_map(to)}),
                &label,
            ),
            OvsChange::Remove { .. } => {}
        }
    }
    commit_and_wait(client, &what, txn)
}

/// Observe, plan and apply until `owner`'s ports match `specs`, retrying when another
/// writer changed the rows in between (a failed `wait`). Returns the changes made.
pub fn converge(
    client: &mut Client,
    owner: &ContainerId,
    specs: &[PortSpec],
) -> Result<Vec<OvsChange>, OpError> {
    let mut done = Vec::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let observed = observe(client, owner, specs)?;
        let changes = plan(owner, specs, &observed)?;
        if changes.is_empty() {
            return Ok(done);
        }
        match apply(client, owner, &changes) {
            Ok(()) => {
                done.extend(changes);
                return Ok(done);
            }
            Err(e) if e.conflict && attempt < MAX_ATTEMPTS => {
                tracing::debug!(%owner, attempt, "OVSDB transaction lost a race, retrying: {}", e.error);
                std::thread::sleep(Duration::from_millis(5 * u64::from(attempt)));
            }
            Err(e) => return Err(e.error),
        }
    }
    unreachable!("the last attempt returns")
}

/// Removes every Port (and its Interfaces) marked `netprov-id=<owner>`, in one
/// transaction, then waits for ovs-vswitchd to drop the devices. Nothing to remove is
/// success and sends no mutation. Returns the names of the removed ports.
pub fn destroy(client: &mut Client, owner: &ContainerId) -> Result<Vec<String>, OpError> {
    let mut read = Txn::new();
    read.select(
        "Port",
        vec![owner_cond(owner.as_str())],
        vec!["_uuid", "name", "interfaces"],
    );
    let results = client.transact(&format!("read OVS ports of {owner}"), &read)?;
    let ports: Vec<PortRow> = rows(&results[0]).iter().map(parse_port).collect();
    if ports.is_empty() {
        return Ok(Vec::new());
    }
    let mut txn = Txn::new();
    for p in &ports {
        push_removal(
            &mut txn,
            &p.uuid,
            &p.interfaces,
            &format!("remove OVS port {} of {owner}", p.name),
        );
    }
    commit_and_wait(client, &format!("remove OVS ports of {owner}"), txn)?;
    Ok(ports.into_iter().map(|p| p.name).collect())
}
