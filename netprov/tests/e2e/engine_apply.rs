//! End-to-end tests of the netlink engine: real namespaces, real traffic.
//! Run as root: `cargo test -p netprov --test e2e engine_apply`.

use crate::engine_common::*;
use netprov::engine::DestroyTarget;
use netprov::model::*;
use testkit::HostNetns;

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
fn drift_is_detected_and_exactly_repaired() {
    let mut host = HostNetns::new();
    let e = engine(&host, None);
    let mut d = container(&mut host);
    d.interfaces.push(veth(
        "wan",
        &["70.0.0.2/31", "2001:db8::a/127"],
        &["70.0.0.1/31"],
    ));
    d.interfaces.push(veth("lan", &["10.1.0.2/24"], &[]));
    d.routes.push(route("0.0.0.0/0", Some("70.0.0.1"), None));
    d.sysctls.push(sysctl("net.ipv4.ip_forward", "1"));
    e.apply(&d).unwrap();
    assert!(e.check(&d).unwrap().is_empty());

    // A sysctl changed behind netprov's back.
    in_ct_ok(&d, "sysctl", &["-qw", "net.ipv4.ip_forward=0"]);
    let drift = e.check(&d).unwrap();
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(
        drift[0].to_string().contains("sysctl net.ipv4.ip_forward"),
        "{}",
        drift[0]
    );
    assert_eq!(e.apply(&d).unwrap().plan.steps.len(), 1);
    assert_eq!(
        in_ct_ok(&d, "cat", &["/proc/sys/net/ipv4/ip_forward"]).trim(),
        "1"
    );

    // A deleted address.
    in_ct_ok(&d, "ip", &["addr", "del", "10.1.0.2/24", "dev", "lan"]);
    let drift = e.check(&d).unwrap();
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(
        drift[0].to_string().contains("address 10.1.0.2/24 on lan"),
        "{}",
        drift[0]
    );
    let rep = e.apply(&d).unwrap();
    assert_eq!(rep.plan.steps.len(), 1, "{}", rep.plan);
    assert!(e.check(&d).unwrap().is_empty());

    // A changed route (still netprov's protocol, other gateway).
    in_ct_ok(
        &d,
        "ip",
        &[
            "route", "replace", "default", "via", "10.1.0.1", "proto", "77",
        ],
    );
    let drift = e.check(&d).unwrap();
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(drift[0].to_string().contains("changed"), "{}", drift[0]);
    let rep = e.apply(&d).unwrap();
    assert_eq!(rep.plan.steps.len(), 1, "{}", rep.plan);
    assert!(in_ct_ok(&d, "ip", &["route", "show", "default"]).contains("via 70.0.0.1"));

    // A deleted interface.
    in_ct_ok(&d, "ip", &["link", "del", "lan"]);
    let drift = e.check(&d).unwrap();
    assert!(
        drift.iter().any(|x| x.to_string().contains("missing")),
        "{drift:?}"
    );
    e.apply(&d).unwrap();
    assert!(e.check(&d).unwrap().is_empty(), "{:?}", e.check(&d));
    assert!(in_ct_ok(&d, "ip", &["addr", "show", "lan"]).contains("10.1.0.2/24"));
    e.destroy(&DestroyTarget::Props(d)).unwrap();
    assert!(host_links(&host).is_empty());
}

#[test]
fn foreign_links_are_never_taken_over_and_foreign_routes_survive() {
    let mut host = HostNetns::new();
    let e = engine(&host, None);
    let mut d = container(&mut host);
    d.interfaces
        .push(veth("lan", &["10.0.0.1/31"], &["10.0.0.0/31"]));
    let he = host_end(&d.interfaces[0]);
    host.ok(
        "ip",
        &[
            "link", "add", &he, "type", "veth", "peer", "name", "foreignp",
        ],
    );
    let err = e.apply(&d).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("not netprov's") && msg.contains(&he), "{msg}");
    assert!(host.ok("ip", &["link", "show", &he]).contains(&he));
    // destroy must not touch it either
    e.destroy(&DestroyTarget::Props(d.clone())).unwrap();
    assert!(host.ok("ip", &["link", "show", &he]).contains(&he));
    host.ok("ip", &["link", "del", &he]);

    e.apply(&d).unwrap();
    in_ct_ok(
        &d,
        "ip",
        &["route", "add", "10.9.9.0/24", "via", "10.0.0.0"],
    );
    let r = e.apply(&d).unwrap();
    assert!(r.plan.is_empty(), "{}", r.plan);
    assert!(in_ct_ok(&d, "ip", &["route"]).contains("10.9.9.0/24"));
    e.destroy(&DestroyTarget::Props(d)).unwrap();
}

#[test]
fn adopted_netns_survives_destroy_and_existing_links_move_back() {
    let mut host = HostNetns::new();
    let e = engine(&host, None);
    // Adopted netns.
    let ns = testkit::unique("adopt");
    testkit::ok("ip", &["netns", "add", &ns]);
    host.track(&ns);
    let mut d = container(&mut host);
    d.netns = NetnsSpec::Adopted {
        path: std::path::PathBuf::from("/run/netns").join(&ns),
    };
    d.interfaces
        .push(veth("lan", &["10.0.0.1/31"], &["10.0.0.0/31"]));
    e.apply(&d).unwrap();
    host.ok("ping", &["-c1", "-W3", "10.0.0.1"]);
    e.destroy(&DestroyTarget::Props(d.clone())).unwrap();
    assert!(netns_exists(&d));
    assert!(host_links(&host).is_empty());
    assert!(!in_ct_ok(&d, "ip", &["-o", "link"]).contains("lan"));

    // Existing link moved in (owned netns), configured, moved back on destroy.
    let mut c = container(&mut host);
    let ex = testkit::unique("ex");
    host.ok(
        "ip",
        &[
            "link",
            "add",
            &ex,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{ex}p"),
        ],
    );
    host.ok(
        "ip",
        &["addr", "add", "10.5.0.1/24", "dev", &format!("{ex}p")],
    );
    host.ok("ip", &["link", "set", &format!("{ex}p"), "up"]);
    c.interfaces.push(Interface {
        name: n(&ex),
        kind: InterfaceKind::Existing,
        addrs: nets(&["10.5.0.2/24"]),
        mtu: Some(1400),
        mac: None,
        macvlan: None,
    });
    e.apply(&c).unwrap();
    host.ok("ping", &["-c1", "-W3", "10.5.0.2"]);
    let r = e.apply(&c).unwrap();
    assert_eq!(r.messages, 0, "{}", r.plan);
    e.destroy(&DestroyTarget::Id(c.id.clone())).unwrap();
    assert!(host.ok("ip", &["link", "show", &ex]).contains(&ex));
    assert!(!netns_exists(&c));
}

#[test]
fn every_interrupted_apply_converges_and_destroys_cleanly() {
    let mut host = HostNetns::new();
    let br = testkit::unique("br");
    host.ok("ip", &["link", "add", &br, "type", "bridge"]);
    let full = |host: &mut HostNetns| {
        let mut d = container(host);
        let mut i = veth(
            "lan",
            &["10.0.0.1/31", "fd00::1/127"],
            &["10.0.0.0/31", "fd00::/127"],
        );
        i.macvlan = Some(Macvlan {
            name: n("mv-lan"),
            addrs: nets(&["192.168.7.2/24"]),
            vrid: None,
            mac: None,
        });
        d.interfaces.push(i);
        let mut j = veth("br0", &["10.3.0.2"], &[]);
        if let InterfaceKind::Veth(h) = &mut j.kind {
            h.bridge = Some(n(&br));
        }
        d.interfaces.push(j);
        d.routes.push(route("0.0.0.0/0", Some("10.0.0.0"), None));
        d.routes.push(route("::/0", Some("fe80::1"), Some("lan")));
        d.sysctls.push(sysctl("net.ipv4.ip_forward", "1"));
        d
    };
    let probe = full(&mut host);
    let len = engine(&host, None).plan(&probe).unwrap().steps.len();
    assert!(len > 10, "{len}");
    for k in 1..=len {
        let d = full(&mut host);
        let err = engine(&host, Some(k)).apply(&d);
        if k < len {
            assert!(err.is_err(), "fail_after={k}");
        }
        let e = engine(&host, None);
        let r = e
            .apply(&d)
            .unwrap_or_else(|e| panic!("converge after {k}: {e}"));
        assert!(
            r.plan.steps.len() <= len - k.min(len) + 3,
            "{k}: {}",
            r.plan
        );
        assert!(
            e.check(&d).unwrap().is_empty(),
            "after {k}: {:?}",
            e.check(&d)
        );
        // Interrupt again and destroy by id only.
        let d2 = full(&mut host);
        let _ = engine(&host, Some(k)).apply(&d2);
        e.destroy(&DestroyTarget::Id(d2.id.clone())).unwrap();
        e.destroy(&DestroyTarget::Props(d.clone())).unwrap();
        assert_eq!(host_links(&host), vec![br.clone()], "after {k}");
        assert_eq!(host_netprov_routes(&host), "");
        assert!(!netns_exists(&d) && !netns_exists(&d2));
    }
}

#[test]
fn host_work_per_container_does_not_grow_with_other_containers() {
    let mut host = HostNetns::new();
    let e = engine(&host, None);
    let mut a = container(&mut host);
    a.interfaces
        .push(veth("lan", &["10.0.0.1/31"], &["10.0.0.0/31"]));
    e.apply(&a).unwrap();
    let cost = |e: &netprov::engine::Engine| {
        let before = e.host_requests();
        assert!(e.plan(&a).unwrap().is_empty());
        e.host_requests() - before
    };
    let alone = cost(&e);
    let others: Vec<_> = (0..8)
        .map(|k| {
            let mut d = container(&mut host);
            let ip = format!("10.2.{k}.1/31");
            let hip = format!("10.2.{k}.0/31");
            d.interfaces.push(veth("lan", &[&ip], &[&hip]));
            d
        })
        .collect();
    for r in e.apply_many(&others) {
        r.unwrap();
    }
    assert_eq!(host_links(&host).len(), 9);
    assert_eq!(cost(&e), alone);
    for d in others.iter().chain([&a]) {
        e.destroy(&DestroyTarget::Id(d.id.clone())).unwrap();
    }
    assert!(host_links(&host).is_empty());
}

#[test]
fn a_failing_step_names_operation_object_netns_and_errno_and_apply_converges_after() {
    let mut host = HostNetns::new();
    let e = engine(&host, None);
    let mut d = container(&mut host);
    d.interfaces
        .push(veth("lan", &["10.0.0.1/31"], &["10.0.0.0/31"]));
    d.routes.push(route("0.0.0.0/0", Some("192.0.2.1"), None));
    let err = e.apply(&d).unwrap_err();
    assert_eq!(err.errno, Some(libc::ENETUNREACH), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "replace route default via 192.0.2.1 in netns {}: Network is unreachable",
            d.id
        )
    );
    // Fix the input: the next apply converges from where the failed one stopped.
    d.routes[0] = route("0.0.0.0/0", Some("10.0.0.0"), None);
    let r = e.apply(&d).unwrap();
    assert_eq!(r.plan.steps.len(), 1, "{}", r.plan);
    assert!(e.check(&d).unwrap().is_empty());
    e.destroy(&DestroyTarget::Props(d)).unwrap();
}

#[test]
fn links_born_in_the_netprov_group_but_not_yet_aliased_are_adopted_and_destroyed() {
    // The state a SIGKILL between "create veth" and "set alias" leaves behind.
    let mut host = HostNetns::new();
    let mut d = container(&mut host);
    d.interfaces
        .push(veth("lan", &["10.0.0.1/31"], &["10.0.0.0/31"]));
    let he = host_end(&d.interfaces[0]);
    let _ = engine(&host, Some(1)).apply(&d);
    assert!(netns_exists(&d));
    host.ok(
        "ip",
        &[
            "link",
            "add",
            &he,
            "group",
            "0x4e50",
            "type",
            "veth",
            "peer",
            "name",
            "lan",
            "group",
            "0x4e50",
            "netns",
            &netns_path(&d),
        ],
    );
    let e = engine(&host, None);
    let p = e.plan(&d).unwrap();
    let text = p.to_string();
    assert!(
        text.contains(&format!(
            "set alias netprov:{}:lan on {he} in host netns",
            d.id
        )),
        "{text}"
    );
    assert!(!text.contains("create veth"), "{text}");
    e.apply(&d).unwrap();
    assert!(e.check(&d).unwrap().is_empty());
    host.ok("ping", &["-c1", "-W3", "10.0.0.1"]);

    // Unaliased again, then destroy by id only.
    host.ok("ip", &["link", "set", &he, "alias", ""]);
    e.destroy(&DestroyTarget::Id(d.id.clone())).unwrap();
    assert!(host_links(&host).is_empty(), "{:?}", host_links(&host));
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
