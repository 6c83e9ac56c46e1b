//! `plan`'s cases: creation, in-place VLAN changes, foreign rows, repairs, and the keys
//! ovn-controller writes.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::model::{IfName, VlanTag};
use crate::ovsdb::port::{BridgeRow, IfaceRow, PortRow};

/// An internal port `lan` on `br0`.
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

/// A veth-style port on `br-int` bound to OVN port `id`.
fn spec_with_iface_id(id: &str) -> PortSpec {
    PortSpec {
        port: IfName::new("ve-web-lan").unwrap(),
        bridge: IfName::new("br-int").unwrap(),
        internal: false,
        external_ids: BTreeMap::from([("iface-id".to_owned(), id.to_owned())]),
        ..spec(0)
    }
}

fn observed_with(port: Option<PortRow>) -> Observed {
    observed_on("br0", port)
}

/// `plan` for the one spec `s`.
fn plan_one(s: &PortSpec, o: &Observed) -> Result<Vec<OvsChange>, OpError> {
    plan(&s.owner, std::slice::from_ref(s), o)
}

/// Bridge `bridge` holding `port`, if any.
fn observed_on(bridge: &str, port: Option<PortRow>) -> Observed {
    let mut b = BridgeRow {
        uuid: "b".into(),
        name: bridge.into(),
        ports: BTreeSet::new(),
    };
    let mut ports = BTreeMap::new();
    if let Some(p) = port {
        b.ports.insert(p.uuid.clone());
        ports.insert(p.name.clone(), p);
    }
    Observed {
        owner: ContainerId::new("web").unwrap(),
        bridges: BTreeMap::from([(bridge.to_owned(), b)]),
        ports,
        stray_interfaces: BTreeSet::new(),
    }
}

/// The rows `s` makes, healthy: an internal port's device is invisible to ovs-vswitchd
/// once moved into the container (`ifindex` 0), a veth host end has one.
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
            kind: s.iface_type().into(),
            ofport: Some(1),
            error: None,
            ifindex: Some(if s.internal { 0 } else { 5 }),
            external_ids: s.iface_ids(),
        }),
        device_missing: None,
    }
}

#[test]
fn absent_port_is_created() {
    let s = spec(10);
    let c = plan_one(&s, &observed_with(None)).unwrap();
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
    assert!(plan_one(&s, &o).unwrap().is_empty());
    let mut row = row_for(&s);
    row.tag = Some(20);
    let c = plan_one(&s, &observed_with(Some(row))).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].to_string(), "set VLAN of OVS port lan: 20 → 10");
    let c = plan(&s.owner, &[spec(0)], &o).unwrap();
    assert_eq!(
        c[0].to_string(),
        "set VLAN of OVS port lan: 10 → 0 (untagged)"
    );
}

#[test]
fn foreign_port_and_missing_bridge_are_errors() {
    let s = spec(10);
    let mut row = row_for(&s);
    row.external_ids.clear();
    let e = plan_one(&s, &observed_with(Some(row))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "add OVS port lan to bridge br0: OVS port lan on br0 exists and is not netprov's (no external_ids:netprov-id=web)"
    );
    let mut o = observed_with(None);
    o.bridges.clear();
    let e = plan_one(&s, &o).unwrap_err();
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
    let c = plan_one(&s, &observed_with(Some(row))).unwrap();
    assert!(matches!(c[0], OvsChange::Recreate { .. }), "{c:?}");
    let mut o = observed_with(Some(row_for(&s)));
    o.mark_device_missing("lan", "no device lan in netns web");
    let c = plan_one(&s, &o).unwrap();
    assert_eq!(
        c[0].to_string(),
        "re-create OVS port lan on bridge br0: no device lan in netns web"
    );
    let c = plan(&s.owner, &[], &observed_with(Some(row_for(&s)))).unwrap();
    assert_eq!(c[0].to_string(), "remove OVS port lan");
}

#[test]
fn style_bridge_and_veth_health_force_recreation() {
    let s = spec(10);
    // Style changed internal → veth.
    let mut veth = s.clone();
    veth.internal = false;
    let c = plan_one(&veth, &observed_with(Some(row_for(&s)))).unwrap();
    // Removal and creation as two changes: the removal runs in its own, earlier
    // phase (it deletes the internal device the veth's container end replaces).
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(c[0].to_string(), "remove OVS port lan");
    assert_eq!(
        c[1].to_string(),
        "add OVS port lan to bridge br0 (veth host end, VLAN 10)"
    );
    // On another bridge.
    let mut o = observed_with(Some(row_for(&s)));
    o.bridges.get_mut("br0").unwrap().ports.clear();
    let c = plan_one(&s, &o).unwrap();
    assert!(
        c[0].to_string()
            .ends_with("it is on another bridge than br0"),
        "{}",
        c[0]
    );
    // A veth host end OVS no longer sees.
    let mut row = row_for(&veth);
    row.iface.as_mut().unwrap().kind = String::new();
    row.iface.as_mut().unwrap().ifindex = Some(5);
    assert!(plan_one(&veth, &observed_with(Some(row.clone())))
        .unwrap()
        .is_empty());
    row.iface.as_mut().unwrap().ifindex = Some(0);
    let c = plan_one(&veth, &observed_with(Some(row))).unwrap();
    assert_eq!(
        c[0].to_string(),
        "re-create OVS port lan on bridge br0: device lan is gone (ifindex 0)"
    );
    // An OVS error that re-creation would not cure is left alone.
    let mut row = row_for(&s);
    row.iface.as_mut().unwrap().error =
        Some("could not add network device lan to ofproto (Invalid argument)".into());
    assert!(plan_one(&s, &observed_with(Some(row))).unwrap().is_empty());
}

#[test]
fn other_containers_port_is_an_error() {
    let s = spec(10);
    let mut row = row_for(&s);
    row.external_ids.insert(OWNER_KEY.into(), "db".into());
    let e = plan_one(&s, &observed_with(Some(row))).unwrap_err();
    assert_eq!(e.to_string(), "add OVS port lan to bridge br0: OVS port lan belongs to netprov container db (external_ids:netprov-id=db); an internal port is named after its interface on the whole host: rename the interface or use ovs.style \"veth\"");
}

/// Every combination of VLAN, trunks and mode: a port is a trunk only when the props
/// say so (`trunks` or a trunk mode); otherwise it is an access port with a `tag`,
/// 0 for the untagged VLAN (an empty `tag` and `vlan_mode` would be a trunk of all).
#[test]
fn tag_column_is_a_trunk_only_when_asked() {
    use crate::model::VlanMode::*;
    for vlan in [0, 1, 356, 4095] {
        for trunks in [vec![], vec![VlanTag::new(20).unwrap()]] {
            for mode in [None, Some(Access), Some(Trunk), Some(NativeTagged)] {
                let mut s = spec(vlan);
                s.trunks = trunks.clone();
                s.vlan_mode = mode;
                let want = match mode {
                    Some(Trunk) => None,
                    None if !trunks.is_empty() && vlan == 0 => None,
                    _ => Some(vlan as u16),
                };
                assert_eq!(
                    s.tag_column(),
                    want,
                    "vlan {vlan} trunks {trunks:?} {mode:?}"
                );
                // Never the implicit trunk of every VLAN.
                assert!(
                    !(s.tag_column().is_none() && s.mode_column().is_none() && s.trunks.is_empty()),
                    "vlan {vlan} {mode:?}"
                );
            }
        }
    }
}

#[test]
fn empty_tag_of_an_untagged_port_migrates_to_access_in_place() {
    let s = spec(0);
    let mut row = row_for(&s);
    row.tag = None;
    let c = plan_one(&s, &observed_with(Some(row))).unwrap();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(
        c[0].to_string(),
        "set VLAN of OVS port lan: none → 0 (untagged)"
    );
    // And then nothing.
    let o = observed_with(Some(row_for(&s)));
    assert!(plan_one(&s, &o).unwrap().is_empty());
}

#[test]
fn create_display_lists_trunks_and_mode() {
    let mut s = spec(0);
    s.trunks = vec![VlanTag::new(10).unwrap(), VlanTag::new(20).unwrap()];
    s.vlan_mode = Some(crate::model::VlanMode::Trunk);
    let c = OvsChange::Create { spec: s };
    assert_eq!(
        c.to_string(),
        "add OVS port lan to bridge br0 (internal, trunks [10, 20], vlan_mode trunk)"
    );
    let j = serde_json::to_value(&c).unwrap();
    assert_eq!(j["spec"]["trunks"], serde_json::json!([10, 20]));
    assert_eq!(j["spec"]["vlan_mode"], "trunk");
    assert_eq!(j["spec"]["owner"], "web");
}

#[test]
fn ovn_installed_is_kept_for_the_same_binding_only() {
    let mut s = spec_with_iface_id("web:lan");
    for installed in [None, Some("true")] {
        let mut row = row_for(&s);
        if let (Some(v), Some(i)) = (installed, row.iface.as_mut()) {
            i.external_ids.insert("ovn-installed".into(), v.into());
            i.external_ids.insert("ovn-installed-ts".into(), "1".into());
        }
        let o = observed_on("br-int", Some(row.clone()));
        // Same iface-id: ovn-controller's keys are neither drift nor removed.
        assert!(plan_one(&s, &o).unwrap().is_empty());
        // Another iface-id: the update drops them (the new binding is not installed).
        s.external_ids.insert("iface-id".into(), "web:lan2".into());
        let c = plan_one(&s, &o).unwrap();
        match &c[..] {
            [OvsChange::SetExternalIds { to, .. }] => {
                assert!(!to.contains_key("ovn-installed"), "{to:?}");
                assert_eq!(to["iface-id"], "web:lan2");
            }
            other => panic!("{other:?}"),
        }
        s.external_ids.insert("iface-id".into(), "web:lan".into());
    }
}
