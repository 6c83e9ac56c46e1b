//! Logical switch ports in the OVN Northbound database: what a container wants
//! ([`LspSpec`]), what NB holds ([`NbObserved`]), and the NB half of [`OvnChange`].
//!
//! Ownership as for OVS ports: every Logical_Switch_Port netprov creates carries
//! `external_ids:netprov-id=<container id>` and `netprov-iface=<interface>`; a port with
//! a wanted name but without the mark is never taken over.
//!
//! `observe` reads NB, `plan` (pure) compares, `change` is what it returns, `apply`
//! writes it in one transaction (and `destroy` removes what a container owns).

mod apply;
mod change;
mod observe;
mod plan;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{ContainerId, IfName, Interface, InterfaceKind};
use crate::ovsdb::port::{display, IFACE_KEY, OWNER_KEY};

pub use apply::{apply, destroy};
pub use change::OvnChange;
pub use observe::observe;
pub use plan::plan;

/// One logical switch port a container wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LspSpec {
    #[serde(serialize_with = "display")]
    pub owner: ContainerId,
    /// The interface inside the container.
    #[serde(serialize_with = "display")]
    pub iface: IfName,
    /// The OVS Interface row it binds to (veth host end or internal port).
    #[serde(serialize_with = "display")]
    pub ovs_port: IfName,
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
                    owner: owner.clone(),
                    iface: i.name.clone(),
                    ovs_port: o.port_name(&i.name).clone(),
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
            (OWNER_KEY.to_owned(), self.owner.to_string()),
            (IFACE_KEY.to_owned(), self.iface.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_differs_per_chassis_and_port() {
        assert_eq!(iface_id_ver("a:b", "c1"), iface_id_ver("a:b", "c1"));
        assert_ne!(iface_id_ver("a:b", "c1"), iface_id_ver("a:b", "c2"));
        assert_ne!(iface_id_ver("a:b", "c1"), iface_id_ver("a:c", "c1"));
        assert_eq!(iface_id_ver("a:b", "c1").len(), 16);
    }
}
