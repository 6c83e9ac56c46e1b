//! Drift repaired exactly; foreign links and routes never taken; adopted netns and
//! existing links given back; half-made links adopted by their group.

use super::*;

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
    host.add_veth(&he, "foreignp");
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
    host.add_veth(&ex, &format!("{ex}p"));
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
