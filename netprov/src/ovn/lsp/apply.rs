//! Making NB match: one transaction of changes; teardown.

use serde_json::{json, Value};

use super::{observe, LspSpec, OvnChange};
use crate::error::OpError;
use crate::ovn::client::OvnClient;
use crate::ovsdb::client::Txn;
use crate::ovsdb::ops::{string_map, Cond, Op};
use crate::ovsdb::port::owner_cond;

fn str_set(v: &[String]) -> Value {
    json!(["set", v])
}

fn remove_ops(txn: &mut Txn, owner: &str, name: &str, u: &str) {
    let label = format!("remove OVN logical switch port {name}");
    txn.push(Op::remove_ref("Logical_Switch", "ports", u), Some(&label));
    txn.push(
        Op::Delete {
            table: "Logical_Switch_Port",
            conds: vec![Cond::uuid(u), owner_cond(owner)],
        },
        Some(&label),
    );
}

/// Inserts the port and adds it to its switch. `fresh`: no earlier change of the same
/// transaction removes a port of that name (then the name is not free until it runs).
fn create_ops(
    txn: &mut Txn,
    spec: &LspSpec,
    options: &std::collections::BTreeMap<String, String>,
    fresh: bool,
    n: usize,
) {
    let label = spec.label();
    let label = Some(label.as_str());
    // The switch exists, and no port has the name (another writer may have made one
    // since we looked): otherwise nothing happens.
    txn.push(Op::wait_named("Logical_Switch", &spec.switch), label);
    if fresh {
        txn.push(Op::wait_unnamed("Logical_Switch_Port", &spec.name), label);
    }
    let nu = format!("lsp{n}");
    txn.push(
        Op::Insert {
            table: "Logical_Switch_Port",
            row: json!({
                "name": spec.name,
                "addresses": str_set(&spec.addresses),
                "port_security": str_set(&spec.port_security),
                "options": string_map(options),
                "external_ids": string_map(&spec.external_ids()),
            }),
            uuid_name: Some(nu.clone()),
        },
        label,
    );
    txn.push(
        Op::insert_ref("Logical_Switch", &spec.switch, "ports", &nu),
        label,
    );
}

/// Applies the NB changes (not the waits) in one transaction.
pub fn apply(nb: &mut OvnClient, owner: &str, changes: &[OvnChange]) -> Result<(), OpError> {
    let (txn, counted) = changes_txn(owner, changes);
    let res = nb.transact(&format!("change OVN logical ports of {owner}"), &txn)?;
    for (at, label) in counted {
        if res[at]["count"].as_i64() == Some(0) {
            return Err(OpError::new(
                label,
                "the port changed owner or vanished meanwhile; run apply again",
            ));
        }
    }
    Ok(())
}

/// The transaction for `changes`, and the updates whose row must still be this
/// container's: (result index, label).
fn changes_txn(owner: &str, changes: &[OvnChange]) -> (Txn, Vec<(usize, String)>) {
    let mut txn = Txn::new();
    let mut counted = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        match c {
            OvnChange::Create { spec, options } => {
                let fresh = !changes[..i]
                    .iter()
                    .any(|c| matches!(c, OvnChange::Remove { name, .. } if *name == spec.name));
                create_ops(&mut txn, spec, options, fresh, i);
            }
            OvnChange::Update {
                name,
                uuid: u,
                addresses,
                port_security,
                options,
                ..
            } => {
                let label = format!("update OVN logical switch port {name}");
                let at = txn.push(
                    Op::Update {
                        table: "Logical_Switch_Port",
                        conds: vec![Cond::uuid(u), owner_cond(owner)],
                        row: json!({
                            "addresses": str_set(addresses),
                            "port_security": str_set(port_security),
                            "options": string_map(options),
                        }),
                    },
                    Some(&label),
                );
                counted.push((at, label));
            }
            OvnChange::Remove { name, uuid: u } => remove_ops(&mut txn, owner, name, u),
            OvnChange::WaitInstalled { .. } => {}
        }
    }
    (txn, counted)
}

/// Removes every logical switch port marked as `owner`'s; returns their names.
pub fn destroy(nb: &mut OvnClient, owner: &str) -> Result<Vec<String>, OpError> {
    let found = observe(nb, owner, &[])?;
    let mut txn = Txn::new();
    let mut names = Vec::new();
    for row in found.ports.values().filter(|r| r.owner() == Some(owner)) {
        remove_ops(&mut txn, owner, &row.name, &row.uuid);
        names.push(row.name.clone());
    }
    nb.transact(&format!("remove OVN logical ports of {owner}"), &txn)?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{ContainerId, IfName};

    fn spec(switch: &str) -> LspSpec {
        LspSpec {
            owner: ContainerId::new("web").unwrap(),
            iface: IfName::new("lan").unwrap(),
            ovs_port: IfName::new("ve-web-lan").unwrap(),
            name: "web:lan".into(),
            switch: switch.into(),
            mac: "0a:00:00:00:00:01".into(),
            addresses: vec!["0a:00:00:00:00:01 10.0.0.2".into()],
            port_security: vec![],
        }
    }

    /// The JSON of every operation, as sent.
    fn ops(changes: &[OvnChange]) -> Vec<Value> {
        let (txn, _) = changes_txn("web", changes);
        txn.ops().iter().map(Op::to_json).collect()
    }

    /// A new port waits for its name to be free; a port moved to another switch (removed
    /// earlier in the same transaction) cannot, its old row still holds the name.
    #[test]
    fn name_must_be_free_unless_removed_first() {
        let create = OvnChange::Create {
            spec: spec("B"),
            options: BTreeMap::new(),
        };
        let remove = OvnChange::Remove {
            name: "web:lan".into(),
            uuid: "u1".into(),
        };
        let free = |ops: &[Value]| {
            ops.iter()
                .any(|o| o["op"] == "wait" && o["table"] == "Logical_Switch_Port")
        };
        let fresh = ops(std::slice::from_ref(&create));
        assert!(free(&fresh), "{fresh:?}");
        let moved = ops(&[remove, create]);
        assert!(!free(&moved), "{moved:?}");
        // Both still wait for the switch, insert, and add the port to the switch.
        for o in [&fresh, &moved] {
            let kinds: Vec<&str> = o.iter().filter_map(|o| o["op"].as_str()).collect();
            assert!(kinds.ends_with(&["wait", "insert", "mutate"]), "{kinds:?}");
        }
    }

    /// Updates and deletes only touch rows still marked as the container's; an update
    /// that matched nothing is reported.
    #[test]
    fn updates_and_removals_are_owner_checked() {
        let update = OvnChange::Update {
            name: "web:lan".into(),
            uuid: "u1".into(),
            what: String::new(),
            addresses: vec![],
            port_security: vec![],
            options: BTreeMap::new(),
        };
        let remove = OvnChange::Remove {
            name: "web:old".into(),
            uuid: "u2".into(),
        };
        let (txn, counted) = changes_txn("web", &[update, remove]);
        assert_eq!(
            counted,
            vec![(0, "update OVN logical switch port web:lan".to_owned())]
        );
        let owner = owner_cond("web").0;
        for o in txn.ops().iter().map(Op::to_json) {
            if matches!(o["op"].as_str(), Some("update" | "delete")) {
                assert!(o["where"].as_array().unwrap().contains(&owner), "{o}");
            }
        }
    }
}
