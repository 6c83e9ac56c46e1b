//! Existing links must be free: not claimed twice, not claimed by OVS.

use super::*;

/// An existing-link interface naming another container's veth host end or a bridge
/// port is refused, naming the owner, and nothing changes; a free link moves.
#[test]
fn existing_links_must_be_free() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let a = unique("c");
    let b = unique("c");
    host.track(&a);
    host.track(&b);
    let ve = unique("ve");
    let mut pa = props(&a, 3);
    pa["network"]["interfaces"]["wan"]["hostName"] = Value::from(ve.as_str());
    let fa = dir.write("a.json", &pa);
    let out = host.netprov(&["apply", &fa]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    let br = unique("br");
    let port = unique("p");
    let free = unique("f");
    host.ok("ip", &["link", "add", &br, "type", "bridge"]);
    // (veth pairs: this kernel may have no dummy module)
    for l in [&port, &free] {
        host.add_veth(l, &format!("{l}p"));
    }
    host.ok("ip", &["link", "set", &port, "master", &br]);

    let before = snapshot(&host, &b);
    for (link, owner) in [
        (
            ve.as_str(),
            format!("netprov's veth host end of container {a} (its interface wan)"),
        ),
        (port.as_str(), format!("a port of bridge {br}")),
        (br.as_str(), "a Linux bridge".to_owned()),
    ] {
        let fb = dir.write(
            "b.json",
            &json!({ "id": b, "network": { "interfaces": { link: { "ip4": "10.78.9.2/24" } } } }),
        );
        let out = host.netprov(&["apply", &fb]);
        assert_eq!(code(&out), 1, "{link}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("move existing link {link} into netns {b}"))
                && text(&out).contains(&owner),
            "{link}: {}",
            text(&out)
        );
        assert_eq!(before, snapshot(&host, &b), "{link}: something changed");
    }
    // The other container still works.
    host.ok("ping", &["-c1", "-W2", "10.78.3.2"]);

    // The control: a free link is moved in.
    let fb = dir.write(
        "b.json",
        &json!({ "id": b, "network": { "interfaces": { free.as_str(): { "ip4": "10.78.9.2/24" } } } }),
    );
    let out = host.netprov(&["apply", &fb]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let moved = testkit::ok("ip", &["-n", &b, "-o", "link", "show", &free]);
    assert!(moved.contains(&free), "{moved}");
    for f in [&fb, &fa] {
        let out = host.netprov(&["destroy", f]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
}

/// Ports of a (userspace-datapath) Open vSwitch — an internal port, which is a tap with
/// no master, and a system port — are refused as existing links: OVSDB names them.
#[test]
fn existing_links_claimed_by_ovs_are_refused() {
    let mut o = testkit::ovs::Ovs::start();
    o.add_bridge("br0");
    let dir = Dir::new();
    let b = o.host.new_id("c");
    let internal = unique("oi");
    o.vsctl(&[
        "add-port",
        "br0",
        &internal,
        "--",
        "set",
        "interface",
        &internal,
        "type=internal",
    ]);
    let system = unique("os");
    o.host.add_veth(&system, &format!("{system}p"));
    o.vsctl(&["add-port", "br0", &system]);
    let ep = o.endpoint();
    let before = snapshot(&o.host, &b);
    for (link, owner) in [
        (
            &internal,
            "a port of Open vSwitch (an OVSDB Interface of type internal)",
        ),
        (
            &system,
            "a port of Open vSwitch (an Interface row in OVSDB)",
        ),
    ] {
        let fb = dir.write(
            "b.json",
            &json!({ "id": b, "network": { "interfaces": { link.as_str(): { "ip4": "10.78.9.2/24" } } } }),
        );
        let out = o.host.netprov(&["--ovsdb", &ep, "apply", &fb]);
        assert_eq!(code(&out), 1, "{link}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("move existing link {link} into netns {b}"))
                && text(&out).contains(owner),
            "{link}: {}",
            text(&out)
        );
        assert_eq!(before, snapshot(&o.host, &b), "{link}: something changed");
    }
}
