//! End-to-end: the container ruleset through libnftables, inside test-made netns.
//! A simulated host netns and a container netns joined by a veth (made with `ip` as
//! scaffolding); traffic is pinged/connected from the host into the container.

// Pings send 3 echo requests: "passes" = at least one reply (tolerates slow neighbour
// discovery on a loaded machine), "dropped" = none of the three answered.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netprov::model::Ruleset;
use netprov::nft::ruleset::{self, CheckError, RulesetChange, RulesetState};
use testkit::Bg;
use testkit::{unique, HostNetns};

const HOST_IP: &str = "10.77.0.1";
const CT_IP: &str = "10.77.0.2";

/// Host netns + container netns with a veth between them.
struct Topo {
    host: HostNetns,
    ct: String,
}

impl Topo {
    fn new() -> Self {
        let mut host = HostNetns::new();
        let ct = host.netns("c");
        let (host_addr, ct_addr) = (format!("{HOST_IP}/24"), format!("{CT_IP}/24"));
        host.link_netns(&ct, &unique("v"), &host_addr, &ct_addr);
        Topo { host, ct }
    }

    fn ct_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.ct)
    }

    fn ct_cmd(&self, cmd: &str, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ct))
            .arg("--")
            .arg(cmd)
            .args(args);
        c
    }

    fn ct_ok(&self, cmd: &str, args: &[&str]) -> String {
        let out = self.ct_cmd(cmd, args).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ping(&self) -> bool {
        self.host
            .run("ping", &["-c", "3", "-i", "0.2", "-W", "1", CT_IP])
            .status
            .success()
    }

    /// TCP connect from the host to the container's port, retried briefly (the
    /// listener may still be starting).
    fn tcp(&self, port: u16) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let p = port.to_string();
            if self
                .host
                .run("nc", &["-z", "-w", "1", CT_IP, &p])
                .status
                .success()
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn rs(text: &str) -> Ruleset {
    Ruleset {
        text: text.to_owned(),
    }
}

const DROP_ICMP: &str = "table inet filter {
  chain input {
    type filter hook input priority 0; policy accept;
    meta l4proto icmp drop
  }
}
";
const ALLOW_A: &str = "table inet filter {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 9999 drop
    counter
  }
}
";
const ALLOW_B: &str = "table inet filter {
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport 9998 drop
  }
}
table ip extra { }
";

fn listing(t: &Topo) -> String {
    t.ct_ok("nft", &["list", "ruleset"])
}

#[test]
fn icmp_drop_then_allow_and_noop() {
    let t = Topo::new();
    let ns = t.ct_path();
    assert_eq!(ruleset::observe(&ns).unwrap(), RulesetState::Absent);
    let _nc = Bg(t
        .ct_cmd("nc", &["-lk", "8080"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap());
    assert!(t.ping());

    let drop = rs(DROP_ICMP);
    ruleset::check_syntax(&drop.text).unwrap();
    assert_eq!(
        ruleset::plan(Some(&drop), &ruleset::observe(&ns).unwrap()),
        Some(RulesetChange::Load { drifted: false })
    );
    ruleset::load(&ns, &drop).unwrap();
    assert!(!t.ping(), "ICMP must be dropped");
    assert!(t.tcp(8080), "TCP must still pass");

    let st = ruleset::observe(&ns).unwrap();
    assert!(st.is_intact(), "{st:?}");
    assert_eq!(
        ruleset::plan(Some(&drop), &st),
        None,
        "unchanged ruleset is a no-op"
    );

    let allow = rs(ALLOW_A);
    assert_eq!(
        ruleset::plan(Some(&allow), &st),
        Some(RulesetChange::Load { drifted: false })
    );
    ruleset::load(&ns, &allow).unwrap();
    assert!(t.ping(), "ICMP allowed again");
    assert!(!listing(&t).contains("icmp"), "old ruleset replaced");
    // Counters change with traffic; the ruleset is still "intact".
    assert!(t.tcp(8080));
    assert_eq!(
        ruleset::plan(Some(&allow), &ruleset::observe(&ns).unwrap()),
        None
    );
}

#[test]
fn reload_many_times_loses_no_ping() {
    let t = Topo::new();
    let ns = t.ct_path();
    ruleset::load(&ns, &rs(ALLOW_A)).unwrap();
    let mut ping = Bg(t
        .host
        .cmd(
            "ping",
            &["-q", "-i", "0.01", "-W", "1", "-c", "1500", CT_IP],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    std::thread::sleep(Duration::from_millis(200));
    let (a, b) = (rs(ALLOW_A), rs(ALLOW_B));
    let start = Instant::now();
    for i in 0..200 {
        ruleset::load(&ns, if i % 2 == 0 { &b } else { &a }).unwrap();
    }
    eprintln!("200 loads took {:?}", start.elapsed());
    assert!(
        ping.0.try_wait().unwrap().is_none(),
        "ping ended before the loads did; raise -c"
    );
    let out = std::mem::replace(&mut ping.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1500 packets transmitted, 1500 received"),
        "losses during reloads: {text}"
    );
}

#[test]
fn syntax_error_reports_line_and_keeps_live_ruleset() {
    let t = Topo::new();
    let ns = t.ct_path();
    ruleset::load(&ns, &rs(DROP_ICMP)).unwrap();
    let before = listing(&t);
    let bad = rs("table inet filter {\n  chain input {\n    type filter hook input priority 0;\n    ip saddr 10.0.0.1 frobnicate\n  }\n}\n");
    match ruleset::check_syntax(&bad.text) {
        Err(CheckError::Syntax(e)) => {
            assert_eq!(e.line, Some(4), "{e}");
            assert!(e.message.contains("Error"), "{e}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let err = ruleset::load(&ns, &bad).unwrap_err();
    assert!(err.to_string().contains(":4:"), "{err}");
    assert_eq!(listing(&t), before, "live ruleset unchanged");
    assert!(ruleset::observe(&ns).unwrap().is_intact());
    assert!(!t.ping());
}

#[test]
fn edit_behind_our_back_is_drift_and_remove_flushes() {
    let t = Topo::new();
    let ns = t.ct_path();
    let r = rs(ALLOW_A);
    ruleset::load(&ns, &r).unwrap();
    assert!(ruleset::observe(&ns).unwrap().is_intact());
    t.ct_ok(
        "nft",
        &[
            "add", "rule", "inet", "filter", "input", "meta", "l4proto", "icmp", "drop",
        ],
    );
    let st = ruleset::observe(&ns).unwrap();
    assert!(!st.is_intact(), "{st:?}");
    assert_eq!(
        ruleset::plan(Some(&r), &st),
        Some(RulesetChange::Load { drifted: true })
    );
    ruleset::load(&ns, &r).unwrap();
    assert!(ruleset::observe(&ns).unwrap().is_intact());
    assert!(t.ping());

    // `nft` removed from the props.
    let st = ruleset::observe(&ns).unwrap();
    assert_eq!(ruleset::plan(None, &st), Some(RulesetChange::Remove));
    ruleset::remove(&ns).unwrap();
    assert_eq!(ruleset::observe(&ns).unwrap(), RulesetState::Absent);
    assert_eq!(listing(&t).trim(), "");
    assert_eq!(ruleset::plan(None, &RulesetState::Absent), None);
}

#[test]
fn check_syntax_with_interface_names() {
    let text = "table netdev t {\n  chain c {\n    type filter hook ingress device lan priority 0;\n  }\n}\ntable inet f {\n  chain i {\n    type filter hook input priority 0;\n    iif lan accept\n  }\n}\n";
    match ruleset::check_syntax(text) {
        Err(CheckError::Syntax(e)) => assert!(e.line.is_some(), "{e}"),
        other => panic!("unknown interface must fail: {other:?}"),
    }
    let lan = netprov::model::IfName::new("lan").unwrap();
    ruleset::check_syntax_with_interfaces(text, &[lan]).unwrap();
}

#[test]
fn check_syntax_touches_no_real_ruleset() {
    let t = Topo::new();
    // A valid check in a scratch netns: the container (and this process's netns) keep
    // their rulesets.
    ruleset::check_syntax(DROP_ICMP).unwrap();
    assert_eq!(listing(&t).trim(), "");
    assert!(t.ping());
}

/// Loads from several threads into two netns at once: the global lock keeps
/// libnftables' process-wide interface cache from leaking between netns. Both netns
/// have an `eth0` with different ifindexes; `iif eth0` must resolve in each one's own.
#[test]
fn concurrent_loads_in_different_netns_stay_separate() {
    let a = Topo::new();
    let b = Topo::new();
    // Give b an eth0 with another ifindex: rename its veth away, a new link takes the name.
    b.ct_ok("ip", &["link", "set", "eth0", "down"]);
    b.ct_ok("ip", &["link", "set", "eth0", "name", "ethx"]);
    b.ct_ok(
        "ip",
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "padp",
        ],
    );
    let idx = |t: &Topo| {
        let l = t.ct_ok("ip", &["-o", "link", "show", "eth0"]);
        l.split(':').next().unwrap().to_owned()
    };
    assert_ne!(idx(&a), idx(&b));
    let text = |n: u32| {
        format!("table inet f {{\n  chain i {{\n    type filter hook input priority 0;\n    iif eth0 tcp dport {n} drop\n  }}\n}}\n")
    };
    let paths = [a.ct_path(), b.ct_path()];
    let threads: Vec<_> = (0..4u32)
        .map(|k| {
            let p = paths[(k % 2) as usize].clone();
            let r = rs(&text(1000 + k));
            std::thread::spawn(move || {
                for _ in 0..15 {
                    ruleset::load(&p, &r).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for t in [&a, &b] {
        let l = listing(t);
        assert!(
            l.contains("iif \"eth0\""),
            "iif resolved in the wrong netns: {l}"
        );
        assert!(ruleset::observe(&t.ct_path()).unwrap().is_intact());
    }
}
