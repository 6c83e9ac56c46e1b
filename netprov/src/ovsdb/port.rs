//! netprov's OVS ports: what a container wants ([`PortSpec`]), what OVSDB has
//! ([`Observed`]), the difference ([`OvsChange`]) and how to make it so.
//!
//! Ownership lives in OVSDB itself: every Port and Interface row netprov creates carries
//! `external_ids:netprov-id=<container id>` (and `netprov-iface=<name in the
//! container>`); observe, destroy and repair look rows up by that mark, so no state file
//! is needed. A row with a wanted name but without the mark is never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::{json, Value};

use super::client::{Client, Txn, APPLY_TIMEOUT};
use super::ops::{
    int_set, named_uuid, optional, optional_member, parse_string_map, parse_uuid, set_members,
    string_map, uuid, Cond, Op,
};
use crate::error::OpError;
use crate::model::{
    ContainerId, IfName, Interface, InterfaceKind, OvsPort, OvsStyle, VlanMode, VlanTag,
};

/// `external_ids` key holding the owning container's id.
pub const OWNER_KEY: &str = "netprov-id";
/// `external_ids` key holding the interface's name inside the container.
pub const IFACE_KEY: &str = "netprov-iface";
/// How often a transaction that lost a race (a `wait` no longer held) is retried.
const MAX_ATTEMPTS: u32 = 10;

/// One OVS port a container wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortSpec {
    #[serde(serialize_with = "display")]
    pub owner: ContainerId,
    /// Name of the interface inside the container.
    #[serde(serialize_with = "display")]
    pub iface: IfName,
    /// Name of the OVS Port and Interface rows (and of the device OVS opens): `iface`
    /// for an internal port, the veth host end for the veth style.
    #[serde(serialize_with = "display")]
    pub port: IfName,
    #[serde(serialize_with = "display")]
    pub bridge: IfName,
    /// An OVS internal port (moved into the container) rather than a veth host end.
    pub internal: bool,
    #[serde(serialize_with = "tag")]
    pub vlan: VlanTag,
    #[serde(serialize_with = "tags")]
    pub trunks: Vec<VlanTag>,
    #[serde(serialize_with = "mode")]
    pub vlan_mode: Option<VlanMode>,
    /// Passed through to the Interface row (e.g. `iface-id` for OVN).
    pub external_ids: BTreeMap<String, String>,
}

fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}
fn tag<S: Serializer>(v: &VlanTag, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(v.get())
}
fn tags<S: Serializer>(v: &[VlanTag], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|t| t.get()))
}
fn mode<S: Serializer>(v: &Option<VlanMode>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(m) => s.serialize_str(m.as_ovsdb()),
        None => s.serialize_none(),
    }
}

impl PortSpec {
    pub fn new(owner: &ContainerId, iface: &Interface, ovs: &OvsPort) -> Self {
        Self {
            owner: owner.clone(),
            iface: iface.name.clone(),
            port: ovs.port_name(&iface.name).clone(),
            bridge: ovs.bridge.clone(),
            internal: matches!(ovs.style, OvsStyle::Internal),
            vlan: ovs.vlan,
            trunks: ovs.trunks.clone(),
            vlan_mode: ovs.vlan_mode,
            external_ids: ovs.external_ids.clone(),
        }
    }

    /// The specs of every OVS interface of a container.
    pub fn all(owner: &ContainerId, interfaces: &[Interface]) -> Vec<Self> {
        interfaces
            .iter()
            .filter_map(|i| match &i.kind {
                InterfaceKind::Ovs(o) => Some(Self::new(owner, i, o)),
                _ => None,
            })
            .collect()
    }

    /// `Port.tag`: VLAN 0 means untagged, an empty column.
    fn tag_column(&self) -> Option<u16> {
        (self.vlan.get() != 0).then_some(self.vlan.get())
    }
    fn trunk_column(&self) -> Vec<u16> {
        self.trunks.iter().map(|t| t.get()).collect()
    }
    fn mode_column(&self) -> Option<String> {
        self.vlan_mode.map(|m| m.as_ovsdb().to_owned())
    }
    fn iface_type(&self) -> &'static str {
        if self.internal {
            "internal"
        } else {
            // A veth host end is an ordinary ("system") device.
            ""
        }
    }
    fn port_ids(&self) -> BTreeMap<String, String> {
        let mut ids = BTreeMap::new();
        ids.insert(OWNER_KEY.to_owned(), self.owner.to_string());
        ids.insert(IFACE_KEY.to_owned(), self.iface.to_string());
        ids
    }
    fn iface_ids(&self) -> BTreeMap<String, String> {
        let mut ids = self.external_ids.clone();
        ids.extend(self.port_ids());
        ids
    }
    fn create_label(&self) -> String {
        format!("add OVS port {} to bridge {}", self.port, self.bridge)
    }
}

/// An Interface row as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
        if let Some(e) = &i.error {
            return Some(format!("OVS reports: {e}"));
        }
        if i.ofport == Some(-1) {
            return Some("OVS could not open its device (ofport -1)".into());
        }
        if i.kind.is_empty() && i.ifindex == Some(0) {
            return Some(format!("device {} is gone (ifindex 0)", i.name));
        }
        None
    }
}

/// A Bridge row as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgeRow {
    pub uuid: String,
    pub name: String,
    pub ports: BTreeSet<String>,
}

/// What OVSDB holds for one container: the bridges its ports name, the rows with the
/// names it wants, and every row marked as its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    #[serde(serialize_with = "display")]
    pub owner: ContainerId,
    /// The named bridges that exist, by name.
    pub bridges: BTreeMap<String, BridgeRow>,
    /// Ports by name.
    pub ports: BTreeMap<String, PortRow>,
    /// Interface rows with a wanted name that belong to no observed port (a port of a
    /// different name holds them).
    pub stray_interfaces: BTreeSet<String>,
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

fn owner_cond(owner: &ContainerId) -> Cond {
    let mut m = BTreeMap::new();
    m.insert(OWNER_KEY.to_owned(), owner.to_string());
    Cond::includes("external_ids", string_map(&m))
}

fn rows(result: &Value) -> Vec<Value> {
    result["rows"].as_array().cloned().unwrap_or_default()
}

fn parse_port(r: &Value) -> PortRow {
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
            txn.push(
                Op::Select {
                    table: "Bridge",
                    conds: vec![Cond::eq("name", *b)],
                    columns: vec!["_uuid", "name", "ports"],
                },
                None,
            )
        })
        .collect();
    let mut port_ops = Vec::new();
    let mut iface_ops = Vec::new();
    for s in specs {
        port_ops.push(txn.push(
            Op::Select {
                table: "Port",
                conds: vec![Cond::eq("name", s.port.as_str())],
                columns: PORT_COLUMNS.to_vec(),
            },
            None,
        ));
        iface_ops.push(txn.push(
            Op::Select {
                table: "Interface",
                conds: vec![Cond::eq("name", s.port.as_str())],
                columns: IFACE_COLUMNS.to_vec(),
            },
            None,
        ));
    }
    port_ops.push(txn.push(
        Op::Select {
            table: "Port",
            conds: vec![owner_cond(owner)],
            columns: PORT_COLUMNS.to_vec(),
        },
        None,
    ));
    iface_ops.push(txn.push(
        Op::Select {
            table: "Interface",
            conds: vec![owner_cond(owner)],
            columns: IFACE_COLUMNS.to_vec(),
        },
        None,
    ));
    let results = client.transact(&format!("read OVS ports of {owner}"), &txn)?;

    let mut observed = Observed {
        owner: owner.clone(),
        bridges: BTreeMap::new(),
        ports: BTreeMap::new(),
        stray_interfaces: BTreeSet::new(),
    };
    for &i in &bridge_ops {
        for r in rows(&results[i]) {
            let b = BridgeRow {
                uuid: parse_uuid(&r["_uuid"]).unwrap_or_default(),
                name: r["name"].as_str().unwrap_or_default().to_owned(),
                ports: set_members(&r["ports"])
                    .iter()
                    .filter_map(parse_uuid)
                    .collect(),
            };
            observed.bridges.insert(b.name.clone(), b);
        }
    }
    let mut ifaces: BTreeMap<String, IfaceRow> = BTreeMap::new();
    for &i in &iface_ops {
        for r in rows(&results[i]) {
            let row = parse_iface(&r);
            ifaces.insert(row.uuid.clone(), row);
        }
    }
    for &i in &port_ops {
        for r in rows(&results[i]) {
            let mut p = parse_port(&r);
            p.iface = p.interfaces.iter().find_map(|u| ifaces.get(u)).cloned();
            observed.ports.insert(p.name.clone(), p);
        }
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

/// One change to OVSDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OvsChange {
    /// Insert Interface + Port and add the port to the bridge, in one transaction.
    Create { spec: PortSpec },
    /// Remove the port, let ovs-vswitchd drop it, then create it again (the only way to
    /// make ovs-vswitchd open a device anew: a delete and re-insert in one transaction
    /// is a no-op to it, since the name and type are unchanged).
    Recreate {
        spec: PortSpec,
        port_uuid: String,
        reason: String,
    },
    SetVlan {
        port: String,
        port_uuid: String,
        from: Option<u16>,
        to: Option<u16>,
    },
    SetTrunks {
        port: String,
        port_uuid: String,
        from: Vec<u16>,
        to: Vec<u16>,
    },
    SetVlanMode {
        port: String,
        port_uuid: String,
        from: Option<String>,
        to: Option<String>,
    },
    SetExternalIds {
        port: String,
        iface_uuid: String,
        from: BTreeMap<String, String>,
        to: BTreeMap<String, String>,
    },
    /// A port this container owns that its props no longer name.
    Remove { port: String, port_uuid: String },
}

fn show_tag(t: &Option<u16>) -> String {
    t.map_or_else(|| "untagged".to_owned(), |t| t.to_string())
}

impl fmt::Display for OvsChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OvsChange::Create { spec } => {
                write!(f, "add OVS port {} to bridge {} (", spec.port, spec.bridge)?;
                f.write_str(if spec.internal {
                    "internal"
                } else {
                    "veth host end"
                })?;
                match spec.tag_column() {
                    Some(t) => write!(f, ", VLAN {t}")?,
                    None => f.write_str(", untagged")?,
                }
                if !spec.trunks.is_empty() {
                    write!(f, ", trunks {:?}", spec.trunk_column())?;
                }
                if let Some(m) = spec.vlan_mode {
                    write!(f, ", vlan_mode {}", m.as_ovsdb())?;
                }
                f.write_str(")")
            }
            OvsChange::Recreate { spec, reason, .. } => {
                write!(
                    f,
                    "re-create OVS port {} on bridge {}: {reason}",
                    spec.port, spec.bridge
                )
            }
            OvsChange::SetVlan { port, from, to, .. } => {
                write!(
                    f,
                    "set VLAN of OVS port {port}: {} → {}",
                    show_tag(from),
                    show_tag(to)
                )
            }
            OvsChange::SetTrunks { port, from, to, .. } => {
                write!(f, "set trunks of OVS port {port}: {from:?} → {to:?}")
            }
            OvsChange::SetVlanMode { port, from, to, .. } => write!(
                f,
                "set vlan_mode of OVS port {port}: {} → {}",
                from.as_deref().unwrap_or("default"),
                to.as_deref().unwrap_or("default")
            ),
            OvsChange::SetExternalIds { port, from, to, .. } => {
                write!(
                    f,
                    "set external_ids of OVS interface {port}: {from:?} → {to:?}"
                )
            }
            OvsChange::Remove { port, .. } => write!(f, "remove OVS port {port}"),
        }
    }
}

/// What must change for `owner`'s ports to match `specs`. Pure. Errors: a bridge that
/// does not exist, a wanted name held by a row that is not this container's.
pub fn plan(
    owner: &ContainerId,
    specs: &[PortSpec],
    observed: &Observed,
) -> Result<Vec<OvsChange>, OpError> {
    let mut changes = Vec::new();
    for spec in specs {
        let Some(bridge) = observed.bridges.get(spec.bridge.as_str()) else {
            return Err(OpError::new(
                spec.create_label(),
                format!(
                    "OVS bridge {} does not exist (netprov does not create bridges)",
                    spec.bridge
                ),
            ));
        };
        let Some(row) = observed.port(spec.port.as_str()) else {
            if observed.stray_interfaces.contains(spec.port.as_str()) {
                return Err(OpError::new(
                    spec.create_label(),
                    format!(
                        "an OVS interface named {} exists in another port and is not netprov's",
                        spec.port
                    ),
                ));
            }
            changes.push(OvsChange::Create { spec: spec.clone() });
            continue;
        };
        match row.owner() {
            Some(o) if o == owner.as_str() => {}
            Some(o) => {
                return Err(OpError::new(
                    spec.create_label(),
                    format!("OVS port {} belongs to netprov container {o} (external_ids:{OWNER_KEY}={o})", spec.port),
                ))
            }
            None => {
                return Err(OpError::new(
                    spec.create_label(),
                    format!(
                        "OVS port {} on {} exists and is not netprov's (no external_ids:{OWNER_KEY}={owner})",
                        spec.port, spec.bridge
                    ),
                ))
            }
        }
        let reason = if !bridge.ports.contains(&row.uuid) {
            Some(format!("it is on another bridge than {}", spec.bridge))
        } else if row
            .iface
            .as_ref()
            .is_some_and(|i| i.kind != spec.iface_type())
        {
            Some(format!(
                "its style changed to {}",
                if spec.internal { "internal" } else { "veth" }
            ))
        } else {
            row.broken()
        };
        if let Some(reason) = reason {
            changes.push(OvsChange::Recreate {
                spec: spec.clone(),
                port_uuid: row.uuid.clone(),
                reason,
            });
            continue;
        }
        // Same port, same device: VLAN settings change in place, without a flap.
        if row.tag != spec.tag_column() {
            changes.push(OvsChange::SetVlan {
                port: row.name.clone(),
                port_uuid: row.uuid.clone(),
                from: row.tag,
                to: spec.tag_column(),
            });
        }
        if row.trunks != spec.trunk_column() {
            changes.push(OvsChange::SetTrunks {
                port: row.name.clone(),
                port_uuid: row.uuid.clone(),
                from: row.trunks.clone(),
                to: spec.trunk_column(),
            });
        }
        if row.vlan_mode != spec.mode_column() {
            changes.push(OvsChange::SetVlanMode {
                port: row.name.clone(),
                port_uuid: row.uuid.clone(),
                from: row.vlan_mode.clone(),
                to: spec.mode_column(),
            });
        }
        if let Some(i) = &row.iface {
            if i.external_ids != spec.iface_ids() {
                changes.push(OvsChange::SetExternalIds {
                    port: row.name.clone(),
                    iface_uuid: i.uuid.clone(),
                    from: i.external_ids.clone(),
                    to: spec.iface_ids(),
                });
            }
        }
    }
    let wanted: BTreeSet<&str> = specs.iter().map(|s| s.port.as_str()).collect();
    for row in observed.ports.values() {
        if row.owner() == Some(owner.as_str()) && !wanted.contains(row.name.as_str()) {
            changes.push(OvsChange::Remove {
                port: row.name.clone(),
                port_uuid: row.uuid.clone(),
            });
        }
    }
    Ok(changes)
}

/// Takes a port off whatever bridge holds it; OVSDB then garbage-collects the Port and
/// its Interfaces (they are not root tables), and the explicit deletes make that
/// independent of other references.
fn push_removal(txn: &mut Txn, port_uuid: &str, ifaces: &[String], label: &str) {
    txn.push(
        Op::Mutate {
            table: "Bridge",
            conds: vec![Cond::includes("ports", uuid(port_uuid))],
            mutations: vec![json!(["ports", "delete", ["set", [uuid(port_uuid)]]])],
        },
        Some(label),
    );
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
    txn.push(
        Op::Wait {
            table: "Bridge",
            conds: vec![Cond::eq("name", spec.bridge.as_str())],
            columns: vec!["name"],
            until_equal: true,
            rows: vec![json!({"name": spec.bridge.as_str()})],
        },
        label,
    );
    for table in ["Port", "Interface"] {
        txn.push(
            Op::Wait {
                table,
                conds: vec![Cond::eq("name", spec.port.as_str())],
                columns: vec!["name"],
                until_equal: true,
                rows: vec![],
            },
            label,
        );
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
        Op::Mutate {
            table: "Bridge",
            conds: vec![Cond::eq("name", spec.bridge.as_str())],
            mutations: vec![json!(["ports", "insert", ["set", [named_uuid(&port_ref)]]])],
        },
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
fn commit_and_wait(
    client: &mut Client,
    what: &str,
    mut txn: Txn,
) -> Result<(), super::client::TransactError> {
    if txn.is_empty() {
        return Ok(());
    }
    let cfg_at = txn.bump_next_cfg();
    let results = client.transact(what, &txn)?;
    let next_cfg = results[cfg_at]["rows"][0]["next_cfg"].as_i64().unwrap_or(0);
    client
        .wait_applied(next_cfg, APPLY_TIMEOUT)
        .map_err(|error| super::client::TransactError {
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
) -> Result<(), super::client::TransactError> {
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
    read.push(
        Op::Select {
            table: "Port",
            conds: vec![owner_cond(owner)],
            columns: vec!["_uuid", "name", "interfaces"],
        },
        None,
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

/// Whether an internal port's device exists: under the port name in the current
/// (host) netns, where ovs-vswitchd creates it, or under the interface name in the
/// container netns it was moved to. For engines that do not track links themselves;
/// feed a `false` to [`Observed::mark_device_missing`].
pub fn internal_device_present(spec: &PortSpec, container_netns: &Path) -> Result<bool, OpError> {
    fn exists(name: &str) -> bool {
        let c = std::ffi::CString::new(name).expect("interface names have no NUL");
        // SAFETY: if_nametoindex reads a NUL-terminated string and nothing else.
        unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
    }
    if exists(spec.port.as_str()) {
        return Ok(true);
    }
    let iface = spec.iface.to_string();
    crate::netns::in_netns(container_netns, move || exists(&iface))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(vlan: i64) -> PortSpec {
        PortSpec {
            owner: ContainerId::new("web").unwrap(),
            iface: IfName::new("lan").unwrap(),
            port: IfName::new("lan").unwrap(),
            bridge: IfName::new("br0").unwrap(),
            internal: true,
            vlan: VlanTag::new(vlan).unwrap(),
            trunks: vec![],
            vlan_mode: None,
            external_ids: BTreeMap::new(),
        }
    }

    fn observed_with(port: Option<PortRow>) -> Observed {
        let mut o = Observed {
            owner: ContainerId::new("web").unwrap(),
            bridges: BTreeMap::new(),
            ports: BTreeMap::new(),
            stray_interfaces: BTreeSet::new(),
        };
        let mut b = BridgeRow {
            uuid: "b".into(),
            name: "br0".into(),
            ports: BTreeSet::new(),
        };
        if let Some(p) = port {
            b.ports.insert(p.uuid.clone());
            o.ports.insert(p.name.clone(), p);
        }
        o.bridges.insert("br0".into(), b);
        o
    }

    fn row_for(s: &PortSpec) -> PortRow {
        PortRow {
            uuid: "p".into(),
            name: s.port.to_string(),
            tag: s.tag_column(),
            trunks: vec![],
            vlan_mode: None,
            external_ids: s.port_ids(),
            interfaces: vec!["i".into()],
            iface: Some(IfaceRow {
                uuid: "i".into(),
                name: s.port.to_string(),
                kind: "internal".into(),
                ofport: Some(1),
                error: None,
                ifindex: Some(0),
                external_ids: s.iface_ids(),
            }),
            device_missing: None,
        }
    }

    #[test]
    fn absent_port_is_created() {
        let s = spec(10);
        let c = plan(&s.owner, &[s.clone()], &observed_with(None)).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].to_string(),
            "add OVS port lan to bridge br0 (internal, VLAN 10)"
        );
        let j = serde_json::to_value(&c[0]).unwrap();
        assert_eq!(j["action"], "create");
        assert_eq!(j["spec"]["vlan"], 10);
    }

    #[test]
    fn matching_port_needs_nothing_and_retag_is_in_place() {
        let s = spec(10);
        let o = observed_with(Some(row_for(&s)));
        assert!(plan(&s.owner, &[s.clone()], &o).unwrap().is_empty());
        let mut row = row_for(&s);
        row.tag = Some(20);
        let c = plan(&s.owner, &[s.clone()], &observed_with(Some(row))).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].to_string(), "set VLAN of OVS port lan: 20 → 10");
        let c = plan(&s.owner, &[spec(0)], &o).unwrap();
        assert_eq!(c[0].to_string(), "set VLAN of OVS port lan: 10 → untagged");
    }

    #[test]
    fn foreign_port_and_missing_bridge_are_errors() {
        let s = spec(10);
        let mut row = row_for(&s);
        row.external_ids.clear();
        let e = plan(&s.owner, &[s.clone()], &observed_with(Some(row))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "add OVS port lan to bridge br0: OVS port lan on br0 exists and is not netprov's (no external_ids:netprov-id=web)"
        );
        let mut o = observed_with(None);
        o.bridges.clear();
        let e = plan(&s.owner, &[s.clone()], &o).unwrap_err();
        assert!(
            e.to_string().contains("OVS bridge br0 does not exist"),
            "{e}"
        );
    }

    #[test]
    fn broken_device_is_recreated_and_stale_port_removed() {
        let s = spec(10);
        let mut row = row_for(&s);
        row.iface.as_mut().unwrap().error =
            Some("could not open network device lan (No such device)".into());
        let c = plan(&s.owner, &[s.clone()], &observed_with(Some(row))).unwrap();
        assert!(matches!(c[0], OvsChange::Recreate { .. }), "{c:?}");
        let mut o = observed_with(Some(row_for(&s)));
        o.mark_device_missing("lan", "no device lan in netns web");
        let c = plan(&s.owner, &[s.clone()], &o).unwrap();
        assert_eq!(
            c[0].to_string(),
            "re-create OVS port lan on bridge br0: no device lan in netns web"
        );
        let c = plan(&s.owner, &[], &observed_with(Some(row_for(&s)))).unwrap();
        assert_eq!(c[0].to_string(), "remove OVS port lan");
    }
}
