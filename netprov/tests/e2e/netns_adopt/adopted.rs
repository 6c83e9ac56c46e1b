//! In an adopted netns netprov changes only its own objects, also with two containers.

use super::*;

/// In an adopted netns with foreign nftables tables, a foreign veth with an address, a
/// foreign static route and another container's protocol-77 route: apply keeps them
/// all, a changed ruleset replaces only netprov's tables, a foreign table changing is
/// not drift, a ruleset that would merge into a foreign table is refused, and destroy
/// removes only what netprov made.
// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn in_an_adopted_netns_only_netprovs_objects_change() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let name = host.new_id("a");
    ok("ip", &["netns", "add", &name]);
    foreign_veths(&name);
    // Another container's netprov route (protocol 77) and an admin's static route.
    ns(
        &name,
        "ip",
        &["route", "add", "10.67.0.0/24", "dev", "fa", "proto", "77"],
    );
    ns(&name, "ip", &["route", "add", "10.68.0.0/24", "dev", "fa"]);
    ns(
        &name,
        "nft",
        &["add table inet theirs; add chain inet theirs c { type filter hook output priority 0; policy accept; }"],
    );
    let foreign = |s: &str| -> bool {
        s.contains("10.66.0.1/24")
            && s.contains("10.67.0.0/24 dev fa proto 77")
            && s.contains("10.68.0.0/24 dev fa")
            && s.contains("table inet theirs")
    };
    let path = format!("/run/netns/{name}");
    let id = host.new_id("c");
    let hv = unique("v");
    let mk = |nft: Option<&str>| {
        let mut extra = json!({ "netns_path": path });
        if let Some(t) = nft {
            extra["nft"] = json!(t);
        }
        dir.write_props(&props(&id, &hv, 4, extra))
    };
    let f = mk(Some(RULES_A));
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(foreign(&s), "{s}");
    assert!(s.contains("table inet mine"), "{s}");
    assert!(
        s.contains("10.80.4.0/24 via 10.79.4.3 dev wan proto 77"),
        "{s}"
    );
    host.ok("ping", &["-c1", "-W2", "10.79.4.2"]);
    assert!(
        !lo_alias(&name).contains("netprov-netns"),
        "an adopted netns is not marked"
    );

    // Re-apply: nothing to do. A foreign table changing is not drift.
    let o = host.netprov(&["apply", &f]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("in sync"),
        "{}",
        text(&o)
    );
    ns(&name, "nft", &["add chain inet theirs other"]);
    let o = host.netprov(&["check", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    // netprov's own table edited behind its back is drift, and the reload keeps theirs.
    ns(&name, "nft", &["add chain inet mine sneaky"]);
    let o = host.netprov(&["check", &f]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(!s.contains("sneaky") && s.contains("chain other"), "{s}");

    // A changed ruleset: table mine dropped from the props is deleted, theirs stays.
    let f = mk(Some(RULES_B));
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(foreign(&s), "{s}");
    assert!(
        s.contains("table inet mine2") && !s.contains("table inet mine {"),
        "{s}"
    );

    // A ruleset declaring the foreign table is refused; nothing changes.
    let before = snapshot(&name);
    let f_bad = mk(Some("table inet theirs {\n  chain mine {\n  }\n}\n"));
    let o = host.netprov(&["apply", &f_bad]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("table inet theirs already exists"),
        "{}",
        text(&o)
    );
    assert_eq!(snapshot(&name), before);

    // nft dropped from the props: netprov's tables go, theirs stays.
    let f = mk(None);
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(
        foreign(&s) && !s.contains("mine2") && !s.contains("netprov_state"),
        "{s}"
    );

    // Destroy: netprov's veth and route go; every foreign object stays.
    let f = mk(Some(RULES_A));
    assert_eq!(code(&host.netprov(&["apply", &f])), 0);
    let o = host.netprov(&["destroy", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(foreign(&s), "{s}");
    assert!(
        !s.contains("wan") && !s.contains("10.80.4.0") && !s.contains("table inet mine"),
        "{s}"
    );
    assert!(Path::new(&path).exists());
    ns(&name, "ping", &["-c1", "-W2", "10.66.0.1"]);
}

/// Two containers adopting one netns (in separate runs — in one run that is a conflict):
/// the second cannot load a ruleset over the first's, and its destroy leaves the first's
/// tables, links and protocol-77 routes.
#[test]
fn a_second_container_in_an_adopted_netns_never_touches_the_first() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let name = host.new_id("a");
    ok("ip", &["netns", "add", &name]);
    let path = format!("/run/netns/{name}");
    let a = host.new_id("c");
    let fa = dir.write_props(&props(
        &a,
        &unique("v"),
        7,
        json!({ "netns_path": path, "nft": RULES_A }),
    ));
    assert_eq!(code(&host.netprov(&["apply", &fa])), 0);
    let b = host.new_id("c");
    let mut pb = props(
        &b,
        &unique("v"),
        8,
        json!({ "netns_path": path, "nft": RULES_B }),
    );
    // Its own interface name: the two containers share the netns.
    let wan = pb["network"]["interfaces"]["wan"].take();
    pb["network"]["interfaces"] = json!({ "lan": wan });
    let fb = dir.write_props(&pb);
    let o = host.netprov(&["apply", &fb]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("for container {a}")),
        "{}",
        text(&o)
    );
    pb["network"]["nft"] = json!("");
    let fb = dir.write_props(&pb);
    let o = host.netprov(&["apply", &fb]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let before = snapshot(&name);
    assert!(
        before.contains("10.80.7.0/24 via 10.79.7.3 dev wan proto 77"),
        "{before}"
    );
    let o = host.netprov(&["destroy", &fb]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(
        s.contains("table inet mine") && s.contains("10.80.7.0/24 via 10.79.7.3 dev wan proto 77"),
        "{s}"
    );
    host.ok("ping", &["-c1", "-W2", "10.79.7.2"]);
    assert_eq!(code(&host.netprov(&["destroy", &fa])), 0);
    let s = snapshot(&name);
    assert!(
        !s.contains("table inet") && !s.contains("wan") && !s.contains("proto 77"),
        "{s}"
    );
}
