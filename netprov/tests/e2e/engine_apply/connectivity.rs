//! Veths, prefix-less addresses, macvlans and OVS internal ports, judged by ping.

use super::*;

#[test]
fn veth_ping_v4_v6_idempotent_then_destroy_leaves_nothing() {
    let mut host = HostNetns::new();
    let e = engine(&host, None);
    let mut d = container(&mut host);
    d.interfaces.push(veth(
        "lan",
        &["10.0.0.1/31", "fd00::1/127"],
        &["10.0.0.0/31", "fd00::/127"],
    ));
    d.sysctls.push(sysctl("net.ipv4.ip_forward", "1"));
    let he = host_end(&d.interfaces[0]);

    let plan = e.plan(&d).unwrap();
    let text = plan.to_string();
    assert!(
        text.contains(&format!("create veth {he} (host) ↔ lan (netns {})", d.id)),
        "{text}"
    );
    let rep = e.apply(&d).unwrap();
    assert!(rep.messages > 0);
    // The handle is a real named netns for iproute2 too.
    assert!(testkit::ok("ip", &["netns", "list"]).contains(d.id.as_str()));
    testkit::ok("ip", &["-n", d.id.as_str(), "link", "show", "lan"]);

    host.ok("ping", &["-c1", "-W3", "10.0.0.1"]);
    host.ok("ping", &["-c1", "-W3", "fd00::1"]);
    in_ct_ok(&d, "ping", &["-c1", "-W3", "fd00::"]);
    assert_eq!(
        in_ct_ok(&d, "cat", &["/proc/sys/net/ipv4/ip_forward"]).trim(),
        "1"
    );
    let alias = host.ok("ip", &["-d", "link", "show", &he]);
    assert!(
        alias.contains(&format!("alias netprov:{}:lan", d.id)),
        "{alias}"
    );

    // Second apply: nothing to do, nothing sent.
    let again = e.apply(&d).unwrap();
    assert!(again.plan.is_empty(), "{}", again.plan);
    assert_eq!(again.messages, 0);
    assert!(e.check(&d).unwrap().is_empty());

    let rep = e.destroy(&DestroyTarget::Props(d.clone())).unwrap();
    assert!(rep.netns_removed);
    assert!(host_links(&host).is_empty(), "{:?}", host_links(&host));
    assert_eq!(host_netprov_routes(&host), "");
    assert!(!host.ok("ip", &["addr"]).contains("10.0.0.0"));
    assert!(!netns_exists(&d));
    // Destroy twice is fine.
    e.destroy(&DestroyTarget::Props(d)).unwrap();
}

#[test]
fn containers_reach_each_other_through_the_host_with_prefixless_addresses() {
    let mut host = HostNetns::new();
    host.ok("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    let e = engine(&host, None);
    let mut a = container(&mut host);
    a.interfaces
        .push(veth("eth0", &["10.0.2.2"], &["10.0.1.1"]));
    a.routes.push(route("0.0.0.0/0", Some("10.0.1.1"), None));
    let mut b = container(&mut host);
    b.interfaces
        .push(veth("eth0", &["10.0.3.2/32"], &["10.0.1.1/32"]));
    b.routes.push(route("0.0.0.0/0", Some("10.0.1.1"), None));
    let reps = e.apply_many(&[a.clone(), b.clone()]);
    for r in reps {
        r.unwrap();
    }
    in_ct_ok(&a, "ping", &["-c1", "-W3", "10.0.3.2"]);
    in_ct_ok(&b, "ping", &["-c1", "-W3", "10.0.2.2"]);
    for d in [&a, &b] {
        let r = e.apply(d).unwrap();
        assert_eq!(r.messages, 0, "{}", r.plan);
    }
    e.destroy(&DestroyTarget::Id(a.id.clone())).unwrap();
    e.destroy(&DestroyTarget::Id(b.id.clone())).unwrap();
    assert!(host_links(&host).is_empty(), "{:?}", host_links(&host));
    assert_eq!(host_netprov_routes(&host), "");
}

#[test]
fn macvlans_on_bridged_veths_reach_each_other() {
    let mut host = HostNetns::new();
    let br = testkit::unique("br");
    host.ok("ip", &["link", "add", &br, "type", "bridge"]);
    host.ok("ip", &["link", "set", &br, "up"]);
    let e = engine(&host, None);
    let mut ds = Vec::new();
    for (k, ip) in ["192.168.5.10/24", "192.168.5.11/24"].iter().enumerate() {
        let mut d = container(&mut host);
        let mut i = veth("dmz", &[], &[]);
        if let InterfaceKind::Veth(h) = &mut i.kind {
            h.bridge = Some(n(&br));
        }
        i.macvlan = Some(Macvlan {
            name: n("mv-dmz-12"),
            addrs: nets(&[ip]),
            vrid: Some(12 + k as u8),
            mac: Some(MacAddr([0, 0, 0x5e, 0, 1, 12 + k as u8])),
        });
        d.interfaces.push(i);
        ds.push(d);
    }
    for d in &ds {
        e.apply(d).unwrap();
    }
    let show = in_ct_ok(&ds[0], "ip", &["-d", "link", "show", "mv-dmz-12"]);
    assert!(show.contains("00:00:5e:00:01:0c"), "{show}");
    assert!(show.contains("macvlan mode bridge"), "{show}");
    assert!(show.contains("addrgenmode random"), "{show}");
    in_ct_ok(&ds[0], "ping", &["-c1", "-W3", "192.168.5.11"]);
    for d in &ds {
        assert_eq!(e.apply(d).unwrap().messages, 0);
    }
    for d in &ds {
        e.destroy(&DestroyTarget::Props(d.clone())).unwrap();
    }
    assert_eq!(host_links(&host), vec![br]);
}

#[test]
fn ovs_internal_port_device_is_moved_in_marked_and_removed() {
    // A real (private, userspace-datapath) OVS in the simulated host netns.
    let mut o = testkit::ovs::Ovs::start();
    o.add_bridge("br-int");
    let e = netprov::engine::Engine::new(netprov::engine::Options {
        host_netns: Some(o.host.path()),
        fail_after: None,
        ovsdb: Some(o.sock()),
        ..Default::default()
    })
    .unwrap();
    let mut d = container(&mut o.host);
    let port = testkit::unique("op");
    // The host's side of the switch: another internal port, left in the host netns.
    let hp = testkit::unique("hp");
    o.vsctl(&[
        "add-port",
        "br-int",
        &hp,
        "--",
        "set",
        "Interface",
        &hp,
        "type=internal",
    ]);
    o.host.ok("ip", &["addr", "add", "10.6.0.1/24", "dev", &hp]);
    o.host.ok("ip", &["link", "set", &hp, "up"]);
    d.interfaces.push(Interface {
        name: n(&port),
        kind: InterfaceKind::Ovs(OvsPort {
            bridge: n("br-int"),
            vlan: VlanTag::new(0).unwrap(),
            trunks: vec![],
            vlan_mode: None,
            style: OvsStyle::Internal,
            external_ids: Default::default(),
            ovn: None,
        }),
        addrs: nets(&["10.6.0.2/24"]),
        mtu: None,
        mac: None,
        macvlan: None,
    });
    let r = e.apply(&d).unwrap();
    let text = r.plan.to_string();
    assert!(
        text.contains(&format!("add OVS port {port} to bridge br-int (internal")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "move OVS internal port {port} into netns {}",
            d.id
        )),
        "{text}"
    );
    assert!(r.ovsdb_transactions >= 1);
    let show = in_ct_ok(&d, "ip", &["-d", "link", "show", &port]);
    assert!(show.contains(&format!("alias netprov:{}", d.id)), "{show}");
    o.host.ok("ping", &["-c1", "-W3", "10.6.0.2"]);
    let again = e.apply(&d).unwrap();
    assert_eq!((again.messages, again.ovsdb_transactions), (0, 0));
    let rep = e.destroy(&DestroyTarget::Props(d.clone())).unwrap();
    assert_eq!(rep.ovs_ports_removed, vec![port.clone()]);
    assert_eq!(o.vsctl(&["list-ports", "br-int"]), hp);
    assert!(!host_links(&o.host).contains(&port));
}
