//! OVS behind netprov's back: a vanished device, ovsdb-server stopped, ovs-vswitchd restarted.

use super::*;

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
