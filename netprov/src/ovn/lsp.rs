//! Logical switch ports in the OVN Northbound database: what a container wants
//! ([`LspSpec`]), what NB holds ([`NbObserved`]), and the NB half of [`OvnChange`].
//!
//! Ownership as for OVS ports: every Logical_Switch_Port netprov creates carries
//! `external_ids:netprov-id=<container id>` and `netprov-iface=<interface>`; a port with
//! a wanted name but without the mark is never taken over.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};

use super::client::OvnClient;
use crate::error::OpError;
use crate::model::{ContainerId, Interface, InterfaceKind};
use crate::ovsdb::client::Txn;
use crate::ovsdb::ops::{
    named_uuid, parse_string_map, parse_uuid, set_members, string_map, uuid, Cond, Op,
};
use crate::ovsdb::port::{IFACE_KEY, OWNER_KEY};

/// One logical switch port a container wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LspSpec {
    pub owner: String,
    /// The interface inside the container.
    pub iface: String,
    /// The OVS Interface row it binds to (veth host end or internal port).
    pub ovs_port: String,
    /// `Logical_Switch_Port.name` = the OVS Interface's `iface-id`.
    pub name: String,
    pub switch: String,
    pub mac: String,
    pub addresses: Vec<String>,
    pub port_security: Vec<String>,
}

impl LspSpec {
    pub fn all(owner: &ContainerId, interfaces: &[Interface]) -> Vec<Self> {
        interfaces
            .iter()
            .filter_map(|i| match &i.kind {
                InterfaceKind::Ovs(o) => o.ovn.as_ref().map(|p| Self {
                    owner: owner.to_string(),
                    iface: i.name.to_string(),
                    ovs_port: o.port_name(&i.name).to_string(),
                    name: p.name.clone(),
                    switch: p.switch.clone(),
                    mac: p.mac.to_string(),
                    addresses: p.addresses.clone(),
                    port_security: p.port_security.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    fn external_ids(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (OWNER_KEY.to_owned(), self.owner.clone()),
            (IFACE_KEY.to_owned(), self.iface.clone()),
        ])
    }

    /// The `options` netprov sets: `requested-chassis` (only this host's
    /// ovn-controller may claim the port) and `iface-id-ver` (it binds only an OVS
    /// Interface carrying the same version, which netprov writes: a stale interface with
    /// the same `iface-id`, e.g. left on another host, is not bound).
    pub fn options(&self, chassis: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("requested-chassis".to_owned(), chassis.to_owned()),
            ("iface-id-ver".to_owned(), iface_id_ver(&self.name, chassis)),
        ])
    }

    /// The OVS Interface `external_ids` that bind it on `chassis`.
    pub fn ovs_ids(&self, chassis: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("iface-id".to_owned(), self.name.clone()),
            ("iface-id-ver".to_owned(), iface_id_ver(&self.name, chassis)),
            ("attached_mac".to_owned(), self.mac.clone()),
        ])
    }

    fn label(&self) -> String {
        format!(
            "create OVN logical switch port {} on switch {}",
            self.name, self.switch
        )
    }
}

/// 16 hex digits of SHA-256(`<port>/<chassis>`): deterministic (a re-apply rewrites
/// nothing) but different on every chassis.
pub fn iface_id_ver(port: &str, chassis: &str) -> String {
    crate::marks::sha256_hex(format!("{port}/{chassis}").as_bytes(), 8)
}

/// A Logical_Switch_Port row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LspRow {
    pub uuid: String,
    pub name: String,
    pub addresses: Vec<String>,
    pub port_security: Vec<String>,
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
    /// The switch holding it (`None`: no switch does).
    pub switch: Option<String>,
}

impl LspRow {
    pub fn owner(&self) -> Option<&str> {
        self.external_ids.get(OWNER_KEY).map(String::as_str)
    }
}

/// What NB holds for one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NbObserved {
    /// The wanted switches that exist: name → uuid.
    pub switches: BTreeMap<String, String>,
    /// Ports with a wanted name or the container's mark, by name.
    pub ports: BTreeMap<String, LspRow>,
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = set_members(v)
        .iter()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

fn rows(v: &Value) -> Vec<Value> {
    v["rows"].as_array().cloned().unwrap_or_default()
}

/// Two read-only transactions: the wanted switches and the ports (by name and by
/// mark), then the switch holding each port found.
pub fn observe(nb: &mut OvnClient, owner: &str, specs: &[LspSpec]) -> Result<NbObserved, OpError> {
    let what = format!("observe OVN logical ports of {owner}");
    let mut txn = Txn::new();
    let switches: BTreeSet<&str> = specs.iter().map(|s| s.switch.as_str()).collect();
    for s in &switches {
        txn.push(
            Op::Select {
                table: "Logical_Switch",
                conds: vec![Cond::eq("name", *s)],
                columns: vec!["_uuid", "name"],
            },
            None,
        );
    }
    let cols = vec![
        "_uuid",
        "name",
        "addresses",
        "port_security",
        "options",
        "external_ids",
    ];
    for s in specs {
        txn.push(
            Op::Select {
                table: "Logical_Switch_Port",
                conds: vec![Cond::eq("name", s.name.as_str())],
                columns: cols.clone(),
            },
            None,
        );
    }
    txn.push(
        Op::Select {
            table: "Logical_Switch_Port",
            conds: vec![Cond::includes(
                "external_ids",
                string_map(&BTreeMap::from([(OWNER_KEY.to_owned(), owner.to_owned())])),
            )],
            columns: cols,
        },
        None,
    );
    let res = nb.transact(&what, &txn)?;
    let mut out = NbObserved::default();
    for r in &res[..switches.len()] {
        for row in rows(r) {
            if let (Some(n), Some(u)) = (row["name"].as_str(), parse_uuid(&row["_uuid"])) {
                out.switches.insert(n.to_owned(), u);
            }
        }
    }
    for r in &res[switches.len()..] {
        for row in rows(r) {
            let Some(u) = parse_uuid(&row["_uuid"]) else {
                continue;
            };
            let name = row["name"].as_str().unwrap_or_default().to_owned();
            out.ports.insert(
                name.clone(),
                LspRow {
                    uuid: u,
                    name,
                    addresses: strings(&row["addresses"]),
                    port_security: strings(&row["port_security"]),
                    options: parse_string_map(&row["options"]),
                    external_ids: parse_string_map(&row["external_ids"]),
                    switch: None,
                },
            );
        }
    }
    if !out.ports.is_empty() {
        let mut txn = Txn::new();
        let names: Vec<String> = out.ports.keys().cloned().collect();
        for n in &names {
            txn.push(
                Op::Select {
                    table: "Logical_Switch",
                    conds: vec![Cond::includes(
                        "ports",
                        json!(["set", [uuid(&out.ports[n].uuid)]]),
                    )],
                    columns: vec!["name"],
                },
                None,
            );
        }
        let res = nb.transact(&what, &txn)?;
        for (n, r) in names.iter().zip(&res) {
            let sw = rows(r)
                .first()
                .and_then(|row| row["name"].as_str().map(str::to_owned));
            if let Some(p) = out.ports.get_mut(n) {
                p.switch = sw;
            }
        }
    }
    Ok(out)
}

/// One change to NB (or the wait for the chassis).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OvnChange {
    /// Insert the Logical_Switch_Port and add it to its switch, in one transaction.
    Create {
        spec: LspSpec,
        options: BTreeMap<String, String>,
    },
    /// Set addresses, port_security, options of a port netprov owns, in place.
    Update {
        name: String,
        uuid: String,
        what: String,
        addresses: Vec<String>,
        port_security: Vec<String>,
        options: BTreeMap<String, String>,
    },
    /// Remove a port netprov owns from its switch and delete it.
    Remove { name: String, uuid: String },
    /// Wait until ovn-controller reports the OVS interface `ovs_port` installed.
    WaitInstalled { name: String, ovs_port: String },
}

impl std::fmt::Display for OvnChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OvnChange::Create { spec, .. } => write!(
                f,
                "create OVN logical switch port {} on switch {} (addresses {:?})",
                spec.name, spec.switch, spec.addresses
            ),
            OvnChange::Update { name, what, .. } => {
                write!(f, "update OVN logical switch port {name}: {what}")
            }
            OvnChange::Remove { name, .. } => write!(f, "remove OVN logical switch port {name}"),
            OvnChange::WaitInstalled { name, ovs_port } => write!(
                f,
                "wait for ovn-controller to install OVN port {name} (OVS interface {ovs_port})"
            ),
        }
    }
}

impl OvnChange {
    /// The change read as drift (object, problem).
    pub fn as_drift(&self) -> (String, String) {
        match self {
            OvnChange::Create { spec, .. } => (
                format!("OVN logical switch port {}", spec.name),
                format!("missing on switch {}", spec.switch),
            ),
            OvnChange::Update { name, what, .. } => {
                (format!("OVN logical switch port {name}"), what.clone())
            }
            OvnChange::Remove { name, .. } => (
                format!("OVN logical switch port {name}"),
                "is netprov's but not in the props".into(),
            ),
            OvnChange::WaitInstalled { name, ovs_port } => (
                format!("OVN port {name} (OVS interface {ovs_port})"),
                "not installed by ovn-controller (no external_ids:ovn-installed=true)".into(),
            ),
        }
    }
}

/// What must change in NB for `specs` (pure). `chassis` is this host's `system-id`.
pub fn plan(
    owner: &str,
    specs: &[LspSpec],
    nb: &NbObserved,
    chassis: &str,
) -> Result<Vec<OvnChange>, OpError> {
    let mut out = Vec::new();
    for s in specs {
        if !nb.switches.contains_key(&s.switch) {
            return Err(OpError::new(
                s.label(),
                format!(
                    "logical switch {} does not exist in the OVN Northbound database (netprov does not create switches)",
                    s.switch
                ),
            ));
        }
        let options = s.options(chassis);
        let Some(row) = nb.ports.get(&s.name) else {
            out.push(OvnChange::Create {
                spec: s.clone(),
                options,
            });
            continue;
        };
        match row.owner() {
            Some(o) if o == owner => {}
            Some(o) => {
                return Err(OpError::new(
                    s.label(),
                    format!("logical switch port {} belongs to netprov container {o} (external_ids:{OWNER_KEY}={o})", s.name),
                ))
            }
            None => {
                return Err(OpError::new(
                    s.label(),
                    format!("logical switch port {} exists and is not netprov's (no external_ids:{OWNER_KEY}={owner})", s.name),
                ))
            }
        }
        if row.switch.as_deref() != Some(s.switch.as_str()) {
            out.push(OvnChange::Remove {
                name: row.name.clone(),
                uuid: row.uuid.clone(),
            });
            out.push(OvnChange::Create {
                spec: s.clone(),
                options,
            });
            continue;
        }
        // Options set by others (e.g. an operator's `qos_burst`) are kept.
        let mut want_opts = row.options.clone();
        want_opts.extend(options);
        let mut what = Vec::new();
        if row.addresses != s.addresses {
            what.push(format!(
                "addresses {:?}, want {:?}",
                row.addresses, s.addresses
            ));
        }
        if row.port_security != s.port_security {
            what.push(format!(
                "port_security {:?}, want {:?}",
                row.port_security, s.port_security
            ));
        }
        if row.options != want_opts {
            what.push(format!("options {:?}, want {:?}", row.options, want_opts));
        }
        if !what.is_empty() {
            out.push(OvnChange::Update {
                name: row.name.clone(),
                uuid: row.uuid.clone(),
                what: what.join("; "),
                addresses: s.addresses.clone(),
                port_security: s.port_security.clone(),
                options: want_opts,
            });
        }
    }
    let wanted: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    for row in nb.ports.values() {
        if row.owner() == Some(owner) && !wanted.contains(row.name.as_str()) {
            out.push(OvnChange::Remove {
                name: row.name.clone(),
                uuid: row.uuid.clone(),
            });
        }
    }
    Ok(out)
}

fn str_set(v: &[String]) -> Value {
    json!(["set", v])
}

fn owned(owner: &str) -> Cond {
    Cond::includes(
        "external_ids",
        string_map(&BTreeMap::from([(OWNER_KEY.to_owned(), owner.to_owned())])),
    )
}

fn remove_ops(txn: &mut Txn, owner: &str, name: &str, u: &str) {
    let label = format!("remove OVN logical switch port {name}");
    txn.push(
        Op::Mutate {
            table: "Logical_Switch",
            conds: vec![Cond::includes("ports", json!(["set", [uuid(u)]]))],
            mutations: vec![json!(["ports", "delete", ["set", [uuid(u)]]])],
        },
        Some(&label),
    );
    txn.push(
        Op::Delete {
            table: "Logical_Switch_Port",
            conds: vec![Cond::uuid(u), owned(owner)],
        },
        Some(&label),
    );
}

/// Applies the NB changes (not the waits) in one transaction.
pub fn apply(nb: &mut OvnClient, owner: &str, changes: &[OvnChange]) -> Result<(), OpError> {
    let mut txn = Txn::new();
    let mut counted = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        match c {
            OvnChange::Create { spec, options } => {
                let label = spec.label();
                // The switch exists, and no port has the name (another writer may have
                // made one since we looked): otherwise nothing happens.
                txn.push(
                    Op::Wait {
                        table: "Logical_Switch",
                        conds: vec![Cond::eq("name", spec.switch.as_str())],
                        columns: vec!["name"],
                        until_equal: true,
                        rows: vec![json!({"name": spec.switch})],
                    },
                    Some(&label),
                );
                let fresh = !changes[..i]
                    .iter()
                    .any(|c| matches!(c, OvnChange::Remove { name, .. } if *name == spec.name));
                if fresh {
                    txn.push(
                        Op::Wait {
                            table: "Logical_Switch_Port",
                            conds: vec![Cond::eq("name", spec.name.as_str())],
                            columns: vec!["name"],
                            until_equal: true,
                            rows: vec![],
                        },
                        Some(&label),
                    );
                }
                let nu = format!("lsp{i}");
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
                    Some(&label),
                );
                txn.push(
                    Op::Mutate {
                        table: "Logical_Switch",
                        conds: vec![Cond::eq("name", spec.switch.as_str())],
                        mutations: vec![json!(["ports", "insert", ["set", [named_uuid(&nu)]]])],
                    },
                    Some(&label),
                );
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
                        conds: vec![Cond::uuid(u), owned(owner)],
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
    use super::*;

    fn spec(name: &str, switch: &str) -> LspSpec {
        LspSpec {
            owner: "web".into(),
            iface: "lan".into(),
            ovs_port: "ve-web-lan".into(),
            name: name.into(),
            switch: switch.into(),
            mac: "0a:00:00:00:00:01".into(),
            addresses: vec!["0a:00:00:00:00:01 10.0.0.2".into()],
            port_security: vec!["0a:00:00:00:00:01 10.0.0.2".into()],
        }
    }

    fn row(s: &LspSpec, owner: Option<&str>, switch: &str) -> LspRow {
        let mut external_ids = BTreeMap::new();
        if let Some(o) = owner {
            external_ids.insert(OWNER_KEY.to_owned(), o.to_owned());
        }
        LspRow {
            uuid: "u1".into(),
            name: s.name.clone(),
            addresses: s.addresses.clone(),
            port_security: s.port_security.clone(),
            options: s.options("ch1"),
            external_ids,
            switch: Some(switch.into()),
        }
    }

    fn nb(rows: Vec<LspRow>) -> NbObserved {
        NbObserved {
            switches: BTreeMap::from([("A".into(), "s1".into()), ("B".into(), "s2".into())]),
            ports: rows.into_iter().map(|r| (r.name.clone(), r)).collect(),
        }
    }

    #[test]
    fn plan_matrix() {
        let s = spec("web:lan", "A");
        // Missing → create; in sync → nothing; foreign → refused; other switch → move.
        assert!(matches!(
            plan("web", std::slice::from_ref(&s), &nb(vec![]), "ch1").unwrap()[..],
            [OvnChange::Create { .. }]
        ));
        assert!(plan(
            "web",
            std::slice::from_ref(&s),
            &nb(vec![row(&s, Some("web"), "A")]),
            "ch1"
        )
        .unwrap()
        .is_empty());
        for owner in [None, Some("db")] {
            let e = plan(
                "web",
                std::slice::from_ref(&s),
                &nb(vec![row(&s, owner, "A")]),
                "ch1",
            )
            .unwrap_err();
            assert!(e.to_string().contains("web:lan"), "{e}");
        }
        let moved = plan(
            "web",
            std::slice::from_ref(&s),
            &nb(vec![row(&s, Some("web"), "B")]),
            "ch1",
        )
        .unwrap();
        assert!(matches!(
            moved[..],
            [OvnChange::Remove { .. }, OvnChange::Create { .. }]
        ));
        // Another chassis: options follow (requested-chassis, iface-id-ver).
        let other = plan(
            "web",
            std::slice::from_ref(&s),
            &nb(vec![row(&s, Some("web"), "A")]),
            "ch2",
        )
        .unwrap();
        assert!(
            matches!(&other[..], [OvnChange::Update { what, .. }] if what.contains("requested-chassis"))
        );
        // A switch that does not exist.
        let e = plan("web", &[spec("web:lan", "C")], &nb(vec![]), "ch1").unwrap_err();
        assert!(
            e.to_string().contains("logical switch C does not exist"),
            "{e}"
        );
        // Owned but unwanted → removed.
        let gone = plan("web", &[], &nb(vec![row(&s, Some("web"), "A")]), "ch1").unwrap();
        assert!(matches!(gone[..], [OvnChange::Remove { .. }]));
    }

    #[test]
    fn version_differs_per_chassis_and_port() {
        assert_eq!(iface_id_ver("a:b", "c1"), iface_id_ver("a:b", "c1"));
        assert_ne!(iface_id_ver("a:b", "c1"), iface_id_ver("a:b", "c2"));
        assert_ne!(iface_id_ver("a:b", "c1"), iface_id_ver("a:c", "c1"));
        assert_eq!(iface_id_ver("a:b", "c1").len(), 16);
    }
}
