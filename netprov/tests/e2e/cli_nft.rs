//! End-to-end through the `netprov` binary: the container's nftables ruleset and the
//! host rules netprov generates, in a simulated host netns.
//!
//! Topology: netprov makes the container netns and its veth (`eth0`, host end `hve`);
//! the test scaffolds an "outside" netns on a second host veth:
//!   container ── eth0 10.78.0.2/24 ═ hve 10.78.0.1/24 ── host ── 192.168.78.1/24 ═ outside 192.168.78.2/24
//! The outside has no route to 10.78.0.0/24: it can answer the container only when the
//! host masquerades it.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::{in_ns as nscmd, ns_ok as nsok, Bg, PropsDir};
use testkit::{ok, text, unique, HostNetns};

const CT_IP: &str = "10.78.0.2";
const HOST_IP: &str = "10.78.0.1";
const HOST_OUT_IP: &str = "192.168.78.1";
const OUT_IP: &str = "192.168.78.2";

const DROP_ICMP: &str = "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    meta l4proto icmp drop\n  }\n}\n";
const ALLOW_ICMP: &str = "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    meta l4proto icmp accept\n  }\n}\n";

struct T {
    host: HostNetns,
    id: String,
    out: String,
    hve: String,
    dir: PropsDir,
}

impl T {
    fn new() -> Self {
        let mut host = HostNetns::new();
        let id = host.new_id("n");
        let out = host.netns("o");
        let (host_out, out_addr) = (format!("{HOST_OUT_IP}/24"), format!("{OUT_IP}/24"));
        host.link_netns(&out, &unique("vo"), &host_out, &out_addr);
        host.ok("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        T {
            host,
            hve: unique("hv"),
            id,
            out,
            dir: PropsDir::new(),
        }
    }

    /// Writes the props (with `extra` merged into `network`) and returns the path.
    fn props(&self, extra: Value) -> String {
        let mut network = json!({
            "interfaces": { "eth0": {
                "ip4": format!("{CT_IP}/24"), "hostIp4": format!("{HOST_IP}/24"),
                "hostName": self.hve } },
            "ip4route": HOST_IP,
        });
        for (k, v) in extra.as_object().unwrap() {
            network[k] = v.clone();
        }
        let p: PathBuf = self.dir.0.join(format!("{}.json", self.id));
        std::fs::write(&p, json!({ "id": self.id, "network": network }).to_string()).unwrap();
        p.display().to_string()
    }

    fn netprov(&self, args: &[&str]) -> Output {
        self.host.netprov(args)
    }

    fn apply(&self, extra: Value) -> Output {
        let p = self.props(extra);
        let o = self.netprov(&["apply", &p]);
        assert!(o.status.success(), "apply: {}", text(&o));
        o
    }

    fn ruleset(&self) -> String {
        nsok(&self.id, "nft", &["list", "ruleset"])
    }

    fn host_ping(&self) -> bool {
        self.host
            .cmd("ping", &["-c", "3", "-i", "0.2", "-W", "1", CT_IP])
            .output()
            .unwrap()
            .status
            .success()
    }

    fn ct_ping(&self, src: &str, dst: &str) -> bool {
        testkit::ping_from(&self.id, src, dst)
    }

    fn host_tables(&self) -> String {
        self.host.ok("nft", &["list", "tables"])
    }
}

// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn container_ruleset_through_the_cli() {
    let t = T::new();
    let nft = json!({ "nft": DROP_ICMP });
    let o = t.apply(nft.clone());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("load nftables ruleset in netns {} (sha256 ", t.id)),
        "{out}"
    );
    assert!(t.ruleset().contains("icmp drop"), "{}", t.ruleset());
    // ICMP dropped, TCP passes.
    let _nc = Bg(nscmd(&t.id, "nc", &["-lk", "7000"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap());
    assert!(!t.host_ping(), "ICMP is dropped");
    assert!(
        eventually(t.host.cmd("nc", &["-z", "-w", "1", CT_IP, "7000"])),
        "TCP still reaches the listener"
    );

    // Re-apply unchanged: empty plan, zero messages.
    let p = t.props(nft.clone());
    let o = t.netprov(&["--json", "apply", &p]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["result"]["plan"]["steps"], json!([]), "{v}");
    assert_eq!(v[0]["result"]["messages"], 0, "{v}");
    let o = t.netprov(&["check", &p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Swap to a ruleset that allows ICMP.
    t.apply(json!({ "nft": ALLOW_ICMP }));
    assert!(t.host_ping(), "ICMP allowed after the swap");
    assert!(!t.ruleset().contains("icmp drop"));

    // A syntax error: exit 2 with libnftables' line, for every command; nothing touched.
    let before = t.ruleset();
    let bad = t.props(json!({ "nft": "table inet filter {\n  chain input {\n    type filter hook input priority 0;\n    meta l4proto icmp dropp\n  }\n}\n" }));
    for cmd in ["validate", "plan", "apply", "check"] {
        let o = t.netprov(&[cmd, &bad]);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("network.nft"), "{cmd}: {err}");
        assert!(err.contains("line 4"), "{cmd}: {err}");
    }
    assert_eq!(t.ruleset(), before, "live ruleset unchanged");

    // Drift behind netprov's back: check exits 3 and says so; apply repairs it.
    let p = t.props(json!({ "nft": ALLOW_ICMP }));
    nsok(
        &t.id,
        "nft",
        &[
            "add", "rule", "inet", "filter", "input", "tcp", "dport", "7000", "drop",
        ],
    );
    let o = t.netprov(&["check", &p]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("modified behind netprov's back"),
        "{}",
        text(&o)
    );
    let o = t.apply(json!({ "nft": ALLOW_ICMP }));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("reload nftables ruleset"),
        "{}",
        text(&o)
    );
    assert!(!t.ruleset().contains("dport 7000"));
    let o = t.netprov(&["check", &p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Removing `nft` from the props removes the ruleset.
    let o = t.apply(json!({}));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("remove nftables ruleset"),
        "{}",
        text(&o)
    );
    assert!(!t.ruleset().contains("table"), "{}", t.ruleset());
    let p = t.props(json!({}));
    let o = t.netprov(&["destroy", &p]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!PathBuf::from("/run/netns").join(&t.id).exists());
}

#[test]
fn host_rules_through_the_cli() {
    let t = T::new();
    t.host.ok(
        "nft",
        &["add table inet foreign { chain input { type filter hook input priority 0; policy accept; counter; }; }"],
    );
    let foreign = || {
        let l = t.host.ok("nft", &["list", "table", "inet", "foreign"]);
        assert!(l.contains("chain input"), "{l}");
    };
    let table = format!("table inet netprov-{}", t.id);
    let extra = json!({
        "masquerade": true,
        "forwards": [ { "proto": "tcp", "hostPort": 80, "port": 8080 } ],
    });
    let o = t.apply(extra.clone());
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(&format!("install host rules {table} in host netns")),
        "{}",
        text(&o)
    );
    assert!(t.host_tables().contains(&table));
    foreign();

    // Anti-spoofing (on by default): a source that is not the container's is dropped.
    assert!(t.ct_ping(CT_IP, HOST_IP), "own source passes");
    nsok(
        &t.id,
        "ip",
        &["addr", "add", "10.78.0.99/24", "dev", "eth0"],
    );
    assert!(!t.ct_ping("10.78.0.99", HOST_IP), "spoofed source dropped");
    nsok(
        &t.id,
        "ip",
        &["addr", "del", "10.78.0.99/24", "dev", "eth0"],
    );

    // Masquerade: the outside (no route back) answers the container.
    assert!(t.ct_ping(CT_IP, OUT_IP), "masqueraded egress");
    // Port forward: outside → host:80 → container:8080.
    let _nc = Bg(nscmd(&t.id, "nc", &["-lk", "8080"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap());
    assert!(
        eventually(nscmd(&t.out, "nc", &["-z", "-w", "1", HOST_OUT_IP, "80"])),
        "forward reaches the listener"
    );

    // Unchanged: nothing to do.
    let p = t.props(extra);
    let o = t.netprov(&["--json", "apply", &p]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["result"]["plan"]["steps"], json!([]), "{v}");

    // No masquerade any more: replaced in place; the outside gets no answer.
    let o = t.apply(json!({ "forwards": [ { "proto": "tcp", "hostPort": 80, "port": 8080 } ] }));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("replace host rules {table}")),
        "{}",
        text(&o)
    );
    assert!(!t.ct_ping(CT_IP, OUT_IP), "no masquerade");
    foreign();

    // Destroy by id removes the host table (and twice is fine); foreign tables stay.
    for _ in 0..2 {
        let o = t.netprov(&["destroy", &t.id]);
        assert!(o.status.success(), "{}", text(&o));
    }
    assert!(!t.host_tables().contains(&table), "{}", t.host_tables());
    foreign();
}

#[test]
fn adopted_netns_keeps_its_foreign_ruleset_and_loses_only_netprovs_tables_on_destroy() {
    let t = T::new();
    // An existing netns (adopted through netns_path), with a ruleset of its own.
    ok("ip", &["netns", "add", &t.id]);
    nsok(&t.id, "nft", &["add table inet theirs"]);
    let path = format!("/run/netns/{}", t.id);
    let p = t.props(json!({ "netns_path": path }));
    let o = t.netprov(&["apply", &p]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        t.ruleset().contains("table inet theirs"),
        "untouched without nft"
    );
    t.apply(json!({ "netns_path": path, "nft": DROP_ICMP }));
    assert!(t.ruleset().contains("icmp drop"));
    assert!(
        t.ruleset().contains("table inet theirs"),
        "no flush ruleset in an adopted netns: {}",
        t.ruleset()
    );
    assert!(!t.host_ping());
    let o = t.netprov(&["destroy", &p]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        PathBuf::from(&path).exists(),
        "an adopted netns is never removed"
    );
    let rs = t.ruleset();
    assert!(
        rs.contains("table inet theirs")
            && !rs.contains("table inet filter")
            && !rs.contains("netprov_state"),
        "only netprov's tables removed: {rs}"
    );
}

/// Retries for up to 3 s (a listener may still be starting).
fn eventually(cmd: Command) -> bool {
    testkit::eventually(cmd, Duration::from_secs(3))
}
