//! Interrupted applies converge, host work does not grow with other containers, a
//! failing step names what failed.

use super::*;

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
