//! End-to-end through the `netprov` binary: the host table `inet netprov-<id>` is
//! compared by content (any edit is drift, one apply repairs it) and scales to hundreds
//! of veths per container.
//!
//! Topology: netprov makes the container netns and its veths; the test only tampers
//! with the host table using `nft` inside the simulated host netns.

use std::process::Output;

use serde_json::{json, Value};
use testkit::{ns_ok as nsok, ping_from as ping, PropsDir};
use testkit::{ok, text, unique, HostNetns};

const CT_IP: &str = "10.78.0.2";
const HOST_IP: &str = "10.78.0.1";
const SPOOF_IP: &str = "10.78.0.99";

struct T {
    host: HostNetns,
    id: String,
    dir: PropsDir,
}

impl T {
    fn new() -> Self {
        let mut host = HostNetns::new();
        let id = host.new_id("n");
        let dir = PropsDir::new();
        T { host, id, dir }
    }

    fn table(&self) -> String {
        format!("netprov-{}", self.id)
    }

    fn props(&self, interfaces: Value) -> String {
        let p = self.dir.0.join(format!("{}.json", self.id));
        let v = json!({ "id": self.id, "network": { "interfaces": interfaces } });
        std::fs::write(&p, v.to_string()).unwrap();
        p.display().to_string()
    }

    fn netprov(&self, args: &[&str]) -> Output {
        self.host.netprov(args)
    }

    fn nft(&self, script: &str) {
        self.host.ok("nft", &[script]);
    }

    /// Handles of the rules of `chain` in netprov's table, in order.
    fn rule_handles(&self, chain: &str) -> Vec<String> {
        let l = self.host.ok(
            "nft",
            &["-a", "list", "chain", "inet", &self.table(), chain],
        );
        l.lines()
            .filter(|l| !l.contains("chain ") && l.contains("# handle "))
            .map(|l| l.rsplit("# handle ").next().unwrap().trim().to_owned())
            .collect()
    }

    fn check(&self, p: &str) -> Output {
        self.netprov(&["check", p])
    }
}

/// Every kind of edit of netprov's host table, the words `check` must use for it.
fn tampers(t: &T, hve: &str) -> Vec<(&'static str, String, String)> {
    let tb = format!("inet {}", t.table());
    let last = t.rule_handles("spoof").pop().unwrap();
    vec![
        (
            "flushed chain",
            format!("flush chain {tb} spoof"),
            "chain spoof has 0 rules, want 6".into(),
        ),
        (
            "deleted rule",
            format!("delete rule {tb} spoof handle {last}"),
            "chain spoof has 5 rules, want 6".into(),
        ),
        (
            "added rule",
            format!("insert rule {tb} spoof accept"),
            "chain spoof has 7 rules, want 6".into(),
        ),
        (
            "added set element",
            format!("add element {tb} links-v4 {{ \"{hve}\" . {SPOOF_IP} }}"),
            format!("set links-v4: 1 elements not netprov's (e.g. \"{hve}\" . {SPOOF_IP})"),
        ),
        (
            "deleted set element",
            format!("delete element {tb} links-v4 {{ \"{hve}\" . {CT_IP} }}"),
            format!("set links-v4: 1 elements missing (e.g. \"{hve}\" . {CT_IP})"),
        ),
        (
            "changed set element",
            format!(
                "delete element {tb} links {{ \"{hve}\" }}; add element {tb} links {{ \"x{hve}\" }}"
            ),
            format!("set links: 1 elements missing (e.g. \"{hve}\")"),
        ),
        (
            "deleted chain",
            format!("flush chain {tb} spoof; delete chain {tb} spoof"),
            "chain spoof missing".into(),
        ),
        (
            "deleted set",
            format!("flush chain {tb} spoof; delete set {tb} links"),
            "set links missing".into(),
        ),
        (
            "added chain",
            format!(
                "add chain {tb} evil {{ type filter hook prerouting priority -400; policy accept; }}"
            ),
            "holds 5 chains/sets/objects, netprov generates 4".into(),
        ),
        (
            "added chain with rules",
            format!("add chain {tb} evil; add rule {tb} evil accept"),
            "chain evil is not netprov's (1 rules)".into(),
        ),
        (
            "changed chain policy",
            format!(
                "add chain {tb} spoof {{ type filter hook prerouting priority -300; policy drop; }}"
            ),
            "chain spoof is `type filter hook 0 prio -300 policy 0`".into(),
        ),
        (
            "dormant table",
            format!("add table {tb} {{ flags dormant; }}"),
            "table flags are 0x1 (dormant), want 0x0".into(),
        ),
        (
            "deleted table",
            format!("delete table {tb}"),
            format!("host rules table inet {}: missing", t.table()),
        ),
    ]
}

#[test]
fn any_edit_of_the_host_table_is_drift_and_one_apply_repairs_it() {
    let t = T::new();
    let hve = unique("hv");
    let p = t.props(json!({ "eth0": {
        "ip4": format!("{CT_IP}/24"), "hostIp4": format!("{HOST_IP}/24"), "hostName": hve } }));
    let o = t.netprov(&["apply", &p]);
    assert!(o.status.success(), "apply: {}", text(&o));
    let o = t.check(&p);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A comment on a rule (and the new handle its replacement gets) is not drift.
    let h = t.rule_handles("spoof")[4].clone();
    t.nft(&format!(
        "replace rule inet {} spoof handle {h} iifname @links meta nfproto ipv4 drop comment \"seen\"",
        t.table()
    ));
    let o = t.check(&p);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a comment is no drift: {}",
        text(&o)
    );
    let o = t.netprov(&["--json", "apply", &p]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["result"]["messages"], 0, "{v}");

    let n = tampers(&t, &hve).len();
    for i in 0..n {
        // Handles change with every apply: build the edit against the current table.
        let (what, script, words) = tampers(&t, &hve).swap_remove(i);
        t.nft(&script);
        let o = t.check(&p);
        assert_eq!(o.status.code(), Some(3), "{what}: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(&format!("host rules table inet {}", t.table())) && out.contains(&words),
            "{what}: want {words:?} in: {}",
            text(&o)
        );
        let o = t.netprov(&["apply", &p]);
        assert!(o.status.success(), "{what}: apply: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("host rules table"),
            "{what}: {}",
            text(&o)
        );
        let o = t.check(&p);
        assert_eq!(o.status.code(), Some(0), "{what}: {}", text(&o));

        // Anti-spoofing works again: own source passes, a spoofed one is dropped.
        assert!(ping(&t.id, CT_IP, HOST_IP), "{what}: own source passes");
        nsok(
            &t.id,
            "ip",
            &["addr", "add", &format!("{SPOOF_IP}/24"), "dev", "eth0"],
        );
        let spoofed = ping(&t.id, SPOOF_IP, HOST_IP);
        nsok(
            &t.id,
            "ip",
            &["addr", "del", &format!("{SPOOF_IP}/24"), "dev", "eth0"],
        );
        assert!(!spoofed, "{what}: spoofed source dropped after the repair");
    }
    let o = t.netprov(&["destroy", &p]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!t.host.ok("nft", &["list", "tables"]).contains(&t.table()));
}

/// The i-th link's /31: host end 10.80.x.2i, container 10.80.x.2i+1.
fn link_ips(i: usize) -> (String, String) {
    let n = 2 * i;
    let ip = |k: usize| format!("10.80.{}.{}", k / 256, k % 256);
    (ip(n), ip(n + 1))
}

#[test]
fn five_hundred_veths_with_anti_spoofing() {
    const N: usize = 500;
    let t = T::new();
    let prefix = unique("h");
    let host_if = |i: usize| format!("{prefix}-{i}");
    let mut ifs = serde_json::Map::new();
    for i in 0..N {
        let (h, c) = link_ips(i);
        ifs.insert(
            format!("eth{i}"),
            json!({ "ip4": format!("{c}/31"), "hostIp4": format!("{h}/31"), "hostName": host_if(i) }),
        );
    }
    let p = t.props(Value::Object(ifs));
    let o = t.netprov(&["apply", &p]);
    assert!(o.status.success(), "apply: {}", text(&o));
    let o = t.check(&p);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let l = t
        .host
        .ok("nft", &["list", "set", "inet", &t.table(), "links-v4"]);
    assert_eq!(l.matches(" . 10.80.").count(), N, "{l}");

    for i in [0, N - 1] {
        let (h, c) = link_ips(i);
        assert!(ping(&t.id, &c, &h), "container → host on link {i}");
        let ok = t
            .host
            .cmd("ping", &["-c", "3", "-i", "0.2", "-W", "1", &c])
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "host → container on link {i}");
    }
    // Re-apply unchanged: zero messages.
    let o = t.netprov(&["--json", "apply", &p]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["result"]["messages"], 0, "{v}");

    // The first link's address sent out of the last link is dropped (the route
    // netprov made to the first host end is redirected; destroy follows).
    let (h0, c0) = link_ips(0);
    let via_last = format!("eth{}", N - 1);
    nsok(
        &t.id,
        "ip",
        &["route", "replace", &format!("{h0}/32"), "dev", &via_last],
    );
    assert!(
        !ping(&t.id, &c0, &h0),
        "link 0's source sent on {via_last} is dropped"
    );

    let o = t.netprov(&["destroy", &p]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!t.host.ok("nft", &["list", "tables"]).contains(&t.table()));
    let links = t.host.ok("ip", &["-o", "link", "show"]);
    assert!(!links.contains(&format!("{prefix}-")), "{links}");
    assert!(!ok("ip", &["netns", "list"]).contains(&t.id));
}
