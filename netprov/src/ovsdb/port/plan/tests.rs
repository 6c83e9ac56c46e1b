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
        trunks: s.trunk_column(),
        vlan_mode: s.mode_column(),
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

/// What `apply` does to the rows, done to an `Observed` (the e2e tests check `apply`
/// against a real ovsdb-server; this checks that `plan` asks for enough).
fn simulate(o: &mut Observed, changes: &[OvsChange]) {
    fn drop_port(o: &mut Observed, name: &str) {
        if let Some(r) = o.ports.remove(name) {
            for b in o.bridges.values_mut() {
                b.ports.remove(&r.uuid);
            }
        }
    }
    fn row<'a>(o: &'a mut Observed, name: &IfName) -> &'a mut PortRow {
        o.ports.get_mut(name.as_str()).unwrap()
    }
    for c in changes {
        match c {
            OvsChange::Create { spec } | OvsChange::Recreate { spec, .. } => {
                drop_port(o, spec.port.as_str());
                let mut new = row_for(spec);
                new.uuid = format!("p-{}", spec.port);
                let bridge = o.bridges.get_mut(spec.bridge.as_str()).unwrap();
                bridge.ports.insert(new.uuid.clone());
                o.ports.insert(new.name.clone(), new);
            }
            OvsChange::Remove { port, .. } => drop_port(o, port),
            OvsChange::SetVlan { port, to, .. } => row(o, port).tag = *to,
            OvsChange::SetTrunks { port, to, .. } => row(o, port).trunks = to.clone(),
            OvsChange::SetVlanMode { port, to, .. } => row(o, port).vlan_mode = to.clone(),
            OvsChange::SetExternalIds { port, to, .. } => {
                row(o, port).iface.as_mut().unwrap().external_ids = to.clone()
            }
        }
    }
}

mod generated {
    use proptest::prelude::*;

    use super::*;
    use crate::model::VlanMode;

    const NAMES: [&str; 3] = ["lan", "wan", "dmz"];

    fn vlan_mode() -> impl Strategy<Value = Option<VlanMode>> {
        prop_oneof![
            Just(None),
            Just(Some(VlanMode::Access)),
            Just(Some(VlanMode::Trunk)),
            Just(Some(VlanMode::NativeTagged)),
            Just(Some(VlanMode::NativeUntagged)),
        ]
    }

    /// The port settings props can ask for.
    fn wanted() -> impl Strategy<Value = (bool, u16, Vec<u16>, Option<VlanMode>, bool)> {
        (
            any::<bool>(),
            0u16..=4095,
            prop::collection::vec(1u16..=4095, 0..3),
            vlan_mode(),
            any::<bool>(),
        )
    }

    /// What an owned row may look like before the run: stale VLAN columns, stale or
    /// extra `external_ids`, a broken device, another bridge.
    fn stale() -> impl Strategy<Value = (Option<u16>, Vec<u16>, Option<&'static str>, u8)> {
        (
            prop::option::of(0u16..=4095),
            prop::collection::vec(1u16..=4095, 0..2),
            prop::option::of(prop::sample::select(vec!["access", "trunk"])),
            0u8..5,
        )
    }

    fn make_spec(
        name: &str,
        (internal, vlan, trunks, mode, ovn): (bool, u16, Vec<u16>, Option<VlanMode>, bool),
    ) -> PortSpec {
        let mut s = spec(i64::from(vlan));
        s.iface = IfName::new(name).unwrap();
        s.port = IfName::new(&if internal {
            name.to_owned()
        } else {
            format!("ve-{name}")
        })
        .unwrap();
        s.internal = internal;
        s.trunks = trunks
            .into_iter()
            .map(|t| VlanTag::new(i64::from(t)).unwrap())
            .collect();
        s.vlan_mode = mode;
        if ovn {
            s.external_ids
                .insert("iface-id".into(), format!("web:{name}"));
        }
        s
    }

    fn make_row(
        s: &PortSpec,
        (tag, trunks, mode, damage): (Option<u16>, Vec<u16>, Option<&str>, u8),
    ) -> PortRow {
        let mut r = row_for(s);
        r.uuid = format!("old-{}", s.port);
        r.tag = tag;
        r.trunks = trunks;
        r.vlan_mode = mode.map(str::to_owned);
        let i = r.iface.as_mut().unwrap();
        match damage {
            0 => {}
            1 => {
                i.error = Some(format!(
                    "could not open network device {} (No such device)",
                    s.port
                ))
            }
            2 => {
                i.kind = if s.internal {
                    String::new()
                } else {
                    "internal".into()
                }
            }
            3 => {
                i.external_ids.insert("ovn-installed".into(), "true".into());
                i.external_ids.insert("stale".into(), "x".into());
            }
            _ => r.device_missing = Some("gone".into()),
        }
        r
    }

    proptest! {
        /// Whatever owned rows there were, doing what `plan` says leaves nothing to do
        /// ("re-apply changes nothing"), and every wanted port then exists as wanted.
        #[test]
        fn applying_the_plan_converges(
            want in prop::collection::vec(prop::option::of(wanted()), 3),
            have in prop::collection::vec(prop::option::of((wanted(), stale(), any::<bool>())), 3),
        ) {
            let specs: Vec<PortSpec> = NAMES.iter().zip(&want)
                .filter_map(|(n, w)| w.clone().map(|w| make_spec(n, w)))
                .collect();
            let mut o = observed_with(None);
            for (n, h) in NAMES.iter().zip(have) {
                let Some((w, st, on_bridge)) = h else { continue };
                let row = make_row(&make_spec(n, w), st);
                if on_bridge {
                    o.bridges.get_mut("br0").unwrap().ports.insert(row.uuid.clone());
                }
                o.ports.insert(row.name.clone(), row);
            }
            let owner = ContainerId::new("web").unwrap();
            let changes = plan(&owner, &specs, &o).unwrap();
            simulate(&mut o, &changes);
            let again = plan(&owner, &specs, &o).unwrap();
            prop_assert!(again.is_empty(), "after {changes:?}: {again:?}");
            for s in &specs {
                let r = o.port(s.port.as_str()).unwrap();
                prop_assert!(o.bridges["br0"].ports.contains(&r.uuid));
                prop_assert_eq!(r.broken(), None);
                // As a fresh creation would make it, but for ovn-controller's keys.
                let mut r = r.clone();
                let fresh = row_for(s);
                let i = r.iface.as_mut().unwrap();
                for k in CONTROLLER_KEYS {
                    i.external_ids.remove(k);
                }
                prop_assert_eq!(
                    (&r.tag, &r.trunks, &r.vlan_mode, &r.external_ids, &r.iface),
                    (&fresh.tag, &fresh.trunks, &fresh.vlan_mode, &fresh.external_ids, &fresh.iface)
                );
            }
            prop_assert_eq!(o.ports.len(), specs.len());
        }
    }
}
