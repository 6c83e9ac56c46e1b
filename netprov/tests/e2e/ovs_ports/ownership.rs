//! Concurrent applies on one bridge; destroy removes only netprov's own ports.

use super::*;

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

// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
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
