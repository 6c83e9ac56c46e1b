//! The difference between what a container wants and what OVSDB holds.

use std::collections::BTreeSet;

use super::{Observed, OvsChange, PortRow, PortSpec, OWNER_KEY};
use crate::error::OpError;
use crate::model::ContainerId;

/// Interface `external_ids` keys that ovn-controller sets on a bound port; netprov
/// neither removes nor reports them.
pub const CONTROLLER_KEYS: [&str; 2] = ["ovn-installed", "ovn-installed-ts"];

/// What must change for `owner`'s ports to match `specs`. Pure. Errors: a bridge that
/// does not exist, a wanted name held by a row that is not this container's.
pub fn plan(
    owner: &ContainerId,
    specs: &[PortSpec],
    observed: &Observed,
) -> Result<Vec<OvsChange>, OpError> {
    let mut changes = Vec::new();
    for spec in specs {
        changes.extend(plan_port(owner, spec, observed)?);
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

/// The changes for one wanted port.
fn plan_port(
    owner: &ContainerId,
    spec: &PortSpec,
    observed: &Observed,
) -> Result<Vec<OvsChange>, OpError> {
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
        return Ok(vec![OvsChange::Create { spec: spec.clone() }]);
    };
    check_owner(owner, spec, row)?;
    if row
        .iface
        .as_ref()
        .is_some_and(|i| i.kind != spec.iface_type())
    {
        // Style changed under the same name (an explicit hostName equal to the
        // interface name): the removal goes first, in its own phase, so that the
        // internal device it deletes is gone before the veth takes the name.
        return Ok(vec![
            OvsChange::Remove {
                port: row.name.clone(),
                port_uuid: row.uuid.clone(),
            },
            OvsChange::Create { spec: spec.clone() },
        ]);
    }
    let reason = if !bridge.ports.contains(&row.uuid) {
        Some(format!("it is on another bridge than {}", spec.bridge))
    } else {
        row.broken()
    };
    if let Some(reason) = reason {
        return Ok(vec![OvsChange::Recreate {
            spec: spec.clone(),
            port_uuid: row.uuid.clone(),
            reason,
        }]);
    }
    let mut changes = in_place(spec, row);
    changes.extend(external_ids(spec, row));
    Ok(changes)
}

/// A row with a wanted name must carry this container's mark.
fn check_owner(owner: &ContainerId, spec: &PortSpec, row: &PortRow) -> Result<(), OpError> {
    let cause = match row.owner() {
        Some(o) if o == owner.as_str() => return Ok(()),
        Some(o) => format!(
            "OVS port {} belongs to netprov container {o} (external_ids:{OWNER_KEY}={o}){}",
            spec.port,
            if spec.internal {
                "; an internal port is named after its interface on the whole host: rename the interface or use ovs.style \"veth\""
            } else {
                ""
            }
        ),
        None => format!(
            "OVS port {} on {} exists and is not netprov's (no external_ids:{OWNER_KEY}={owner})",
            spec.port, spec.bridge
        ),
    };
    Err(OpError::new(spec.create_label(), cause))
}

/// Same port, same device: VLAN settings change in place, without a flap.
fn in_place(spec: &PortSpec, row: &PortRow) -> Vec<OvsChange> {
    let mut changes = Vec::new();
    if row.tag != spec.tag_column() {
        changes.push(OvsChange::SetVlan {
            port: spec.port.clone(),
            port_uuid: row.uuid.clone(),
            from: row.tag,
            to: spec.tag_column(),
        });
    }
    if row.trunks != spec.trunk_column() {
        changes.push(OvsChange::SetTrunks {
            port: spec.port.clone(),
            port_uuid: row.uuid.clone(),
            from: row.trunks.clone(),
            to: spec.trunk_column(),
        });
    }
    if row.vlan_mode != spec.mode_column() {
        changes.push(OvsChange::SetVlanMode {
            port: spec.port.clone(),
            port_uuid: row.uuid.clone(),
            from: row.vlan_mode.clone(),
            to: spec.mode_column(),
        });
    }
    changes
}

/// The Interface row's `external_ids`: netprov's marks and the props' keys.
fn external_ids(spec: &PortSpec, row: &PortRow) -> Option<OvsChange> {
    let i = row.iface.as_ref()?;
    // Keys ovn-controller writes (ovn-installed) are kept, not fought over.
    let mut to = spec.iface_ids();
    // ...unless the binding changes: a stale ovn-installed would end the wait
    // for the new one at once.
    let same_binding = i.external_ids.get("iface-id") == to.get("iface-id");
    for k in CONTROLLER_KEYS.into_iter().filter(|_| same_binding) {
        if let Some(v) = i.external_ids.get(k) {
            to.insert(k.to_owned(), v.clone());
        }
    }
    (i.external_ids != to).then(|| OvsChange::SetExternalIds {
        port: spec.port.clone(),
        iface_uuid: i.uuid.clone(),
        from: i.external_ids.clone(),
        to,
    })
}

#[cfg(test)]
mod tests;
