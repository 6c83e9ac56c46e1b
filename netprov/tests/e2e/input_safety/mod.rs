//! Unsafe input is refused before any change (issue 12), end to end in a simulated host
//! netns: every validation gap exits 2 with its JSON path and leaves the host netns as
//! it was; an existing-link interface cannot take another owner's link; `include` in a
//! ruleset is refused without reading the file; a props path that is not a regular file
//! exits 2 at once; a closed stdout or a full stderr does not stop the work.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::PropsDir as Dir;
use testkit::{text, unique, HostNetns};

mod existing_links;
mod files;
mod validation;

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A veth container `id` with addresses from block `n`, and a macvlan on `wan`.
fn props(id: &str, n: u8) -> Value {
    json!({
        "id": id,
        "network": {
            "interfaces": { "wan": {
                "ip4": format!("10.78.{n}.2/31"), "hostIp4": format!("10.78.{n}.3/31"),
                "ip6": format!("fd78:{n}::a/127"), "hostIp6": format!("fd78:{n}::b/127"),
                "macvlan": { "ip4": format!("10.79.{n}.2/24") }
            }},
            "ip4route": format!("10.78.{n}.3"),
            "forwards": [ { "proto": "tcp", "hostPort": 8080, "port": 80 } ]
        },
        "sysctl": { "net.ipv4.ip_forward": 1 }
    })
}

/// What a test's host netns holds: links, routes, ruleset, and whether the container's
/// netns handle exists.
fn snapshot(host: &HostNetns, id: &str) -> String {
    testkit::host::dad_settled(&host.name);
    let mut s = String::new();
    for args in [
        &["-o", "link"][..],
        &["-o", "addr"],
        &["-4", "route", "show", "table", "all"],
        &["-6", "route", "show", "table", "all"],
    ] {
        s += &host.ok("ip", args);
    }
    s += &host.ok("nft", &["list", "ruleset"]);
    s += &format!(
        "handle {id}: {}\n",
        Path::new("/run/netns").join(id).exists()
    );
    s
}

/// Runs `netprov args` in `host`, killing it after a generous guard so a hang fails the
/// test instead of blocking CI (the guard is no timing assertion: every case here ends
/// in milliseconds).
fn netprov_guarded(host: &HostNetns, args: &[&str]) -> Output {
    let bin = testkit::netprov_bin();
    let mut child = host
        .cmd(bin.to_str().unwrap(), args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_guarded(&mut child, args);
    child.wait_with_output().unwrap()
}

fn wait_guarded(child: &mut Child, what: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("netprov {what:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The JSON paths of a `--json` validation failure.
fn error_paths(o: &Output) -> Vec<String> {
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)));
    v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {}", text(o)))
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect()
}

/// `base.key` or `base["key"]`, as netprov writes JSON paths.
fn key_path(base: &str, key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        format!("{base}.{key}")
    } else {
        format!("{base}[{}]", Value::from(key))
    }
}
