//! One change to a container's OVS ports, as the plan shows it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::{display, PortSpec};
use crate::model::IfName;

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
        #[serde(serialize_with = "display")]
        port: IfName,
        port_uuid: String,
        from: Option<u16>,
        to: Option<u16>,
    },
    SetTrunks {
        #[serde(serialize_with = "display")]
        port: IfName,
        port_uuid: String,
        from: Vec<u16>,
        to: Vec<u16>,
    },
    SetVlanMode {
        #[serde(serialize_with = "display")]
        port: IfName,
        port_uuid: String,
        from: Option<String>,
        to: Option<String>,
    },
    SetExternalIds {
        #[serde(serialize_with = "display")]
        port: IfName,
        iface_uuid: String,
        from: BTreeMap<String, String>,
        to: BTreeMap<String, String>,
    },
    /// A port this container owns that its props no longer name (or whose style
    /// changed). `port` is the observed row's name: OVSDB takes any string, and a row
    /// marked as this container's must be removable whatever it is called.
    Remove { port: String, port_uuid: String },
}

/// A `Port.tag` value as the plan and `check` show it: empty is "none" (a trunk, or
/// with no `vlan_mode` and no `trunks` a trunk of every VLAN), 0 is the untagged VLAN.
pub fn show_tag(t: &Option<u16>) -> String {
    match t {
        None => "none".to_owned(),
        Some(0) => "0 (untagged)".to_owned(),
        Some(t) => t.to_string(),
    }
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
                    Some(0) => f.write_str(", untagged")?,
                    Some(t) => write!(f, ", VLAN {t}")?,
                    None => {}
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
