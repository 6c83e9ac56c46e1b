//! OVN across two simulated hosts, end to end through the `netprov` binary: one OVN
//! central, two chassis (each its own netns with ovsdb-server, ovs-vswitchd on the
//! userspace datapath and ovn-controller) joined by an underlay veth carrying Geneve.
//! netprov on each host creates the logical switch ports, binds them and waits for
//! `ovn-installed`; traffic crosses the tunnel, switches are isolated until a logical
//! router joins them, re-apply sends nothing, destroy removes only its own port.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::ovn::{chassis_pair, join_pair, Central, Chassis};
use testkit::ovs::Ovs;
use testkit::{text, unique, PropsDir};

struct Host<'a> {
    ch: &'a mut Chassis,
    nb: String,
    dir: PathBuf,
}

impl<'a> Host<'a> {
    fn new(ch: &'a mut Chassis, central: &Central, dir: &Path) -> Self {
        Host {
            ch,
            nb: central.nb(),
            dir: dir.to_owned(),
        }
    }

    fn netprov(&self, args: &[&str]) -> Output {
        let ep = self.ch.ovs.endpoint();
        let mut all = vec!["--ovsdb", ep.as_str(), "--ovn-nb", self.nb.as_str()];
        all.extend_from_slice(args);
        self.ch.ovs.host.netprov(&all)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.netprov(args);
        assert!(out.status.success(), "netprov {args:?}: {}", text(&out));
        out
    }

    /// A container `id` with interface `lan` (`ip/24`) on logical switch `switch`.
    fn props(&mut self, id: &str, switch: &str, ip: &str, gw: &str) -> String {
        self.ch.ovs.host.track(id);
        let p = self.dir.join(format!("{id}.json"));
        let doc = json!({ "id": id, "network": {
            "interfaces": { "lan": { "ip4": format!("{ip}/24"),
                "ovs": { "bridge": "br-int", "ovn": { "switch": switch } } } },
            "ip4route": gw } });
        std::fs::write(&p, doc.to_string()).unwrap();
        p.display().to_string()
    }

    fn apply_json(&self, props: &str) -> Value {
        let out = self.ok(&["--json", "apply", props]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }

    fn br_int_ports(&self) -> String {
        self.ch.ovs.vsctl(&["list-ports", "br-int"])
    }
}

/// Pings until answered (flows are installed asynchronously after a NB change netprov
/// did not make, such as the test's router), at most `limit`.
fn pings_within(from: &str, addr: &str, limit: Duration) -> bool {
    let t = Instant::now();
    loop {
        if Ovs::pings(from, addr) {
            return true;
        }
        if t.elapsed() > limit {
            return false;
        }
    }
}

/// The apply report of the (single) container in `netprov --json apply` output.
fn result(report: &Value) -> &Value {
    &report[0]["result"]
}

fn steps(report: &Value) -> usize {
    result(report)["plan"]["steps"]
        .as_array()
        .map_or(usize::MAX, Vec::len)
}

// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn two_hosts_share_a_logical_switch_and_are_isolated_from_another() {
    let (mut ha, mut hb) = chassis_pair("10.99.0");
    // Host A reaches NB over TCP (loopback of its own netns), host B over unix.
    let central = Central::start_with_tcp(Some(&ha.ovs.host));
    central.nbctl(&["ls-add", "A"]);
    central.nbctl(&["ls-add", "B"]);
    join_pair(&central, &mut ha, &mut hb);
    let props = PropsDir::new();
    let dir = props.0.clone();
    let mut a = Host::new(&mut ha, &central, &dir);
    let (a1, b1) = (unique("a1"), unique("b1"));
    let pa1 = a.props(&a1, "A", "10.0.1.2", "10.0.1.1");
    let pb1 = a.props(&b1, "B", "10.0.2.2", "10.0.2.1");
    let mut b = Host::new(&mut hb, &central, &dir);
    let a2 = unique("a2");
    let pa2 = b.props(&a2, "A", "10.0.1.3", "10.0.1.1");

    // Apply returns once ovn-controller reported the port installed.
    for (h, p) in [(&a, &pa1), (&a, &pb1), (&b, &pa2)] {
        let r = h.apply_json(p);
        assert!(steps(&r) > 0, "{r}");
    }
    for (h, id) in [(&a, &a1), (&a, &b1), (&b, &a2)] {
        let row = format!("np-{id}-lan");
        let ids = h.ch.ovs.vsctl(&["get", "Interface", &row, "external_ids"]);
        assert!(ids.contains("ovn-installed=\"true\""), "{id}: {ids}");
        assert!(
            ids.contains(&format!("iface-id=\"{id}:lan\"")),
            "{id}: {ids}"
        );
        assert!(
            ids.contains("iface-id-ver=") && ids.contains("attached_mac="),
            "{ids}"
        );
    }
    let lsps = central.nbctl(&[
        "--bare",
        "--columns=name",
        "find",
        "Logical_Switch_Port",
        "external_ids:netprov-id!=\"\"",
    ]);
    for id in [&a1, &b1, &a2] {
        assert!(lsps.contains(&format!("{id}:lan")), "{lsps}");
    }

    // Same switch, different hosts: across the Geneve tunnel.
    assert!(Ovs::pings(&a1, "10.0.1.3"), "a1 → a2 across hosts");
    assert!(Ovs::pings(&a2, "10.0.1.2"), "a2 → a1 across hosts");
    let tunnels = a.ch.ovs.vsctl(&[
        "--bare",
        "--columns=type",
        "find",
        "Interface",
        "type=geneve",
    ]);
    assert!(
        tunnels.contains("geneve"),
        "no Geneve port on br-int: {tunnels}"
    );
    // Another switch: isolated (no router yet), on the same host and across.
    assert!(
        !Ovs::pings(&a1, "10.0.2.2"),
        "a1 reached b1 on another switch"
    );
    assert!(
        !Ovs::pings(&a2, "10.0.2.2"),
        "a2 reached b1 on another switch"
    );

    // Re-apply on either host: nothing planned, nothing sent; check is clean.
    for (h, p) in [(&a, &pa1), (&a, &pb1), (&b, &pa2)] {
        let r = h.apply_json(p);
        assert_eq!(steps(&r), 0, "re-apply planned something: {r}");
        assert_eq!(result(&r)["ovsdb_transactions"], 0, "{r}");
        h.ok(&["check", p]);
    }

    // A logical router between A and B (made by the test) joins them.
    central.nbctl(&["lr-add", "R"]);
    for (sw, mac, ip) in [
        ("A", "02:00:00:00:01:01", "10.0.1.1/24"),
        ("B", "02:00:00:00:02:01", "10.0.2.1/24"),
    ] {
        let (rp, sp) = (format!("R-{sw}"), format!("{sw}-R"));
        central.nbctl(&["lrp-add", "R", &rp, mac, ip]);
        central.nbctl(&[
            "lsp-add",
            sw,
            &sp,
            "--",
            "lsp-set-type",
            &sp,
            "router",
            "--",
            "lsp-set-addresses",
            &sp,
            "router",
            "--",
            "lsp-set-options",
            &sp,
            &format!("router-port={rp}"),
        ]);
    }
    assert!(
        pings_within(&a2, "10.0.2.2", Duration::from_secs(20)),
        "a2 (host B) → b1 (host A) through the router"
    );
    assert!(Ovs::pings(&a1, "10.0.2.2"), "a1 → b1 through the router");

    // Drift: the logical port's addresses changed behind netprov's back.
    let lsp = format!("{a1}:lan");
    central.nbctl(&["lsp-set-addresses", &lsp, "02:00:00:00:00:99 10.0.1.99"]);
    let out = a.netprov(&["check", &pa1]);
    exits_naming(&out, 3, &format!("OVN logical switch port {lsp}"));
    a.ok(&["apply", &pa1]);
    a.ok(&["check", &pa1]);
    // Drift on the chassis side: the binding version removed from the OVS Interface.
    let row = format!("np-{a1}-lan");
    a.ch.ovs
        .vsctl(&["remove", "Interface", &row, "external_ids", "iface-id-ver"]);
    let out = a.netprov(&["check", &pa1]);
    exits_naming(&out, 3, &format!("OVS interface {row}"));
    a.ok(&["apply", &pa1]);
    a.ok(&["check", &pa1]);
    assert!(Ovs::pings(&a1, "10.0.1.3"), "a1 → a2 after the repairs");

    // Destroy on host B removes its logical port and OVS port, nothing else.
    let before_a = a.br_int_ports();
    b.ok(&["destroy", &pa2]);
    let lsps = central.nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port"]);
    assert!(!lsps.contains(&format!("{a2}:lan")), "{lsps}");
    for keep in [
        format!("{a1}:lan"),
        format!("{b1}:lan"),
        "A-R".into(),
        "B-R".into(),
    ] {
        assert!(lsps.contains(&keep), "destroy removed {keep}: {lsps}");
    }
    assert!(!b.br_int_ports().contains(&a2), "{}", b.br_int_ports());
    assert_eq!(a.br_int_ports(), before_a);
    assert!(
        Ovs::pings(&a1, "10.0.2.2"),
        "host A still routes after host B's destroy"
    );
    // Destroying again finds nothing.
    b.ok(&["destroy", &pa2]);
    for p in [&pa1, &pb1] {
        a.ok(&["destroy", p]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refusals_name_what_is_missing_or_taken() {
    let central = Central::start();
    central.nbctl(&["ls-add", "A"]);
    let (mut ha, mut hb) = chassis_pair("10.98.0");
    join_pair(&central, &mut ha, &mut hb);
    let props = PropsDir::new();
    let dir = props.0.clone();
    let mut a = Host::new(&mut ha, &central, &dir);

    // A switch that does not exist: exit 1, named; nothing created.
    let c = unique("c");
    let p = a.props(&c, "nosuch", "10.0.1.2", "10.0.1.1");
    let out = a.netprov(&["apply", &p]);
    exits_naming(&out, 1, "logical switch nosuch does not exist");

    // The iface-id is already bound on this chassis to something not this container's.
    let c2 = unique("c");
    let p2 = a.props(&c2, "A", "10.0.1.3", "10.0.1.1");
    a.ch.ovs.vsctl(&[
        "add-port",
        "br-int",
        "squat",
        "--",
        "set",
        "Interface",
        "squat",
        "type=internal",
        &format!("external_ids:iface-id={c2}:lan"),
    ]);
    let out = a.netprov(&["apply", &p2]);
    exits_naming(&out, 1, "already on OVS interface squat");
    a.ch.ovs.vsctl(&["del-port", "br-int", "squat"]);

    // A logical port of that name made by someone else is never taken over.
    central.nbctl(&["lsp-add", "A", &format!("{c2}:lan")]);
    let out = a.netprov(&["apply", &p2]);
    exits_naming(&out, 1, "exists and is not netprov's");
    central.nbctl(&["lsp-del", &format!("{c2}:lan")]);

    // ovn-controller not running: apply times out naming why.
    a.ch.stop_controller();
    let out = a.netprov(&["--ovn-timeout", "2", "apply", &p2]);
    // The chassis row stays in SB after a kill; nobody claims the port.
    exits_naming(&out, 1, "no external_ids:ovn-installed=true after 2s");
    assert!(
        text(&out).contains("is not bound to any chassis yet"),
        "{}",
        text(&out)
    );
    let _ = a.netprov(&["destroy", &p2]);
    let _ = a.netprov(&["destroy", &p]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Many containers on one logical switch applied at once, on both hosts at the same
/// time (concurrent NB inserts into one `Logical_Switch.ports`): all bound, all reach
/// each other across hosts, a re-apply is a no-op, destroy leaves no netprov LSP.
// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn many_containers_on_both_hosts_at_once() {
    const PER_HOST: usize = 5;
    let central = Central::start();
    central.nbctl(&["ls-add", "A"]);
    let (mut ha, mut hb) = chassis_pair("10.97.0");
    join_pair(&central, &mut ha, &mut hb);
    let props = PropsDir::new();
    let dir = props.0.clone();
    let mut hosts = [
        Host::new(&mut ha, &central, &dir),
        Host::new(&mut hb, &central, &dir),
    ];
    let mut ids: Vec<Vec<(String, String, String)>> = Vec::new();
    for (h, host) in hosts.iter_mut().enumerate() {
        let mut mine = Vec::new();
        for n in 0..PER_HOST {
            let id = unique("m");
            let ip = format!("10.0.5.{}", 10 + h * 100 + n);
            let p = host.props(&id, "A", &ip, "10.0.5.1");
            mine.push((id, ip, p));
        }
        ids.push(mine);
    }
    let apply_all = |hosts: &[Host], ids: &[Vec<(String, String, String)>]| {
        std::thread::scope(|s| {
            let handles: Vec<_> = hosts
                .iter()
                .zip(ids)
                .map(|(h, mine)| {
                    s.spawn(move || {
                        let mut args = vec!["--json", "apply"];
                        args.extend(mine.iter().map(|(_, _, p)| p.as_str()));
                        let out = h.ok(&args);
                        serde_json::from_slice::<Value>(&out.stdout).unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    };
    for r in apply_all(&hosts, &ids) {
        for c in r.as_array().unwrap() {
            assert_eq!(c["ok"], true, "{c}");
        }
    }
    let ports = central.nbctl(&["--bare", "--columns=ports", "list", "Logical_Switch"]);
    assert_eq!(ports.split_whitespace().count(), 2 * PER_HOST, "{ports}");
    // Every container on host A reaches one on host B and back.
    for (a, b) in ids[0].iter().zip(&ids[1]) {
        assert!(Ovs::pings(&a.0, &b.1), "{} → {}", a.0, b.1);
        assert!(Ovs::pings(&b.0, &a.1), "{} → {}", b.0, a.1);
    }
    for r in apply_all(&hosts, &ids) {
        for c in r.as_array().unwrap() {
            assert_eq!(
                c["result"]["plan"]["steps"].as_array().map(Vec::len),
                Some(0),
                "{c}"
            );
            assert_eq!(c["result"]["ovsdb_transactions"], 0, "{c}");
        }
    }
    for (host, mine) in hosts.iter().zip(&ids) {
        let mut args = vec!["destroy"];
        args.extend(mine.iter().map(|(_, _, p)| p.as_str()));
        host.ok(&args);
        // Only ovn-controller's tunnel port is left.
        let left = host.br_int_ports();
        assert!(
            mine.iter().all(|(id, _, _)| !left.contains(id.as_str())),
            "br-int keeps ports after destroy: {left}"
        );
    }
    let left = central.nbctl(&[
        "--bare",
        "--columns=name",
        "find",
        "Logical_Switch_Port",
        "external_ids:netprov-id!=\"\"",
    ]);
    assert_eq!(left, "", "netprov LSPs left: {left}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Asserts that netprov exited `code` and its output names `what`.
fn exits_naming(out: &Output, code: i32, what: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    assert!(text(out).contains(what), "{}", text(out));
}
