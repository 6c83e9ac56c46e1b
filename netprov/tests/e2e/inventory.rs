//! The host-wide commands through the `netprov` binary, in a simulated host netns with a
//! private Open vSwitch: `list` and `status` find netprov's objects by their marks,
//! `gc` removes exactly the orphans (no props file, no machine, no process in the netns)
//! and leaves foreign objects and live containers alone, `reconcile` repairs what a
//! firewall reload (`flush ruleset`) or an OVSDB loss took away, without restarts.
//!
//! `/run/netns` is shared with every other test on this machine, so `list` and `gc` are
//! given this test's ids: the scan still covers the whole host, the ids only restrict
//! what is reported and collected (other tests' containers must survive this one).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::ovs::Ovs;
use testkit::{text, unique};

/// A process kept alive in a netns (killed on drop).
struct Bg(Child);
impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_ns(ns: &str, cmd: &str, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(cmd)
        .args(args);
    c
}

fn pings(ns: &str, addr: &str) -> bool {
    in_ns(ns, "ping", &["-c", "2", "-i", "0.2", "-W", "2", addr])
        .output()
        .unwrap()
        .status
        .success()
}

/// Retries a command for up to 5 s (a listener may still be starting).
fn eventually(mut cmd: Command) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if cmd.output().unwrap().status.success() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A private OVS (bridge br0) in a simulated host, a props directory (what the
/// generator reads), a second directory for props that are *not* there, and a
/// machines directory standing in for `/run/systemd/machines`.
struct T {
    o: Ovs,
    props: PathBuf,
    elsewhere: PathBuf,
    machines: PathBuf,
}

impl Drop for T {
    fn drop(&mut self) {
        for d in [&self.props, &self.elsewhere, &self.machines] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl T {
    fn new() -> Self {
        let o = Ovs::start();
        o.add_bridge("br0");
        let mk = |n: &str| {
            let d = o.dir.join(n);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let (props, elsewhere, machines) = (mk("etc-netprov"), mk("elsewhere"), mk("machines"));
        T {
            o,
            props,
            elsewhere,
            machines,
        }
    }

    fn id(&mut self) -> String {
        let id = unique("i");
        self.o.host.track(&id);
        id
    }

    fn write(dir: &Path, id: &str, network: Value) -> String {
        let p = dir.join(format!("{id}.json"));
        std::fs::write(&p, json!({ "id": id, "network": network }).to_string()).unwrap();
        p.display().to_string()
    }

    fn netprov(&self, args: &[&str]) -> Output {
        let ep = self.o.endpoint();
        let props = format!("--props-dir={}", self.props.display());
        let machines = format!("--machines-dir={}", self.machines.display());
        let host_wide = matches!(
            args.first(),
            Some(&("list" | "status" | "gc" | "reconcile"))
        ) || matches!(args.get(1), Some(&("list" | "status" | "gc" | "reconcile")));
        let mut all = vec!["--ovsdb", ep.as_str()];
        all.extend_from_slice(args);
        if host_wide {
            if !args.iter().any(|a| a.starts_with("--props-dir")) {
                all.push(&props);
            }
            all.push(&machines);
        }
        self.o.host.netprov(&all)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.netprov(args);
        assert!(out.status.success(), "netprov {args:?}: {}", text(&out));
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }

    fn host_has(&self, args: &[&str]) -> bool {
        self.o.host.run(args[0], &args[1..]).status.success()
    }

    fn ovs_ports(&self) -> String {
        self.o.vsctl(&["list-ports", "br0"])
    }
}

/// A veth container: `wan` 70.<n>.0.2/31 ↔ host end `w<id>` 70.<n>.0.1/31, default
/// route; `extra` merged into its network (OVS port, masquerade, forwards).
fn veth(id: &str, n: u8, extra: Value) -> Value {
    let mut net = json!({
        "interfaces": {
            "wan": { "ip4": format!("70.{n}.0.2/31"), "hostIp4": format!("70.{n}.0.1/31"),
                     "hostName": format!("w{id}") },
        },
        "ip4route": format!("70.{n}.0.1"),
    });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            if k == "interfaces" {
                for (i, d) in v.as_object().unwrap() {
                    net["interfaces"][i] = d.clone();
                }
            } else {
                net[k] = v;
            }
        }
    }
    net
}

fn entry<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
}

/// Four containers of this test and three foreign objects:
/// - `live`: props in the props dir (veth + OVS port);
/// - `orphan`: applied from a file outside the props dir (veth + OVS port + host table);
/// - `busy`: likewise, but a process lives in its netns;
/// - `machine`: likewise, but its machine is registered;
/// - foreign: a netns made with `ip netns add` under an id-like name, a host link and
///   an OVS port without netprov's marks, and a protocol-77 route through that link.
///
/// `list` reports each with what it holds; `gc --dry-run` names only the orphan and
/// changes nothing; `gc` removes the orphan entirely (netns, veth, routes, host table,
/// OVS port) and nothing else; a second `gc` has nothing to do; `live` still passes
/// traffic.
#[test]
fn list_and_gc_find_orphans_by_marks_and_leave_the_rest() {
    let mut t = T::new();
    let (live, orphan, busy, machine) = (t.id(), t.id(), t.id(), t.id());
    let ovs = |iface: &str, n: u8| {
        json!({ "interfaces": { iface: { "ip4": format!("10.77.{n}.2/24"),
                                          "ovs": { "bridge": "br0", "vlan": 5, "style": "internal" } } } })
    };
    let p_live = T::write(&t.props, &live, veth(&live, 1, ovs(&format!("l{live}"), 1)));
    let mut o = ovs(&format!("l{orphan}"), 2);
    o["masquerade"] = json!(true);
    let p_orphan = T::write(&t.elsewhere, &orphan, veth(&orphan, 2, o));
    let p_busy = T::write(&t.elsewhere, &busy, veth(&busy, 3, json!({})));
    let p_machine = T::write(&t.elsewhere, &machine, veth(&machine, 4, json!({})));
    t.ok(&["apply", &p_live, &p_orphan, &p_busy, &p_machine]);
    std::fs::write(t.machines.join(&machine), "NAME=x\n").unwrap();
    let _sleeper = Bg(in_ns(&busy, "sleep", &["600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap());

    // Foreign objects, some under names netprov would use.
    let fid = t.id();
    testkit::ok("ip", &["netns", "add", &fid]);
    let flink = format!("w{fid}");
    t.o.host.ok(
        "ip",
        &[
            "link",
            "add",
            &flink,
            "type",
            "veth",
            "peer",
            "name",
            &format!("p{fid}"),
        ],
    );
    t.o.host.ok("ip", &["link", "set", &flink, "up"]);
    t.o.host.ok(
        "ip",
        &["route", "add", "10.99.0.0/24", "dev", &flink, "proto", "77"],
    );
    let fport = format!("f{fid}");
    t.o.vsctl(&[
        "add-port",
        "br0",
        &fport,
        "--",
        "set",
        "interface",
        &fport,
        "type=internal",
    ]);

    let ids = [
        live.as_str(),
        orphan.as_str(),
        busy.as_str(),
        machine.as_str(),
        fid.as_str(),
    ];
    let with_ids = |cmd: &[&'static str]| -> Vec<String> {
        cmd.iter()
            .map(|s| s.to_string())
            .chain(ids.iter().map(|s| s.to_string()))
            .collect()
    };
    let args = with_ids(&["list"]);
    let l = t.json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let e = entry(&l, &live).unwrap_or_else(|| panic!("{live} not listed: {l}"));
    assert_eq!(e["props"], json!(format!("{p_live}")), "{e}");
    assert_eq!(e["sync"]["state"], "in_sync", "{e}");
    assert_eq!(e["orphaned"], false);
    let e = entry(&l, &orphan).unwrap();
    assert_eq!(e["orphaned"], true, "{e}");
    assert!(e.get("props").is_none(), "{e}");
    assert_eq!(e["objects"]["netns"], format!("/run/netns/{orphan}"), "{e}");
    assert_eq!(
        e["objects"]["host_links"],
        json!([format!("w{orphan}")]),
        "{e}"
    );
    assert_eq!(e["objects"]["host_table"], true, "{e}");
    assert_eq!(
        e["objects"]["ovs_ports"],
        json!([format!("l{orphan}")]),
        "{e}"
    );
    assert_eq!(
        e["objects"]["host_routes"],
        json!([format!("70.2.0.2/32 dev w{orphan}")]),
        "{e}"
    );
    let e = entry(&l, &busy).unwrap();
    assert!(e["processes"].as_u64().unwrap() >= 1, "{e}");
    assert_eq!(e["orphaned"], false, "{e}");
    let e = entry(&l, &machine).unwrap();
    assert_eq!(
        (&e["running"], &e["orphaned"]),
        (&json!(true), &json!(false)),
        "{e}"
    );
    assert!(entry(&l, &fid).is_none(), "foreign netns listed: {l}");
    let unattributed = l["unattributed"].to_string();
    assert!(
        unattributed.contains(&format!("10.99.0.0/24 dev {flink}")),
        "{l}"
    );
    assert!(
        !l.to_string().contains(&fport),
        "foreign OVS port listed: {l}"
    );

    // Human output: one line per container, the orphan marked.
    let args = with_ids(&["list"]);
    let out = t.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.lines().any(
            |x| x.starts_with(&format!("{orphan}: no props, not running"))
                && x.contains("orphaned")
        ),
        "{s}"
    );
    assert!(
        s.lines().any(|x| x.starts_with(&format!(
            "{live}: props, not running, in sync; netns, 1 host link"
        ))),
        "{s}"
    );

    // A props directory that does not exist (a typo): gc refuses, nothing is touched.
    let mut args = with_ids(&["gc"]);
    args.push("--props-dir=/nonexistent/netprov".into());
    let out = t.netprov(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("refusing to collect"), "{}", text(&out));
    assert!(Path::new("/run/netns").join(&orphan).exists());

    // Dry run: names the orphan, touches nothing.
    let args = with_ids(&["gc", "--dry-run"]);
    let out = t.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(s.lines().count(), 1, "{s}");
    assert!(
        s.starts_with(&format!(
            "{orphan}: would remove netns, 1 host link, 1 route, host table, 1 OVS port"
        )),
        "{s}"
    );
    assert!(Path::new("/run/netns").join(&orphan).exists());
    assert!(t.ovs_ports().contains(&format!("l{orphan}")));

    let args = with_ids(&["gc"]);
    let g = t.json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let removed: Vec<&str> = g
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(removed, [orphan.as_str()], "{g}");
    assert!(g[0]["removed"]["netns_removed"].as_bool().unwrap(), "{g}");
    assert_eq!(g[0]["errors"], json!([]), "{g}");
    // The orphan is gone, all of it.
    assert!(!Path::new("/run/netns").join(&orphan).exists());
    assert!(!t.host_has(&["ip", "link", "show", "dev", &format!("w{orphan}")]));
    assert!(!t.host_has(&["nft", "list", "table", "inet", &format!("netprov-{orphan}")]));
    let ports = t.ovs_ports();
    assert!(!ports.contains(&format!("l{orphan}")), "{ports}");
    // Everything else is still there.
    for id in [&live, &busy, &machine] {
        assert!(Path::new("/run/netns").join(id).exists(), "{id}");
        assert!(
            t.host_has(&["ip", "link", "show", "dev", &format!("w{id}")]),
            "{id}"
        );
    }
    assert!(
        ports.contains(&format!("l{live}")) && ports.contains(&fport),
        "{ports}"
    );
    assert!(Path::new("/run/netns").join(&fid).exists());
    assert!(t.host_has(&["ip", "link", "show", "dev", &flink]));
    let r =
        t.o.host
            .ok("ip", &["route", "show", "proto", "77", "dev", &flink]);
    assert!(r.contains("10.99.0.0/24"), "{r}");
    assert!(pings(&live, "70.1.0.1"), "live container lost its network");

    // Nothing left to collect.
    let args = with_ids(&["gc"]);
    let out = t.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.stdout.is_empty(), "{}", text(&out));

    // A container whose /run/netns handle is gone while a process still holds its
    // netns (its veth host end's peer is alive elsewhere): not collected, whatever
    // holds it. Once nothing does, the netns and its veth die with it; what is left
    // (the host table) is an orphan again.
    let detached = t.id();
    let p_detached = T::write(&t.elsewhere, &detached, veth(&detached, 9, json!({})));
    t.ok(&["apply", &p_detached]);
    let holder = Bg(in_ns(&detached, "sleep", &["600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap());
    // The holder must be in before the handle goes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.json(&["list", &detached])["containers"][0]["processes"] == 0 {
        assert!(Instant::now() < deadline, "sleep never entered the netns");
        std::thread::sleep(Duration::from_millis(20));
    }
    testkit::ok("ip", &["netns", "del", &detached]);
    let l = t.json(&["list", &detached]);
    let e = entry(&l, &detached).unwrap_or_else(|| panic!("{l}"));
    assert_eq!(e["objects"]["held_elsewhere"], true, "{e}");
    assert_eq!(e["orphaned"], false, "{e}");
    let out = t.ok(&["gc", &detached]);
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(t.host_has(&["ip", "link", "show", "dev", &format!("w{detached}")]));
    drop(holder);
    // The netns goes with its last process; the kernel then removes the veth pair.
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.host_has(&["ip", "link", "show", "dev", &format!("w{detached}")]) {
        assert!(Instant::now() < deadline, "veth outlived its netns");
        std::thread::sleep(Duration::from_millis(50));
    }
    let g = t.json(&["gc", &detached]);
    assert_eq!(g[0]["id"], detached, "{g}");
    assert!(!t.host_has(&[
        "nft",
        "list",
        "table",
        "inet",
        &format!("netprov-{detached}")
    ]));

    drop(_sleeper);
    t.ok(&["destroy", &live, &busy, &machine]);
}

/// `status` of a container: host end and netns links with their addresses and
/// counters (which count the ping), its OVS port with ofport and VLAN, the ruleset and
/// host-table digests, drift against its props file.
#[test]
fn status_shows_links_counters_ports_and_drift() {
    let mut t = T::new();
    let id = t.id();
    let mut extra = json!({ "interfaces": { format!("l{id}"): { "ip4": "10.78.0.2/24",
                            "ovs": { "bridge": "br0", "vlan": 42 } } } });
    extra["nft"] = json!(
        "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n"
    );
    extra["masquerade"] = json!(true);
    let p = T::write(&t.props, &id, veth(&id, 5, extra));
    t.ok(&["apply", &p]);
    assert!(pings(&id, "70.5.0.1"));

    let s = t.json(&["status", &id]);
    let link = |name: &str| {
        s["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("no link {name}: {s}"))
            .clone()
    };
    let host = link(&format!("w{id}"));
    assert_eq!(host["side"], "host");
    assert!(
        host["addresses"].to_string().contains("70.5.0.1/31"),
        "{host}"
    );
    let wan = link("wan");
    assert_eq!(wan["side"], "netns");
    assert!(
        wan["addresses"].to_string().contains("70.5.0.2/31"),
        "{wan}"
    );
    assert!(wan["tx_packets"].as_u64().unwrap() >= 2, "{wan}");
    assert!(host["rx_packets"].as_u64().unwrap() >= 2, "{host}");
    // The OVS port (veth style, the default) is a host end too: in both lists.
    let port = s["ovs_ports"][0]["name"].as_str().unwrap().to_owned();
    assert!(port.starts_with("np-"), "{s}");
    assert_eq!(link(&port)["side"], "host");
    assert!(link(&format!("l{id}"))["addresses"]
        .to_string()
        .contains("10.78.0.2/24"));
    assert_eq!(s["ovs_ports"][0]["tag"], 42, "{s}");
    assert!(s["ovs_ports"][0]["ofport"].as_i64().unwrap() > 0, "{s}");
    assert_eq!(s["nft_digest"].as_str().unwrap().len(), 32, "{s}");
    assert_eq!(s["nft_intact"], true);
    assert_eq!(s["host_table"], true);
    assert_eq!(s["sync"]["state"], "in_sync", "{s}");

    // Drift: an address removed behind netprov's back.
    assert!(
        in_ns(&id, "ip", &["addr", "del", "70.5.0.2/31", "dev", "wan"])
            .status()
            .unwrap()
            .success()
    );
    let s = t.json(&["status", &id]);
    assert_eq!(s["sync"]["state"], "drifted", "{s}");
    assert!(
        s["sync"]["differences"].to_string().contains("70.5.0.2/31"),
        "{s}"
    );
    let out = t.ok(&["status", &id]);
    let h = String::from_utf8_lossy(&out.stdout);
    assert!(
        h.contains(&format!("{id}: OVS port {port} ofport ")) && h.contains("vlan 42"),
        "{h}"
    );
    assert!(
        h.contains(&format!("{id}: drift: address 70.5.0.2/31 on wan")),
        "{h}"
    );

    // An id with nothing: an empty status, not an error; a bad id is invalid input.
    let none = unique("n");
    let s = t.json(&["status", &none]);
    assert_eq!(s["links"], json!([]), "{s}");
    assert_eq!(s["sync"]["state"], "no_props");
    assert_eq!(t.netprov(&["status", "../x"]).status.code(), Some(2));
    // A /run/netns/<id> made by `ip netns add`: its links are not shown as netprov's.
    let foreign = t.id();
    testkit::ok("ip", &["netns", "add", &foreign]);
    let s = t.json(&["status", &foreign]);
    assert_eq!(s["links"], json!([]), "{s}");
    assert!(
        s["netns_not_ours"]
            .as_str()
            .unwrap()
            .contains("no owner mark"),
        "{s}"
    );
    t.ok(&["destroy", &id]);
}

/// What outside disruptions take away, `reconcile` puts back in one run, without
/// restarting anything: the host tables after `nft flush ruleset` (what restarting
/// nftables.service or reloading firewalld does) — port forward and masquerade work
/// again — and an OVS port whose row was deleted (a wiped OVSDB) — traffic between two
/// containers on the VLAN flows again — and an ovs-vswitchd restart (new devices). A
/// stopped container (props, no netns) is skipped and not created; an invalid props file
/// is reported and does not stop the others (exit 2); a last run finds all in sync.
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
