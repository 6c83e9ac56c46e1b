//! VLAN tags on internal and veth-style ports, judged by traffic.

use super::*;

// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn vlans_isolate_retag_in_place_and_reapply_is_silent() {
    let mut o = Ovs::start();
    o.add_bridge("br0");
    let mut c = client(&o);
    let (n1, n2, n3) = (o.container(), o.container(), o.container());
    let a = internal("web1", "lan1", 10);
    let b = internal("web2", "lan2", 10);
    let x = internal("web3", "lan3", 20);
    for (s, ns, addr) in [
        (&a, &n1, "10.50.0.1/24"),
        (&b, &n2, "10.50.0.2/24"),
        (&x, &n3, "10.50.0.3/24"),
    ] {
        let done = ovsdb::converge(&mut c, &s.owner, std::slice::from_ref(s)).unwrap();
        assert_eq!(done.len(), 1);
        assert!(matches!(done[0], OvsChange::Create { .. }));
        // cur_cfg was awaited: the device is already there to be moved.
        assert!(
            host_has_link(&o, s.port.as_str()),
            "{} not created in host netns",
            s.port
        );
        attach(&o, s, ns, addr);
    }
    assert_eq!(o.vsctl(&["get", "Port", "lan1", "tag"]), "10");
    assert_eq!(o.vsctl(&["get", "Interface", "lan1", "type"]), "internal");
    assert_eq!(
        o.vsctl(&["get", "Interface", "lan1", "external_ids:netprov-id"]),
        "web1"
    );
    assert_eq!(
        o.vsctl(&["get", "Interface", "lan1", "external_ids:iface-id"]),
        "web1-lan1"
    );
    assert_eq!(
        o.vsctl(&["get", "Port", "lan1", "external_ids:netprov-iface"]),
        "lan1"
    );

    assert!(
        Ovs::pings(&n1, "10.50.0.2"),
        "VLAN 10 ports do not reach each other"
    );
    assert!(!Ovs::pings(&n3, "10.50.0.1"), "VLAN 20 reaches VLAN 10");

    // Re-apply of unchanged specs: empty plan, zero mutating transactions.
    let before = c.mutating_transactions();
    for s in [&a, &b, &x] {
        let observed = ovsdb::observe(&mut c, &s.owner, std::slice::from_ref(s)).unwrap();
        assert!(ovsdb::plan(&s.owner, std::slice::from_ref(s), &observed)
            .unwrap()
            .is_empty());
        assert!(ovsdb::converge(&mut c, &s.owner, std::slice::from_ref(s))
            .unwrap()
            .is_empty());
    }
    assert_eq!(c.mutating_transactions(), before, "re-apply mutated OVSDB");

    // Re-tag 20 → 10: an in-place update of the same Port row.
    let uuid = port_uuid(&o, "lan3");
    let x10 = internal("web3", "lan3", 10);
    let observed = ovsdb::observe(&mut c, &x10.owner, std::slice::from_ref(&x10)).unwrap();
    let changes = ovsdb::plan(&x10.owner, std::slice::from_ref(&x10), &observed).unwrap();
    let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["set VLAN of OVS port lan3: 20 → 10"]);
    ovsdb::apply(&mut c, &x10.owner, &changes).unwrap();
    assert_eq!(port_uuid(&o, "lan3"), uuid, "re-tag replaced the port");
    assert_eq!(o.vsctl(&["get", "Port", "lan3", "tag"]), "10");
    assert!(
        Ovs::pings(&n3, "10.50.0.1"),
        "re-tagged port does not reach VLAN 10"
    );
    assert_eq!(c.mutating_transactions(), before + 1);

    // Trunks, vlan_mode and passed-through external_ids change in place as well; with
    // native-untagged the container's untagged frames still land on VLAN 10.
    let mut xt = x10.clone();
    xt.trunks = vec![VlanTag::new(10).unwrap(), VlanTag::new(11).unwrap()];
    xt.vlan_mode = Some(VlanMode::NativeUntagged);
    xt.external_ids.insert("iface-id".into(), "lsp-web3".into());
    let done = ovsdb::converge(&mut c, &xt.owner, std::slice::from_ref(&xt)).unwrap();
    let shown: Vec<String> = done.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown[..2],
        [
            "set trunks of OVS port lan3: [] → [10, 11]",
            "set vlan_mode of OVS port lan3: default → native-untagged"
        ]
    );
    assert!(
        shown[2].starts_with("set external_ids of OVS interface lan3: "),
        "{shown:?}"
    );
    assert_eq!(
        port_uuid(&o, "lan3"),
        uuid,
        "trunk change replaced the port"
    );
    assert_eq!(o.vsctl(&["get", "Port", "lan3", "trunks"]), "[10, 11]");
    assert_eq!(
        o.vsctl(&["get", "Interface", "lan3", "external_ids:iface-id"]),
        "lsp-web3"
    );
    assert!(
        Ovs::pings(&n3, "10.50.0.1"),
        "native-untagged port does not reach VLAN 10"
    );
    assert!(
        ovsdb::converge(&mut c, &xt.owner, std::slice::from_ref(&xt))
            .unwrap()
            .is_empty()
    );
}

// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn veth_style_passes_tagged_traffic() {
    let mut o = Ovs::start();
    o.add_bridge("br0");
    let mut c = client(&o);
    let (n1, n2, n3) = (o.container(), o.container(), o.container());
    // Container 1: internal port on VLAN 30.
    let a = internal("v1", "eth0", 30);
    ovsdb::converge(&mut c, &a.owner, std::slice::from_ref(&a)).unwrap();
    attach(&o, &a, &n1, "10.51.0.1/24");
    // Containers 2 (VLAN 30) and 3 (VLAN 31): veth pairs, host end on the bridge.
    for (ns, host_end, vlan, addr) in [
        (&n2, "vh-v2", 30, "10.51.0.2/24"),
        (&n3, "vh-v3", 31, "10.51.0.3/24"),
    ] {
        o.host.add_veth_into(host_end, "eth0", ns);
        o.host.ok("ip", &["link", "set", host_end, "up"]);
        for args in [
            vec!["addr", "add", addr, "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
        ] {
            assert!(Ovs::in_ns(ns, "ip", &args).status.success());
        }
        let owner = if vlan == 30 { "v2" } else { "v3" };
        let s = spec(
            owner,
            "eth0",
            "br0",
            vlan,
            OvsStyle::Veth {
                host: IfName::new(host_end).unwrap(),
            },
        );
        assert_eq!(s.port.as_str(), host_end);
        let done = ovsdb::converge(&mut c, &s.owner, std::slice::from_ref(&s)).unwrap();
        assert_eq!(
            done[0].to_string(),
            format!("add OVS port {host_end} to bridge br0 (veth host end, VLAN {vlan})")
        );
        assert_eq!(o.vsctl(&["get", "Interface", host_end, "type"]), r#""""#);
        // Re-apply: ovs-vswitchd sees the veth end, nothing to repair.
        assert!(ovsdb::converge(&mut c, &s.owner, std::slice::from_ref(&s))
            .unwrap()
            .is_empty());
    }
    assert!(
        Ovs::pings(&n2, "10.51.0.1"),
        "veth port on VLAN 30 does not reach internal port on VLAN 30"
    );
    assert!(
        !Ovs::pings(&n3, "10.51.0.1"),
        "veth port on VLAN 31 reaches VLAN 30"
    );

    // The veth host end vanishes (ifindex 0 in OVSDB): observe reports it, and once the
    // veth exists again the repair (remove, then re-add) makes traffic flow again.
    o.host.ok("ip", &["link", "del", "vh-v2"]);
    let s = spec(
        "v2",
        "eth0",
        "br0",
        30,
        OvsStyle::Veth {
            host: IfName::new("vh-v2").unwrap(),
        },
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let changes = loop {
        let observed = ovsdb::observe(&mut c, &s.owner, std::slice::from_ref(&s)).unwrap();
        let changes = ovsdb::plan(&s.owner, std::slice::from_ref(&s), &observed).unwrap();
        if !changes.is_empty() || std::time::Instant::now() > deadline {
            break changes;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        matches!(changes.as_slice(), [OvsChange::Recreate { .. }]),
        "{changes:?}"
    );
    o.host.add_veth_into("vh-v2", "eth1", &n2);
    o.host.ok("ip", &["link", "set", "vh-v2", "up"]);
    for args in [
        vec!["addr", "add", "10.51.0.2/24", "dev", "eth1"],
        vec!["link", "set", "eth1", "up"],
    ] {
        assert!(Ovs::in_ns(&n2, "ip", &args).status.success());
    }
    ovsdb::apply(&mut c, &s.owner, &changes).unwrap();
    assert!(
        Ovs::pings(&n2, "10.51.0.1"),
        "repaired veth port passes no traffic"
    );
}
