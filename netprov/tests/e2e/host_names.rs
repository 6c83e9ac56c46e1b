//! Derived veth host-end names: `np-<id>-<if>` (no stock systemd-networkd,
//! NetworkManager or dhcpcd rule matches `np-*`; networkd's stock
//! `80-container-ve.network` matches `ve-*`), and the migration of a container made by a
//! netprov that still derived `ve-<id>-<if>`.

use std::path::PathBuf;

use serde_json::json;
use testkit::ovs::Ovs;
use testkit::{text, unique, HostNetns};

struct Props(PathBuf);
impl Drop for Props {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A container from before the rename — the same pair, addresses, routes and marks,
/// only with its host end called `ve-<id>-wan` — is migrated by one apply: the pair is
/// re-created as `np-<id>-wan`, the old host end is gone, the host route goes through
/// the new one, check is clean, traffic flows, and the next apply finds nothing to do.
#[test]
fn an_old_ve_host_end_is_recreated_under_the_np_name() {
    let mut host = HostNetns::new();
    let id = host.new_id("m");
    let p = Props(std::env::temp_dir().join(format!("{id}.json")));
    let props = json!({ "id": id, "network": { "interfaces": {
        "wan": { "ip4": "70.11.0.2/31", "hostIp4": "70.11.0.1/31" } },
        "ip4route": "70.11.0.1" } });
    std::fs::write(&p.0, props.to_string()).unwrap();
    let file = p.0.display().to_string();
    let new = format!("np-{id}-wan");
    let old = format!("ve-{id}-wan");
    assert!(new.len() <= 15);

    let out = host.netprov(&["apply", &file]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(host
        .run("ip", &["link", "show", "dev", &new])
        .status
        .success());
    // What an older netprov left: the same link under the old name (marks, group and
    // addresses kept: they belong to the link, not to its name).
    host.ok("ip", &["link", "set", "dev", &new, "down"]);
    host.ok("ip", &["link", "set", "dev", &new, "name", &old]);
    host.ok("ip", &["link", "set", "dev", &old, "up"]);
    // (Setting a link down to rename it flushed its IPv4 routes; put netprov's back.)
    host.ok(
        "ip",
        &["route", "add", "70.11.0.2", "dev", &old, "proto", "77"],
    );
    let r = host.ok("ip", &["route", "show", "proto", "77"]);
    assert!(r.contains(&format!("dev {old}")), "{r}");

    let out = host.netprov(&["check", &file]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = host.netprov(&["apply", &file]);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains(&format!("create veth {new} (host) ↔ wan")),
        "{s}"
    );
    assert!(
        !host
            .run("ip", &["link", "show", "dev", &old])
            .status
            .success(),
        "old host end left"
    );
    let r = host.ok("ip", &["route", "show", "proto", "77"]);
    assert!(
        r.contains(&format!("70.11.0.2 dev {new}")) && !r.contains(&old),
        "{r}"
    );
    // One apply converges (it observes again after re-creating the pair and re-adds
    // the addresses and routes the old container side took with it).
    assert_eq!(host.netprov(&["check", &file]).status.code(), Some(0));
    let out = host.netprov(&["--json", "apply", &file]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["result"]["plan"]["steps"], json!([]), "{v}");
    assert_eq!(host.netprov(&["check", &file]).status.code(), Some(0));
    host.ok("ping", &["-c1", "-W2", "70.11.0.2"]);
    let out = host.netprov(&["destroy", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!host
        .run("ip", &["link", "show", "dev", &new])
        .status
        .success());
}

/// The same for an OVS port of the veth style (the default): an older netprov's port
/// `ve-…` (host end and OVS row, both with netprov's marks) is replaced by one apply
/// with the `np-…` port on the same bridge and VLAN — the old row and device gone — and
/// traffic on the VLAN flows again.
#[test]
fn an_old_ve_ovs_port_is_replaced_by_the_np_port() {
    let mut o = Ovs::start();
    o.add_bridge("br0");
    let (a, b) = (unique("m"), unique("m"));
    o.host.track(&a);
    o.host.track(&b);
    let dir = o.dir.join("props");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |id: &str, ip: &str| {
        let p = dir.join(format!("{id}.json"));
        let props = json!({ "id": id, "network": { "interfaces": {
            "lan": { "ip4": ip, "ovs": { "bridge": "br0", "vlan": 12 } } } } });
        std::fs::write(&p, props.to_string()).unwrap();
        p.display().to_string()
    };
    let (pa, pb) = (write(&a, "10.81.0.1/24"), write(&b, "10.81.0.2/24"));
    let ep = o.endpoint();
    let netprov = |args: &[&str]| {
        let mut all = vec!["--ovsdb", ep.as_str()];
        all.extend_from_slice(args);
        o.host.netprov(&all)
    };
    for p in [&pa, &pb] {
        let out = netprov(&["apply", p]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let new = format!("np-{a}-lan");
    assert!(new.len() <= 15, "{new}");
    let old = format!("ve-{a}-lan");
    assert!(o.vsctl(&["list-ports", "br0"]).lines().any(|l| l == new));

    // What an older netprov left: port and device called ve-…, with the same marks.
    o.vsctl(&["del-port", "br0", &new]);
    o.host.ok("ip", &["link", "set", "dev", &new, "down"]);
    o.host.ok("ip", &["link", "set", "dev", &new, "name", &old]);
    o.host.ok("ip", &["link", "set", "dev", &old, "up"]);
    let ids = format!("external_ids={{netprov-id=\"{a}\",netprov-iface=lan}}");
    o.vsctl(&[
        "add-port",
        "br0",
        &old,
        "tag=12",
        "--",
        "set",
        "Port",
        &old,
        &ids,
        "--",
        "set",
        "Interface",
        &old,
        &ids,
    ]);

    let out = netprov(&["apply", &pa]);
    assert!(out.status.success(), "{}", text(&out));
    let ports = o.vsctl(&["list-ports", "br0"]);
    assert!(
        ports.lines().any(|l| l == new) && !ports.contains(&old),
        "{ports}"
    );
    assert_eq!(o.vsctl(&["get", "Port", &new, "tag"]), "12");
    assert!(!o
        .host
        .run("ip", &["link", "show", "dev", &old])
        .status
        .success());
    assert_eq!(netprov(&["check", &pa]).status.code(), Some(0));
    assert!(
        Ovs::pings(&a, "10.81.0.2"),
        "VLAN traffic after the migration"
    );
    for p in [&pa, &pb] {
        let out = netprov(&["destroy", p]);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(o.vsctl(&["list-ports", "br0"]), "");
}
