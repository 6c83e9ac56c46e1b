//! Whose netns it is, end to end through the `netprov` binary in a simulated host netns:
//! the owner mark on `/run/netns/<id>`, foreign and symlinked handles, the host netns as
//! `netns_path`, and what netprov may touch in an adopted netns (nftables tables,
//! routes, addresses, links).
//!
//! Only namespaces made here are changed. The one look at the real host
//! (`/proc/1/ns/net`) is `netprov validate`, which reads inode numbers and nothing else.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::{ns_ok as ns, PropsDir as Dir};
use testkit::{ok, text, unique, HostNetns};

const RULES_A: &str = "table inet mine {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    meta l4proto icmp accept\n  }\n}\n";
const RULES_B: &str = "table inet mine2 {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    tcp dport 9 drop\n  }\n}\n";

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

mod adopted;
mod marks;
mod refusals;

/// Removes a path (a planted symlink) on drop.
struct Unlink(PathBuf);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A veth container with addresses from block `n`; `extra` is merged into `network`.
fn props(id: &str, host_end: &str, n: u8, extra: Value) -> Value {
    let mut network = json!({
        "interfaces": { "wan": {
            "ip4": format!("10.79.{n}.2/31"), "hostIp4": format!("10.79.{n}.3/31"),
            "hostName": host_end } },
        "routes": [ { "to": format!("10.80.{n}.0/24"), "via": format!("10.79.{n}.3") } ]
    });
    for (k, v) in extra.as_object().unwrap() {
        network[k] = v.clone();
    }
    json!({ "id": id, "network": network })
}

/// Everything in a netns netprov could touch, as text: links (with aliases),
/// addresses, routes of every protocol, the nftables ruleset. Taken once IPv6 duplicate
/// address detection has settled: it changes address flags (and adds local routes) on
/// its own a moment after a link comes up, later under load.
fn snapshot(name: &str) -> String {
    testkit::host::dad_settled(name);
    [
        ns(name, "ip", &["-d", "-o", "link", "show"]),
        ns(name, "ip", &["-o", "addr", "show"]),
        ns(name, "ip", &["route", "show", "table", "all"]),
        ns(name, "ip", &["-6", "route", "show", "table", "all"]),
        ns(name, "nft", &["list", "ruleset"]),
    ]
    .join("\n")
}

fn host_snapshot(host: &HostNetns) -> String {
    testkit::host::dad_settled(&host.name);
    [
        host.ok("ip", &["-d", "-o", "link", "show"]),
        host.ok("ip", &["-o", "addr", "show"]),
        host.ok("ip", &["route", "show", "table", "all"]),
        host.ok("nft", &["list", "ruleset"]),
    ]
    .join("\n")
}

/// A foreign netns's own links: lo up and a veth pair `fa` (10.66.0.1/24) / `fb`, both
/// up. Returns once the kernel has finished bringing them up (carrier seen, operstate
/// UP, IPv6 link-local addresses added): that happens asynchronously (linkwatch, delayed
/// up to 1 s under load), and a snapshot taken in between would differ from a later one.
fn foreign_veths(name: &str) {
    ns(name, "ip", &["link", "set", "lo", "up"]);
    ns(
        name,
        "ip",
        &["link", "add", "fa", "type", "veth", "peer", "name", "fb"],
    );
    ns(name, "ip", &["addr", "add", "10.66.0.1/24", "dev", "fa"]);
    ns(name, "ip", &["link", "set", "fa", "up"]);
    ns(name, "ip", &["link", "set", "fb", "up"]);
    testkit::wait_until(Duration::from_secs(10), "fa and fb up", || {
        let links = ns(name, "ip", &["-o", "link", "show"]);
        let addrs = ns(name, "ip", &["-o", "-6", "addr", "show", "scope", "link"]);
        ["fa", "fb"].iter().all(|l| {
            links
                .lines()
                .any(|x| x.contains(&format!(" {l}@")) && x.contains("state UP"))
                && addrs.lines().any(|x| x.contains(&format!(" {l} ")))
        })
    });
}

fn lo_alias(name: &str) -> String {
    ns(name, "ip", &["-o", "link", "show", "lo"])
}
