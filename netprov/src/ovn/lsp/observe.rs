//! Reading what NB holds for one container.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{LspRow, LspSpec, NbObserved};
use crate::error::OpError;
use crate::ovn::client::OvnClient;
use crate::ovsdb::client::Txn;
use crate::ovsdb::ops::{parse_string_map, parse_uuid, rows, set_members, uuid, Cond};
use crate::ovsdb::port::owner_cond;

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = set_members(v)
        .iter()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

const LSP_COLUMNS: [&str; 6] = [
    "_uuid",
    "name",
    "addresses",
    "port_security",
    "options",
    "external_ids",
];

/// Two read-only transactions: the wanted switches and the ports (by name and by
/// mark), then the switch holding each port found.
pub fn observe(nb: &mut OvnClient, owner: &str, specs: &[LspSpec]) -> Result<NbObserved, OpError> {
    let what = format!("observe OVN logical ports of {owner}");
    let mut txn = Txn::new();
    let switches: BTreeSet<&str> = specs.iter().map(|s| s.switch.as_str()).collect();
    for s in &switches {
        txn.select(
            "Logical_Switch",
            vec![Cond::eq("name", *s)],
            vec!["_uuid", "name"],
        );
    }
    let by_name = specs.iter().map(|s| Cond::eq("name", s.name.as_str()));
    for cond in by_name.chain([owner_cond(owner)]) {
        txn.select("Logical_Switch_Port", vec![cond], LSP_COLUMNS.to_vec());
    }
    let res = nb.transact(&what, &txn)?;
    let mut out = NbObserved::default();
    for row in res[..switches.len()].iter().flat_map(rows) {
        if let (Some(n), Some(u)) = (row["name"].as_str(), parse_uuid(&row["_uuid"])) {
            out.switches.insert(n.to_owned(), u);
        }
    }
    for row in res[switches.len()..].iter().flat_map(rows) {
        if let Some(p) = parse_lsp(&row) {
            out.ports.insert(p.name.clone(), p);
        }
    }
    find_switches(nb, &what, &mut out.ports)?;
    Ok(out)
}

fn parse_lsp(row: &Value) -> Option<LspRow> {
    Some(LspRow {
        uuid: parse_uuid(&row["_uuid"])?,
        name: row["name"].as_str().unwrap_or_default().to_owned(),
        addresses: strings(&row["addresses"]),
        port_security: strings(&row["port_security"]),
        options: parse_string_map(&row["options"]),
        external_ids: parse_string_map(&row["external_ids"]),
        switch: None,
    })
}

/// Sets each port's `switch`: the Logical_Switch whose `ports` hold it.
fn find_switches(
    nb: &mut OvnClient,
    what: &str,
    ports: &mut BTreeMap<String, LspRow>,
) -> Result<(), OpError> {
    if ports.is_empty() {
        return Ok(());
    }
    let mut txn = Txn::new();
    for p in ports.values() {
        txn.select(
            "Logical_Switch",
            vec![Cond::includes("ports", json!(["set", [uuid(&p.uuid)]]))],
            vec!["name"],
        );
    }
    let res = nb.transact(what, &txn)?;
    for (p, r) in ports.values_mut().zip(&res) {
        p.switch = rows(r)
            .first()
            .and_then(|row| row["name"].as_str().map(str::to_owned));
    }
    Ok(())
}
