//! netprov's OVS ports: what a container wants ([`PortSpec`]), what OVSDB has
//! ([`Observed`]), the difference ([`OvsChange`]) and how to make it so.
//!
//! Ownership lives in OVSDB itself: every Port and Interface row netprov creates carries
//! `external_ids:netprov-id=<container id>` (and `netprov-iface=<name in the
//! container>`); observe, destroy and repair look rows up by that mark, so no state file
//! is needed. A row with a wanted name but without the mark is never touched.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::model::{
    ContainerId, IfName, Interface, InterfaceKind, OvsPort, OvsStyle, VlanMode, VlanTag,
};

/// The `external_ids` keys that mark netprov's rows (owning container, interface name
/// inside it): [`crate::marks`].
pub use crate::marks::{IFACE_KEY, OWNER_KEY};

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

pub(crate) fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
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

    /// `Port.tag`. An empty `tag` with an empty `vlan_mode` makes Open vSwitch treat the
    /// port as a trunk of *every* VLAN (the container could send 802.1Q-tagged frames
    /// into any VLAN on the bridge), so a port without explicit trunks or mode is an
    /// access port: `tag` 0 for VLAN 0 — untagged frames only, tagged ones dropped
    /// (what NixUnits' `tag=0` did). A trunk needs `trunks` or `vlan_mode` trunk, and
    /// there `tag` must be empty unless it is the native VLAN.
    fn tag_column(&self) -> Option<u16> {
        let tag = self.vlan.get();
        match self.vlan_mode {
            Some(VlanMode::Trunk) => None,
            Some(_) => Some(tag),
            None if self.trunks.is_empty() => Some(tag),
            None => (tag != 0).then_some(tag),
        }
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

mod apply;
mod observe;
mod plan;

pub use apply::{apply, converge, destroy};
pub use observe::{observe, BridgeRow, IfaceRow, Observed, PortRow};
pub use plan::{plan, show_tag, OvsChange};
