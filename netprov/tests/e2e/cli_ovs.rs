//! End-to-end through the `netprov` binary against a private Open vSwitch (userspace
//! datapath) running inside a simulated host netns: OVS ports with VLANs, the router
//! example shape (OVS + veth + nftables), repair, errors, concurrency, no child process.

use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};
use testkit::ovs::{Ovs, OvsCli};
use testkit::text;

/// A private OVS with bridge br0 and a temp dir for props files.
struct T(OvsCli);

testkit::extends!(T => OvsCli);

impl T {
    fn new() -> Self {
        T(OvsCli::new())
    }

    fn write(&self, id: &str, network: Value) -> String {
        self.dir.write_network(id, network)
    }

    /// An OVS internal port `iface` with `addr` on br0, VLAN `vlan` (the default style is
    /// veth, see ovs_defaults.rs; these tests are about internal ports).
    fn port_props(&self, id: &str, iface: &str, addr: &str, vlan: u16) -> String {
        self.write(
            id,
            json!({ "interfaces": { iface: { "ip4": addr,
                "ovs": { "bridge": "br0", "vlan": vlan, "style": "internal" } } } }),
        )
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.netprov(args);
        assert!(out.status.success(), "netprov {args:?}: {}", text(&out));
        out
    }

    fn apply_json(&self, props: &str) -> Value {
        let out = self.ok(&["--json", "apply", props]);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn ports(&self) -> String {
        self.o.vsctl(&["list-ports", "br0"])
    }

    fn interface_rows(&self) -> String {
        self.o
            .vsctl(&["--bare", "--columns=name", "list", "Interface"])
    }
}

fn netns_exists(id: &str) -> bool {
    Path::new("/run/netns").join(id).exists()
}

const ROUTER_NFT: &str = "table inet filter {\n  chain input { type filter hook input priority 0; policy drop; ct state established,related accept; iif lo accept; meta l4proto { icmp, ipv6-icmp } accept; }\n  chain forward { type filter hook forward priority 0; policy accept; }\n}\n";

fn router(t: &T, id: &str) -> String {
    t.write(
        id,
        json!({
            "interfaces": {
                "lan": { "ip4": "10.60.0.2/24", "ovs": { "bridge": "br0", "vlan": 356, "style": "internal" } },
                "wan": { "ip4": "70.0.0.2/31", "hostIp4": "70.0.0.1/31", "hostName": format!("w{id}") },
            },
            "ip4route": "70.0.0.1",
            "nft": ROUTER_NFT,
        }),
    )
}

#[test]
fn router_example_applies_reapplies_silently_and_destroys_cleanly() {
    let mut t = T::new();
    let (r, peer) = (t.id(), t.id());
    let rp = router(&t, &r);
    let pp = t.port_props(&peer, "peer", "10.60.0.3/24", 356);
    let v = t.apply_json(&rp);
    let res = &v[0]["result"];
    assert!(res["ovsdb_transactions"].as_u64().unwrap() >= 1, "{v}");
    let steps: Vec<String> = res["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["op"].as_str().unwrap().to_owned())
        .collect();
    let pos = |op: &str| {
        steps
            .iter()
            .position(|s| s == op)
            .unwrap_or_else(|| panic!("{op} in {steps:?}"))
    };
    assert!(pos("create_veth") < pos("ovs_port"));
    assert!(pos("ovs_port") < pos("move_link_in"));
    assert!(pos("move_link_in") < pos("load_ruleset"));
    t.ok(&["apply", &pp]);

    // Traffic: VLAN 356 between the router and its peer, and over the wan veth.
    assert!(Ovs::pings(&r, "10.60.0.3"), "lan on VLAN 356");
    assert!(Ovs::pings(&r, "70.0.0.1"), "wan to the host");
    assert_eq!(t.o.vsctl(&["get", "Port", "lan", "tag"]), "356");

    // Re-apply: nothing to do, zero netlink messages, zero OVSDB mutations.
    let v = t.apply_json(&rp);
    assert_eq!(v[0]["result"]["plan"]["steps"], json!([]), "{v}");
    assert_eq!(v[0]["result"]["messages"], 0, "{v}");
    assert_eq!(v[0]["result"]["ovsdb_transactions"], 0, "{v}");
    let out = t.netprov(&["check", &rp]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Destroy: no port, no Interface row, no device, no netns.
    for (id, p) in [(&r, &rp), (&peer, &pp)] {
        t.ok(&["destroy", p]);
        assert!(!netns_exists(id));
    }
    assert_eq!(t.ports(), "");
    assert_eq!(t.interface_rows(), "br0");
    for dev in ["lan", "peer", &format!("w{r}")] {
        assert!(!t.host_has_link(dev), "{dev} left in the host");
    }
    // Destroy again (by id): nothing left, still fine.
    t.ok(&["destroy", &r]);
}

#[test]
fn vlans_isolate_and_retag_in_place_with_both_styles() {
    let mut t = T::new();
    let (a, b, c) = (t.id(), t.id(), t.id());
    let pa = t.port_props(&a, "pa", "10.61.0.1/24", 10);
    // b uses the veth style: a veth pair whose host end is the OVS port.
    let pb = t.write(
        &b,
        json!({ "interfaces": { "pb": { "ip4": "10.61.0.2/24", "hostName": format!("v{b}"),
            "ovs": { "bridge": "br0", "vlan": 10, "style": "veth" } } } }),
    );
    let pc20 = t.port_props(&c, "pc", "10.61.0.3/24", 20);
    for p in [&pa, &pb, &pc20] {
        t.ok(&["apply", p]);
    }
    assert!(Ovs::pings(&a, "10.61.0.2"), "same VLAN (internal ↔ veth)");
    assert!(!Ovs::pings(&c, "10.61.0.1"), "VLAN 20 is isolated");
    let uuid = t.o.vsctl(&["get", "Port", "pc", "_uuid"]);

    // Re-tag 20 → 10 by editing the props: updated in place (same row).
    let pc10 = t.port_props(&c, "pc", "10.61.0.3/24", 10);
    let out = t.netprov(&["check", &pc10]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = t.ok(&["apply", &pc10]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("set VLAN of OVS port pc: 20 → 10"),
        "{}",
        text(&out)
    );
    assert_eq!(t.o.vsctl(&["get", "Port", "pc", "_uuid"]), uuid);
    assert!(Ovs::pings(&c, "10.61.0.1"), "re-tagged to VLAN 10");
    assert!(Ovs::pings(&c, "10.61.0.2"));

    // veth style: the pair vanishes; apply re-creates it and the port on it.
    t.o.host.ok("ip", &["link", "del", &format!("v{b}")]);
    let out = t.netprov(&["check", &pb]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = t.ok(&["apply", &pb]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("re-create OVS port v{b}")),
        "{}",
        text(&out)
    );
    // (From b: a still has the old MAC of b's interface in its neighbour cache.)
    assert!(Ovs::pings(&b, "10.61.0.1"), "veth-style port repaired");
    let out = t.netprov(&["check", &pb]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    for p in [&pa, &pb, &pc10] {
        t.ok(&["destroy", p]);
    }
    assert_eq!(t.ports(), "");
    assert!(!t.host_has_link(&format!("v{b}")));
}

#[test]
fn vanished_internal_device_is_drift_and_apply_repairs_it() {
    let mut t = T::new();
    let (a, b) = (t.id(), t.id());
    let pa = t.port_props(&a, "qa", "10.62.0.1/24", 10);
    let pb = t.port_props(&b, "qb", "10.62.0.2/24", 10);
    t.ok(&["apply", &pa]);
    t.ok(&["apply", &pb]);
    assert!(Ovs::pings(&a, "10.62.0.2"));
    assert!(Ovs::in_ns(&a, "ip", &["link", "del", "qa"])
        .status
        .success());
    let out = t.netprov(&["check", &pa]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OVS port qa"),
        "{}",
        text(&out)
    );
    let out = t.ok(&["apply", &pa]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("re-create OVS port qa"),
        "{}",
        text(&out)
    );
    assert!(Ovs::pings(&a, "10.62.0.2"), "repaired");
    let out = t.netprov(&["check", &pa]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    t.ok(&["destroy", &pa]);
    t.ok(&["destroy", &pb]);
}

#[test]
fn ovsdb_down_is_a_clean_error_with_nothing_made() {
    let mut t = T::new();
    let id = t.id();
    let p = router(&t, &id);
    t.o.stop_ovsdb();
    let out = t.netprov(&["apply", &p]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "OVS database at {}: connection refused — is ovsdb-server running?",
            t.o.endpoint()
        )),
        "{err}"
    );
    assert!(!netns_exists(&id), "no netns made");
    assert!(!t.host_has_link(&format!("w{id}")), "no veth made");
}

#[test]
fn missing_bridge_is_named() {
    let mut t = T::new();
    let id = t.id();
    let p = t.write(
        &id,
        json!({ "interfaces": { "m0": { "ip4": "10.63.0.1/24", "ovs": { "bridge": "br9", "vlan": 1 } } } }),
    );
    let out = t.netprov(&["apply", &p]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("OVS bridge br9 does not exist"),
        "{}",
        text(&out)
    );
    assert!(!netns_exists(&id));
}

#[test]
fn sixteen_concurrent_applies_on_one_bridge() {
    let mut t = T::new();
    let ids: Vec<String> = (0..16).map(|_| t.id()).collect();
    let props: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| t.port_props(id, &format!("c{n}"), &format!("10.64.0.{}/24", n + 1), 10))
        .collect();
    let ep = t.o.endpoint();
    let children: Vec<_> = props
        .iter()
        .map(|p| {
            t.o.host
                .cmd(
                    testkit::netprov_bin().to_str().unwrap(),
                    &["--ovsdb", &ep, "apply", p],
                )
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(t.ports().lines().count(), 16, "{}", t.ports());
    assert!(Ovs::pings(&ids[0], "10.64.0.16"));
    for p in &props {
        t.ok(&["destroy", p]);
    }
    assert_eq!(t.ports(), "");
}

#[test]
fn apply_runs_no_child_process() {
    let mut t = T::new();
    let id = t.id();
    let p = router(&t, &id);
    let trace = t.dir.0.join("strace.out");
    let ep = t.o.endpoint();
    let bin = testkit::netprov_bin();
    let out = t.o.host.run(
        "strace",
        &[
            "-f",
            "-e",
            "trace=execve",
            "-o",
            trace.to_str().unwrap(),
            bin.to_str().unwrap(),
            "--ovsdb",
            &ep,
            "apply",
            &p,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let log = std::fs::read_to_string(&trace).unwrap();
    let execs: Vec<&str> = log.lines().filter(|l| l.contains("execve(")).collect();
    assert_eq!(execs.len(), 1, "{log}");
    assert!(execs[0].contains("netprov"), "{log}");
    t.ok(&["destroy", &p]);
}

#[test]
fn vswitchd_restart_is_drift_and_apply_moves_the_new_device_in() {
    let mut t = T::new();
    let (a, b) = (t.id(), t.id());
    let pa = t.port_props(&a, "ra", "10.65.0.1/24", 10);
    let pb = t.port_props(&b, "rb", "10.65.0.2/24", 10);
    t.ok(&["apply", &pa]);
    t.ok(&["apply", &pb]);
    assert!(Ovs::pings(&a, "10.65.0.2"));
    // Userspace datapath: the restarted ovs-vswitchd makes new taps in the host netns;
    // the containers keep dead ones.
    t.o.restart_vswitchd();
    for p in [&pa, &pb] {
        let out = t.netprov(&["check", p]);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("is dead: ovs-vswitchd restarted"),
            "{}",
            text(&out)
        );
        let out = t.ok(&["apply", p]);
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(s.contains("delete dead OVS internal device"), "{s}");
        assert!(s.contains("move OVS internal port"), "{s}");
    }
    assert!(Ovs::pings(&a, "10.65.0.2"), "traffic after the restart");
    for p in [&pa, &pb] {
        let out = t.netprov(&["check", p]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        t.ok(&["destroy", p]);
    }
    assert_eq!(t.ports(), "");
}

/// Props that drop every OVS interface: the next apply removes the container's ports
/// (and their devices); the remaining veth keeps working.
#[test]
fn dropping_all_ovs_interfaces_removes_their_ports() {
    let mut t = T::new();
    let r = t.id();
    let rp = router(&t, &r);
    t.ok(&["apply", &rp]);
    assert_eq!(t.ports(), "lan");

    let vp = t.write(
        &r,
        json!({
            "interfaces": {
                "wan": { "ip4": "70.0.0.2/31", "hostIp4": "70.0.0.1/31", "hostName": format!("w{r}") },
            },
            "ip4route": "70.0.0.1",
        }),
    );
    assert_eq!(vp, rp);
    let out = t.netprov(&["check", &vp]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    t.ok(&["apply", &vp]);
    assert_eq!(t.ports(), "");
    assert_eq!(t.interface_rows(), "br0");
    let links = testkit::ok("ip", &["-n", &r, "-o", "link"]);
    assert!(!links.contains("lan"), "{links}");
    assert!(Ovs::pings(&r, "70.0.0.1"), "wan to the host");
    let out = t.netprov(&["check", &vp]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    t.ok(&["destroy", &r]);
}
