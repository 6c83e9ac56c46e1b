//! Reading what OVSDB holds for one container, in one transaction of filtered selects.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{display, owner_cond, PortSpec, OWNER_KEY};
use crate::error::OpError;
use crate::model::ContainerId;
use crate::ovsdb::client::{Client, Txn};
use crate::ovsdb::ops::{optional_member, parse_string_map, parse_uuid, rows, set_members, Cond};

/// An Interface row as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IfaceRow {
    pub uuid: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub ofport: Option<i64>,
    pub error: Option<String>,
    pub ifindex: Option<i64>,
    pub external_ids: BTreeMap<String, String>,
}

/// A Port row as observed, with its (first) Interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortRow {
    pub uuid: String,
    pub name: String,
    pub tag: Option<u16>,
    pub trunks: Vec<u16>,
    pub vlan_mode: Option<String>,
    pub external_ids: BTreeMap<String, String>,
    pub interfaces: Vec<String>,
    pub iface: Option<IfaceRow>,
    /// Set by the caller (see [`Observed::mark_device_missing`]) when it knows the
    /// port's device is gone although OVSDB does not say so.
    pub device_missing: Option<String>,
}

impl PortRow {
    pub fn owner(&self) -> Option<&str> {
        self.external_ids.get(OWNER_KEY).map(String::as_str)
    }

    /// Why the port's device is gone, if it is.
    ///
    /// OVSDB shows it with the kernel datapath (`ofport` -1 and `error` "could not open
    /// network device ... (No such device)") and, for a device ovs-vswitchd can see in
    /// its own netns (a veth host end), with `ifindex` 0. An internal port moved into a
    /// container is invisible to ovs-vswitchd (its `ifindex` is always 0 and the
    /// userspace datapath never reports it gone), so there the caller must tell.
    pub fn broken(&self) -> Option<String> {
        if let Some(r) = &self.device_missing {
            return Some(r.clone());
        }
        let Some(i) = &self.iface else {
            return Some("its Interface row is missing".into());
        };
        // Other errors (a bad option, say) are not cured by re-creating the port, and
        // re-creating on every apply would break "re-apply changes nothing".
        if let Some(e) = i.error.as_ref().filter(|e| e.contains("No such device")) {
            return Some(format!("OVS reports: {e}"));
        }
        if i.ofport == Some(-1) {
            return Some(match &i.error {
                Some(e) => format!("OVS reports: {e}"),
                None => "OVS could not open its device (ofport -1)".into(),
            });
        }
        if i.kind.is_empty() && i.ifindex == Some(0) {
            return Some(format!("device {} is gone (ifindex 0)", i.name));
        }
        None
    }
}

/// A Bridge row as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeRow {
    pub uuid: String,
    pub name: String,
    pub ports: BTreeSet<String>,
}

/// What OVSDB holds for one container: the bridges its ports name, the rows with the
/// names it wants, and every row marked as its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    #[serde(serialize_with = "display", deserialize_with = "container_id")]
    pub owner: ContainerId,
    /// The named bridges that exist, by name.
    pub bridges: BTreeMap<String, BridgeRow>,
    /// Ports by name.
    pub ports: BTreeMap<String, PortRow>,
    /// Interface rows with a wanted name that belong to no observed port (a port of a
    /// different name holds them).
    pub stray_interfaces: BTreeSet<String>,
}

fn container_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ContainerId, D::Error> {
    ContainerId::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

impl Observed {
    pub fn port(&self, name: &str) -> Option<&PortRow> {
        self.ports.get(name)
    }

    /// Records that the port's device is gone (the engine found no such link where it
    /// should be); the next plan repairs it.
    pub fn mark_device_missing(&mut self, port: &str, reason: impl Into<String>) {
        if let Some(p) = self.ports.get_mut(port) {
            p.device_missing = Some(reason.into());
        }
    }
}

const BRIDGE_COLUMNS: [&str; 3] = ["_uuid", "name", "ports"];
const PORT_COLUMNS: [&str; 7] = [
    "_uuid",
    "name",
    "tag",
    "trunks",
    "vlan_mode",
    "external_ids",
    "interfaces",
];
const IFACE_COLUMNS: [&str; 7] = [
    "_uuid",
    "name",
    "type",
    "ofport",
    "error",
    "ifindex",
    "external_ids",
];

pub(super) fn parse_port(r: &Value) -> PortRow {
    PortRow {
        uuid: parse_uuid(&r["_uuid"]).unwrap_or_default(),
        name: r["name"].as_str().unwrap_or_default().to_owned(),
        tag: optional_member(&r["tag"])
            .and_then(|v| v.as_u64())
            .map(|v| v as u16),
        trunks: set_members(&r["trunks"])
            .iter()
            .filter_map(Value::as_u64)
            .map(|v| v as u16)
            .collect(),
        vlan_mode: optional_member(&r["vlan_mode"]).and_then(|v| v.as_str().map(str::to_owned)),
        external_ids: parse_string_map(&r["external_ids"]),
        interfaces: set_members(&r["interfaces"])
            .iter()
            .filter_map(parse_uuid)
            .collect(),
        iface: None,
        device_missing: None,
    }
}

fn parse_bridge(r: &Value) -> BridgeRow {
    BridgeRow {
        uuid: parse_uuid(&r["_uuid"]).unwrap_or_default(),
        name: r["name"].as_str().unwrap_or_default().to_owned(),
        ports: set_members(&r["ports"])
            .iter()
            .filter_map(parse_uuid)
            .collect(),
    }
}

fn parse_iface(r: &Value) -> IfaceRow {
    IfaceRow {
        uuid: parse_uuid(&r["_uuid"]).unwrap_or_default(),
        name: r["name"].as_str().unwrap_or_default().to_owned(),
        kind: r["type"].as_str().unwrap_or_default().to_owned(),
        ofport: optional_member(&r["ofport"]).and_then(|v| v.as_i64()),
        error: optional_member(&r["error"]).and_then(|v| v.as_str().map(str::to_owned)),
        ifindex: optional_member(&r["ifindex"]).and_then(|v| v.as_i64()),
        external_ids: parse_string_map(&r["external_ids"]),
    }
}

/// Reads, in one transaction of server-side filtered selects, what OVSDB holds for
/// `owner`'s ports: the named bridges, the Port and Interface rows with the wanted
/// names, and every Port and Interface row marked `netprov-id=<owner>`.
pub fn observe(
    client: &mut Client,
    owner: &ContainerId,
    specs: &[PortSpec],
) -> Result<Observed, OpError> {
    let mut txn = Txn::new();
    let bridges: BTreeSet<&str> = specs.iter().map(|s| s.bridge.as_str()).collect();
    let bridge_ops: Vec<usize> = bridges
        .iter()
        .map(|b| {
            txn.select(
                "Bridge",
                vec![Cond::eq("name", *b)],
                BRIDGE_COLUMNS.to_vec(),
            )
        })
        .collect();
    let (mut port_ops, mut iface_ops) = (Vec::new(), Vec::new());
    let by_name = specs.iter().map(|s| Cond::eq("name", s.port.as_str()));
    for cond in by_name.chain([owner_cond(owner.as_str())]) {
        port_ops.push(txn.select("Port", vec![cond.clone()], PORT_COLUMNS.to_vec()));
        iface_ops.push(txn.select("Interface", vec![cond], IFACE_COLUMNS.to_vec()));
    }
    let results = client.transact(&format!("read OVS ports of {owner}"), &txn)?;
    let rows_of =
        |ops: &[usize]| -> Vec<Value> { ops.iter().flat_map(|&i| rows(&results[i])).collect() };

    let mut observed = Observed {
        owner: owner.clone(),
        bridges: BTreeMap::new(),
        ports: BTreeMap::new(),
        stray_interfaces: BTreeSet::new(),
    };
    for r in rows_of(&bridge_ops) {
        let b = parse_bridge(&r);
        observed.bridges.insert(b.name.clone(), b);
    }
    let ifaces: BTreeMap<String, IfaceRow> = rows_of(&iface_ops)
        .iter()
        .map(parse_iface)
        .map(|row| (row.uuid.clone(), row))
        .collect();
    for r in rows_of(&port_ops) {
        let mut p = parse_port(&r);
        p.iface = p.interfaces.iter().find_map(|u| ifaces.get(u)).cloned();
        observed.ports.insert(p.name.clone(), p);
    }
    let held: BTreeSet<&str> = observed
        .ports
        .values()
        .flat_map(|p| p.interfaces.iter().map(String::as_str))
        .collect();
    observed.stray_interfaces = ifaces
        .values()
        .filter(|i| !held.contains(i.uuid.as_str()))
        .map(|i| i.name.clone())
        .collect();
    Ok(observed)
}
