//! This host as an OVN chassis, seen through its local `Open_vSwitch` database: its
//! `system-id` and `ovn-remote`, which OVS interfaces carry which `iface-id`, and the
//! wait for ovn-controller's `ovn-installed`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::client::{OvnClient, OvnEndpoint, SB_DB};
use crate::error::OpError;
use crate::ovsdb::client::{Client, Txn};
use crate::ovsdb::ops::{optional_member, parse_string_map, rows, string_map, Cond};
use crate::ovsdb::port::OWNER_KEY;

/// How long apply waits for ovn-controller by default.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(30);

/// An OVS Interface row carrying a wanted `iface-id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// OVS Interface name.
    pub iface: String,
    pub owner: Option<String>,
    pub installed: bool,
}

/// The local chassis as its Open_vSwitch row describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Chassis {
    pub system_id: Option<String>,
    pub ovn_remote: Option<String>,
    /// `iface-id` → the OVS Interfaces carrying it.
    pub bindings: BTreeMap<String, Vec<Binding>>,
}

impl Chassis {
    /// Whether OVS interface `iface` is bound to `name` and installed.
    pub fn installed(&self, name: &str, iface: &str) -> bool {
        self.bindings
            .get(name)
            .is_some_and(|b| b.iter().any(|b| b.iface == iface && b.installed))
    }
}

fn ids_of(row: &Value) -> BTreeMap<String, String> {
    parse_string_map(&row["external_ids"])
}

/// One read-only transaction: the Open_vSwitch row and the Interfaces with each of
/// `names` as `iface-id`.
pub fn observe(ovs: &mut Client, names: &[String]) -> Result<Chassis, OpError> {
    let mut txn = Txn::new();
    txn.select("Open_vSwitch", vec![], vec!["external_ids"]);
    for n in names {
        txn.select(
            "Interface",
            vec![Cond::includes(
                "external_ids",
                string_map(&BTreeMap::from([("iface-id".to_owned(), n.clone())])),
            )],
            vec!["name", "external_ids"],
        );
    }
    let res = ovs.transact("observe the OVN chassis in the local OVS database", &txn)?;
    let top = rows(&res[0]).first().map(ids_of).unwrap_or_default();
    let mut c = Chassis {
        system_id: top.get("system-id").cloned().filter(|s| !s.is_empty()),
        ovn_remote: top.get("ovn-remote").cloned().filter(|s| !s.is_empty()),
        bindings: BTreeMap::new(),
    };
    for (n, r) in names.iter().zip(&res[1..]) {
        let b = rows(r)
            .iter()
            .map(|row| {
                let ids = ids_of(row);
                Binding {
                    iface: row["name"].as_str().unwrap_or_default().to_owned(),
                    owner: ids.get(OWNER_KEY).cloned(),
                    installed: ids.get("ovn-installed").map(String::as_str) == Some("true"),
                }
            })
            .collect();
        c.bindings.insert(n.clone(), b);
    }
    Ok(c)
}

/// Waits until ovn-controller has set `ovn-installed=true` on OVS interface `iface`
/// (bound to logical port `name`), polling every 100 ms; on timeout the error says
/// what is missing, asking the Southbound database when `ovn-remote` names it.
pub fn wait_installed(
    ovs: &mut Client,
    name: &str,
    iface: &str,
    timeout: Duration,
) -> Result<(), OpError> {
    let deadline = Instant::now() + timeout;
    loop {
        let c = observe(ovs, &[name.to_owned()])?;
        if c.installed(name, iface) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(OpError::new(
                format!(
                    "wait for ovn-controller to install OVN port {name} (OVS interface {iface})"
                ),
                format!(
                    "no external_ids:ovn-installed=true after {}s: {}",
                    timeout.as_secs(),
                    diagnose(&c, name)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Why a port is not installed, as far as the chassis and the Southbound DB tell.
pub fn diagnose(c: &Chassis, name: &str) -> String {
    let Some(sysid) = &c.system_id else {
        return "this host's Open vSwitch has no external_ids:system-id (the chassis is not set up for OVN)".into();
    };
    let Some(remote) = &c.ovn_remote else {
        return format!("chassis {sysid} has no external_ids:ovn-remote (ovn-controller does not know the Southbound database)");
    };
    let sb = match OvnEndpoint::parse(remote)
        .and_then(|e| OvnClient::connect(&e, SB_DB).map_err(|e| e.to_string()))
    {
        Ok(sb) => sb,
        Err(e) => {
            return format!("the Southbound database ({remote}) is unreachable from here: {e}")
        }
    };
    sb_diagnose(sb, sysid, name)
}

fn sb_diagnose(mut sb: OvnClient, sysid: &str, name: &str) -> String {
    let mut txn = Txn::new();
    txn.select(
        "Chassis",
        vec![Cond::eq("name", sysid)],
        vec!["_uuid", "name"],
    );
    txn.select(
        "Port_Binding",
        vec![Cond::eq("logical_port", name)],
        vec!["chassis"],
    );
    let res = match sb.transact("diagnose", &txn) {
        Ok(r) => r,
        Err(e) => return format!("the Southbound database could not be read: {}", e.error),
    };
    let Some(me) = rows(&res[0])
        .first()
        .and_then(|r| crate::ovsdb::ops::parse_uuid(&r["_uuid"]))
    else {
        return format!("chassis {sysid} is not registered in the Southbound database (is ovn-controller running here?)");
    };
    let Some(pb) = rows(&res[1]).first().cloned() else {
        return format!(
            "the Southbound database has no Port_Binding for {name} yet (is ovn-northd running?)"
        );
    };
    match optional_member(&pb["chassis"]).and_then(|u| crate::ovsdb::ops::parse_uuid(&u)) {
        None => format!(
            "{name} is not bound to any chassis yet (ovn-controller on {sysid} has not claimed it)"
        ),
        Some(u) if u == me => {
            format!("{name} is bound to this chassis ({sysid}) but its flows are not installed yet")
        }
        Some(u) => {
            let mut t = Txn::new();
            t.select("Chassis", vec![Cond::uuid(&u)], vec!["name"]);
            let other = sb
                .transact("diagnose", &t)
                .ok()
                .and_then(|r| {
                    rows(&r[0])
                        .first()
                        .and_then(|r| r["name"].as_str().map(str::to_owned))
                })
                .unwrap_or(u);
            format!("{name} is bound to another chassis ({other})")
        }
    }
}

/// The `iface-id` an OVS interface of another owner already holds on this chassis:
/// `Some(message)` if `name` is bound to an interface not owned by `owner`.
pub fn foreign_binding(c: &Chassis, owner: &str, name: &str) -> Option<String> {
    c.bindings.get(name)?.iter().find_map(|b| match &b.owner {
        Some(o) if o == owner => None,
        Some(o) => Some(format!(
            "iface-id {name} is already on OVS interface {} of netprov container {o}",
            b.iface
        )),
        None => Some(format!(
            "iface-id {name} is already on OVS interface {}, which is not netprov's",
            b.iface
        )),
    })
}
