//! A container that runs in a user namespace on a netns netprov made (`systemd-nspawn
//! -U` with systemd ≥ 261): the netns stays owned by the host's user namespace, so the
//! container's root has no capability over it. `apply --userns` sets the two per-netns
//! sysctls that give ordinary services back what they need: `ping` works (ICMP echo
//! sockets for every group) and a service binds port 80 — while changing the network
//! (`ip addr add`) stays refused. The "container" here is a process in a fresh user
//! namespace (`unshare --user --map-root-user`) joined to the netns, which is how nspawn
//! ≥ 261 runs one.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::Bg;
use testkit::{text, HostNetns};

struct Props(PathBuf);
impl Drop for Props {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `cmd` as root of a new user namespace inside netns `ns` (the netns stays the host
/// user namespace's).
fn as_userns_root(ns: &str, cmd: &str, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"))
        .args(["--", "unshare", "--user", "--map-root-user", "--", cmd])
        .args(args);
    c
}

fn sysctl(ns: &str, key: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args(["--", "cat", &format!("/proc/sys/{}", key.replace('.', "/"))])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Tries to bind TCP port 80 and exits 0 when it could.
const BIND_80: &str = "import socket; s = socket.socket(); s.bind(('0.0.0.0', 80))";

// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn userns_root_pings_and_serves_port_80_but_cannot_change_the_network() {
    let mut host = HostNetns::new();
    let id = host.new_id("u");
    let p = Props(std::env::temp_dir().join(format!("{id}.json")));
    let write = |sysctl: &str| {
        let props = json!({ "id": id, "network": { "interfaces": {
            "wan": { "ip4": "70.12.0.2/31", "hostIp4": "70.12.0.1/31" } } },
            "sysctl": sysctl });
        std::fs::write(&p.0, props.to_string()).unwrap();
    };
    write("");
    let file = p.0.display().to_string();

    // Without the sysctls: what nspawn -U gives a container on a host-owned netns.
    let out = host.netprov(&["apply", &file]);
    assert!(out.status.success(), "{}", text(&out));
    let ping = || {
        as_userns_root(&id, "ping", &["-c1", "-W2", "70.12.0.1"])
            .output()
            .unwrap()
    };
    let o = ping();
    assert!(
        !o.status.success(),
        "ping without the sysctls: {}",
        text(&o)
    );
    let bind = || {
        as_userns_root(&id, "/usr/bin/python3", &["-c", BIND_80])
            .output()
            .unwrap()
    };
    let o = bind();
    assert!(
        !o.status.success(),
        "bind 80 without the sysctls: {}",
        text(&o)
    );
    assert!(text(&o).contains("Permission denied"), "{}", text(&o));

    let out = host.netprov(&["apply", "--userns", &file]);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("set sysctl net.ipv4.ping_group_range=0 2147483647")
            && s.contains("set sysctl net.ipv4.ip_unprivileged_port_start=0"),
        "{s}"
    );
    assert_eq!(sysctl(&id, "net.ipv4.ping_group_range"), "0 2147483647");
    assert_eq!(sysctl(&id, "net.ipv4.ip_unprivileged_port_start"), "0");
    // The host's own values are untouched (the sysctls are per netns).
    let host_range = host.ok("cat", &["/proc/sys/net/ipv4/ping_group_range"]);
    assert_ne!(
        host_range.split_whitespace().collect::<Vec<_>>(),
        ["0", "2147483647"]
    );

    let o = ping();
    assert!(o.status.success(), "ping with the sysctls: {}", text(&o));
    let o = bind();
    assert!(o.status.success(), "bind 80 with the sysctls: {}", text(&o));
    // A service on port 80 in the container, reached from the host.
    let _srv = Bg(as_userns_root(&id, "nc", &["-lk", "80"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host
        .run("nc", &["-z", "-w", "1", "70.12.0.2", "80"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "host cannot reach port 80 in the container"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The network itself stays netprov's.
    let o = as_userns_root(&id, "ip", &["addr", "add", "10.9.9.9/32", "dev", "wan"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Operation not permitted"), "{}", text(&o));

    // Re-applying changes nothing; plain check (without --userns) is in sync too.
    let out = host.netprov(&["--json", "apply", "--userns", &file]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["result"]["plan"]["steps"], json!([]), "{v}");
    assert_eq!(host.netprov(&["check", &file]).status.code(), Some(0));

    // The props' own value wins.
    write("net.ipv4.ip_unprivileged_port_start=1024");
    let out = host.netprov(&["apply", "--userns", &file]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sysctl(&id, "net.ipv4.ip_unprivileged_port_start"), "1024");
    assert_eq!(sysctl(&id, "net.ipv4.ping_group_range"), "0 2147483647");
    let o = bind();
    assert!(!o.status.success(), "{}", text(&o));

    let out = host.netprov(&["destroy", &id]);
    assert!(out.status.success(), "{}", text(&out));
}
