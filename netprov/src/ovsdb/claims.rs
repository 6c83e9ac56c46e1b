//! Which of some link names Open vSwitch claims: an `Interface` row of that name, on any
//! bridge. An existing-link interface must not take such a link away from the switch
//! (see diff/existing.rs); with the userspace datapath an OVS internal port is a plain
//! tap with no master, so only OVSDB knows it is one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::client::{Client, Endpoint, Txn};
use super::ops::Cond;
use crate::error::OpError;

/// `name → Interface type` (`"internal"`, `""` for a system device, ...) for the names
/// OVSDB has an Interface row of. Uses `conn` when the caller already has a connection;
/// otherwise connects when the socket exists (no Open vSwitch here: nothing claimed).
pub fn interfaces_named(
    conn: Option<&Mutex<Client>>,
    endpoint: &Endpoint,
    names: &[String],
) -> Result<BTreeMap<String, String>, OpError> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    match conn {
        Some(c) => select(&mut c.lock().unwrap_or_else(|p| p.into_inner()), names),
        None => match Client::connect_if_present(endpoint)? {
            Some(mut c) => select(&mut c, names),
            None => Ok(BTreeMap::new()),
        },
    }
}

fn select(client: &mut Client, names: &[String]) -> Result<BTreeMap<String, String>, OpError> {
    let mut txn = Txn::new();
    for n in names {
        txn.select(
            "Interface",
            vec![Cond::eq("name", n.as_str())],
            vec!["name", "type"],
        );
    }
    let results = client.transact("look up existing links in OVSDB", &txn)?;
    let mut out = BTreeMap::new();
    for r in &results {
        for row in r["rows"].as_array().into_iter().flatten() {
            if let Some(name) = row["name"].as_str() {
                let kind = row["type"].as_str().unwrap_or_default().to_owned();
                out.insert(name.to_owned(), kind);
            }
        }
    }
    Ok(out)
}
