//! `reconcile`: what a firewall reload or an OVSDB loss took away, repaired in place.

use super::*;

/// What outside disruptions take away, `reconcile` puts back in one run, without
/// restarting anything: the host tables after `nft flush ruleset` (what restarting
/// nftables.service or reloading firewalld does) — port forward and masquerade work
/// again — and an OVS port whose row was deleted (a wiped OVSDB) — traffic between two
/// containers on the VLAN flows again — and an ovs-vswitchd restart (new devices). A
/// stopped container (props, no netns) is skipped and not created; an invalid props file
/// is reported and does not stop the others (exit 2); a last run finds all in sync.
// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn reconcile_repairs_flushed_host_tables_and_lost_ovs_ports() {
    let mut t = T::new();
    let (a, b, stopped) = (t.id(), t.id(), t.id());
    let port = |id: &str, n: u8| {
        json!({ format!("l{id}"): { "ip4": format!("10.79.0.{n}/24"),
                                    "ovs": { "bridge": "br0", "vlan": 9, "style": "internal" } } })
    };
    let pa = T::write(
        &t.props,
        &a,
        veth(
            &a,
            6,
            json!({ "interfaces": port(&a, 1), "masquerade": true,
                    "forwards": [ { "proto": "tcp", "hostPort": 80, "port": 8080, "to": "70.6.0.2" } ] }),
        ),
    );
    let pb = T::write(
        &t.props,
        &b,
        veth(&b, 7, json!({ "interfaces": port(&b, 2) })),
    );
    T::write(&t.props, &stopped, veth(&stopped, 8, json!({})));
    t.ok(&["apply", &pa, &pb]);
    let _nc = Bg(in_ns(&a, "nc", &["-lk", "8080"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap());
    let forward = || {
        let mut c = t.o.host.cmd("nc", &["-z", "-w", "1", "70.6.0.1", "80"]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    assert!(eventually(forward()), "port forward before the flush");
    assert!(pings(&a, "10.79.0.2"));

    // The disruptions.
    t.o.host.ok("nft", &["flush", "ruleset"]);
    t.o.vsctl(&["del-port", "br0", &format!("l{b}")]);
    assert!(
        !forward().status().unwrap().success(),
        "forward survived the flush"
    );

    let out = t.netprov(&["--json", "reconcile"]);
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let of = |id: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {v}"))
            .clone()
    };
    assert_eq!(of(&a)["outcome"], "applied", "{v}");
    assert!(of(&a)["changes"].as_u64().unwrap() >= 1, "{v}");
    assert!(of(&a)["steps"].to_string().contains("host rules"), "{v}");
    assert_eq!(of(&b)["outcome"], "applied", "{v}");
    assert!(
        of(&b)["steps"].to_string().contains(&format!("l{b}")),
        "{v}"
    );
    assert_eq!(of(&stopped)["outcome"], "skipped", "{v}");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!Path::new("/run/netns").join(&stopped).exists());
    assert!(!t.host_has(&["ip", "link", "show", "dev", &format!("w{stopped}")]));

    assert!(eventually(forward()), "port forward after reconcile");
    // From b: its new device's ARP request also updates a's neighbour entry for it
    // (a still has the old device's MAC cached).
    assert!(pings(&b, "10.79.0.1"), "OVS VLAN traffic after reconcile");
    assert!(pings(&a, "70.6.0.1"));

    // ovs-vswitchd restarts (userspace datapath: it makes new devices in the host, the
    // containers keep dead ones): one reconcile moves the new ones in.
    t.o.restart_vswitchd();
    let out = t.ok(&["reconcile"]);
    let s = String::from_utf8_lossy(&out.stdout);
    for id in [&a, &b] {
        assert!(s.contains(&format!("{id}: repaired")), "{}", text(&out));
    }
    assert!(
        s.contains("delete dead OVS internal device"),
        "{}",
        text(&out)
    );
    assert!(
        pings(&a, "10.79.0.2"),
        "OVS VLAN traffic after the vswitchd restart"
    );

    // An invalid file: reported (exit 2), the others still reconciled (in sync now).
    std::fs::write(
        t.props.join("zz-bad.json"),
        r#"{"id":"zz-bad","network":{"interfaces":{"x":{"ip4":"nope"}}}}"#,
    )
    .unwrap();
    let out = t.netprov(&["reconcile"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains(&format!("{a}: in sync")) && s.contains(&format!("{b}: in sync")),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("zz-bad"),
        "{}",
        text(&out)
    );

    t.ok(&["destroy", &a, &b]);
}
