//! OVS ports with VLAN tags against a real, private Open vSwitch (userspace datapath)
//! running in a test-made host netns, with "container" netns made by the test.
//!
//! The netlink engine (which moves internal devices into containers) is not part of
//! these tests: moving and addressing devices is done here with `ip` as scaffolding.

mod common;
#[path = "common/ovs.rs"]
mod ovs;

use std::collections::BTreeMap;

use netprov::model::{
    ContainerId, IfName, Interface, InterfaceKind, OvsPort, OvsStyle, VlanMode, VlanTag,
};
use netprov::ovsdb::port::{self, InternalDevice};
use netprov::ovsdb::{self, Client, Endpoint, OvsChange, PortSpec};
use ovs::Ovs;

fn client(o: &Ovs) -> Client {
    Client::connect(&Endpoint::parse(&o.endpoint()).unwrap()).unwrap()
}

fn id(s: &str) -> ContainerId {
    ContainerId::new(s).unwrap()
}

/// The spec netprov derives for interface `iface` of container `owner`.
fn spec(owner: &str, iface: &str, bridge: &str, vlan: i64, style: OvsStyle) -> PortSpec {
    let ovs = OvsPort {
        bridge: IfName::new(bridge).unwrap(),
        vlan: VlanTag::new(vlan).unwrap(),
        trunks: vec![],
        vlan_mode: None,
        style,
        external_ids: BTreeMap::from([("iface-id".to_owned(), format!("{owner}-{iface}"))]),
        ovn: None,
    };
    let i = Interface {
        name: IfName::new(iface).unwrap(),
        kind: InterfaceKind::Ovs(ovs.clone()),
        addrs: vec![],
        mtu: None,
        mac: None,
        macvlan: None,
    };
    let all = PortSpec::all(&id(owner), std::slice::from_ref(&i));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0], PortSpec::new(&id(owner), &i, &ovs));
    all.into_iter().next().unwrap()
}

fn internal(owner: &str, iface: &str, vlan: i64) -> PortSpec {
    spec(owner, iface, "br0", vlan, OvsStyle::Internal)
}

/// What the engine will do: move the internal device from the host into the
/// container, then address it.
fn attach(o: &Ovs, s: &PortSpec, ns: &str, addr: &str) {
    o.host
        .ok("ip", &["link", "set", s.port.as_str(), "netns", ns]);
    for args in [
        vec!["link", "set", s.port.as_str(), "name", s.iface.as_str()],
        vec!["addr", "add", addr, "dev", s.iface.as_str()],
        vec!["link", "set", s.iface.as_str(), "up"],
    ] {
        let out = Ovs::in_ns(ns, "ip", &args);
        assert!(
            out.status.success(),
            "ip {args:?} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn host_has_link(o: &Ovs, name: &str) -> bool {
    o.host.run("ip", &["link", "show", name]).status.success()
}

fn ns_has_link(ns: &str, name: &str) -> bool {
    Ovs::in_ns(ns, "ip", &["link", "show", name])
        .status
        .success()
}

/// Where `s`'s device is, looked up from the host netns as the engine will.
fn locate(o: &Ovs, s: &PortSpec, ns: &str) -> InternalDevice {
    let (s, p) = (s.clone(), Ovs::netns_path(ns));
    netprov::kernel::netns::in_netns(&o.host.path(), move || port::locate_internal_device(&s, &p))
        .unwrap()
        .unwrap()
}

fn port_uuid(o: &Ovs, port: &str) -> String {
    o.vsctl(&["get", "Port", port, "_uuid"])
}

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
        o.host.ok(
            "ip",
            &[
                "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
        );
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
    o.host.ok(
        "ip",
        &[
            "link", "add", "vh-v2", "type", "veth", "peer", "name", "eth1", "netns", &n2,
        ],
    );
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

#[test]
fn vanished_internal_device_is_repaired() {
    let mut o = Ovs::start();
    o.add_bridge("br0");
    let mut c = client(&o);
    let (n1, n2) = (o.container(), o.container());
    let a = internal("r1", "lan", 10);
    let b = internal("r2", "peer", 10);
    for (s, ns, addr) in [(&a, &n1, "10.52.0.1/24"), (&b, &n2, "10.52.0.2/24")] {
        ovsdb::converge(&mut c, &s.owner, std::slice::from_ref(s)).unwrap();
        attach(&o, s, ns, addr);
    }
    assert!(Ovs::pings(&n1, "10.52.0.2"));
    assert_eq!(locate(&o, &a, &n1), InternalDevice::InContainer);

    // The device dies (container netns torn down, someone ran `ip link del`...).
    assert!(Ovs::in_ns(&n1, "ip", &["link", "del", "lan"])
        .status
        .success());
    assert_eq!(locate(&o, &a, &n1), InternalDevice::Missing);
    let mut observed = ovsdb::observe(&mut c, &a.owner, std::slice::from_ref(&a)).unwrap();
    observed.mark_device_missing("lan", "no device lan in the container");
    let changes = ovsdb::plan(&a.owner, std::slice::from_ref(&a), &observed).unwrap();
    let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["re-create OVS port lan on bridge br0: no device lan in the container"]
    );
    ovsdb::apply(&mut c, &a.owner, &changes).unwrap();
    assert!(
        host_has_link(&o, "lan"),
        "repair did not bring the device back"
    );
    attach(&o, &a, &n1, "10.52.0.1/24");
    assert!(
        Ovs::pings(&n1, "10.52.0.2"),
        "repaired port passes no traffic"
    );
    assert_eq!(o.vsctl(&["get", "Port", "lan", "tag"]), "10");
}

#[test]
fn ovsdb_server_stopped_is_a_clean_error() {
    let mut o = Ovs::start();
    o.add_bridge("br0");
    o.stop_ovsdb();
    let e = Client::connect(&Endpoint::parse(&o.endpoint()).unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "OVS database at {}: connection refused — is ovsdb-server running?",
            o.endpoint()
        )
    );
    assert_eq!(e.errno, Some(libc::ECONNREFUSED));
    // Nothing was made in the host netns.
    let links = o.host.ok("ip", &["-o", "link", "show"]);
    assert!(!links.contains("lan"), "{links}");
}

#[test]
fn sixteen_concurrent_applies_on_one_bridge() {
    let o = Ovs::start();
    o.add_bridge("br0");
    let endpoint = Endpoint::parse(&o.endpoint()).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let endpoint = endpoint.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&endpoint).unwrap();
                let s = internal(&format!("par{i}"), &format!("par{i}"), 100 + i);
                ovsdb::converge(&mut c, &s.owner, std::slice::from_ref(&s))
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let done = t
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("apply {i}: {e}"));
        assert_eq!(done.len(), 1, "{done:?}");
    }
    let ports = o.vsctl(&["list-ports", "br0"]);
    assert_eq!(ports.lines().count(), 16, "{ports}");
    for i in 0..16 {
        assert_eq!(
            o.vsctl(&["get", "Port", &format!("par{i}"), "tag"]),
            (100 + i).to_string()
        );
        assert!(host_has_link(&o, &format!("par{i}")));
    }
    // Concurrent destroys too.
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let endpoint = endpoint.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&endpoint).unwrap();
                ovsdb::destroy(&mut c, &id(&format!("par{i}")))
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap().len(), 1);
    }
    assert_eq!(o.vsctl(&["list-ports", "br0"]), "");
}

#[test]
fn destroy_removes_only_own_ports_and_foreign_port_is_an_error() {
    let mut o = Ovs::start();
    o.add_bridge("br0");
    let mut c = client(&o);
    let ns = o.container();
    // A port someone else made, with the name netprov wants.
    o.vsctl(&[
        "add-port",
        "br0",
        "lan",
        "tag=5",
        "--",
        "set",
        "Interface",
        "lan",
        "type=internal",
    ]);
    let want = internal("web", "lan", 10);
    let e = ovsdb::converge(&mut c, &want.owner, std::slice::from_ref(&want)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "add OVS port lan to bridge br0: OVS port lan on br0 exists and is not netprov's (no external_ids:netprov-id=web)"
    );
    assert_eq!(
        o.vsctl(&["get", "Port", "lan", "tag"]),
        "5",
        "foreign port was changed"
    );

    // A missing bridge is named.
    let nobr = spec("web", "x0", "br9", 1, OvsStyle::Internal);
    let e = ovsdb::converge(&mut c, &nobr.owner, std::slice::from_ref(&nobr)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "add OVS port x0 to bridge br9: OVS bridge br9 does not exist (netprov does not create bridges)"
    );

    // web's own ports; destroy removes exactly those.
    let mine = [internal("web", "web0", 10), internal("web", "web1", 0)];
    let done = ovsdb::converge(&mut c, &id("web"), &mine).unwrap();
    assert_eq!(
        done[1].to_string(),
        "add OVS port web1 to bridge br0 (internal, untagged)"
    );
    // VLAN 0 is an access port on the untagged VLAN, not an empty tag (a trunk of all).
    assert_eq!(o.vsctl(&["get", "Port", "web1", "tag"]), "0");
    attach(&o, &mine[0], &ns, "10.53.0.1/24");
    // Dropping an interface from the props removes its port on the next apply.
    let done = ovsdb::converge(&mut c, &id("web"), &mine[..1]).unwrap();
    let shown: Vec<String> = done.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["remove OVS port web1"]);
    assert!(!host_has_link(&o, "web1"));
    let other = internal("db", "db0", 10);
    ovsdb::converge(&mut c, &other.owner, std::slice::from_ref(&other)).unwrap();

    let removed = ovsdb::destroy(&mut c, &id("web")).unwrap();
    assert_eq!(removed, ["web0"]);
    for table in ["Port", "Interface"] {
        assert_eq!(
            o.vsctl(&[
                "--columns=name",
                "find",
                table,
                "external_ids:netprov-id=web"
            ]),
            ""
        );
        assert_eq!(o.vsctl(&["--columns=name", "find", table, "name=web0"]), "");
    }
    assert!(!host_has_link(&o, "web0"));
    assert!(
        !ns_has_link(&ns, "web0"),
        "the moved device survived destroy"
    );
    // The foreign port and the other container's port are untouched.
    assert_eq!(o.vsctl(&["get", "Port", "lan", "tag"]), "5");
    assert_eq!(
        o.vsctl(&["get", "Port", "db0", "external_ids:netprov-id"]),
        "db"
    );
    // Destroying again is success and mutates nothing.
    let before = c.mutating_transactions();
    assert!(ovsdb::destroy(&mut c, &id("web")).unwrap().is_empty());
    assert_eq!(c.mutating_transactions(), before);
}

#[test]
fn vswitchd_restart_leaves_a_dead_device_in_the_container() {
    let mut o = Ovs::start();
    o.add_bridge("br0");
    let mut c = client(&o);
    let (n1, n2) = (o.container(), o.container());
    let a = internal("rs1", "lan", 10);
    let b = internal("rs2", "peer", 10);
    for (s, ns, addr) in [(&a, &n1, "10.54.0.1/24"), (&b, &n2, "10.54.0.2/24")] {
        ovsdb::converge(&mut c, &s.owner, std::slice::from_ref(s)).unwrap();
        attach(&o, s, ns, addr);
    }
    assert!(Ovs::pings(&n1, "10.54.0.2"));
    o.restart_vswitchd();
    // The userspace datapath's taps are persistent: the old one stays in the container,
    // cut off, and ovs-vswitchd made a fresh one in the host netns.
    assert_eq!(locate(&o, &a, &n1), InternalDevice::Both);
    assert!(!Ovs::pings(&n1, "10.54.0.2"));
    // OVSDB needs nothing; the engine swaps the devices (scaffolding here).
    let mut c = client(&o);
    assert!(ovsdb::converge(&mut c, &a.owner, std::slice::from_ref(&a))
        .unwrap()
        .is_empty());
    for (s, ns, addr) in [(&a, &n1, "10.54.0.1/24"), (&b, &n2, "10.54.0.2/24")] {
        assert!(Ovs::in_ns(ns, "ip", &["link", "del", s.iface.as_str()])
            .status
            .success());
        attach(&o, s, ns, addr);
    }
    assert_eq!(locate(&o, &a, &n1), InternalDevice::InContainer);
    assert!(
        Ovs::pings(&n1, "10.54.0.2"),
        "no traffic after swapping in the new devices"
    );
}
