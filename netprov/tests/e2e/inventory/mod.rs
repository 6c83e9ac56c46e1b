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
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::ovs::Ovs;
use testkit::{in_ns, Bg};
use testkit::{text, unique};

mod gc;
mod reconcile;
mod status;

fn pings(ns: &str, addr: &str) -> bool {
    in_ns(ns, "ping", &["-c", "2", "-i", "0.2", "-W", "2", addr])
        .output()
        .unwrap()
        .status
        .success()
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
        self.o.host.new_id("i")
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

/// Retries a command for up to 5 s (a listener may still be starting).
fn eventually(cmd: Command) -> bool {
    testkit::eventually(cmd, Duration::from_secs(5))
}
