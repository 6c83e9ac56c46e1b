//! Sysctls through a procfs instance of netprov's own (`kernel/procsys.rs`) and
//! through `/proc/sys` give the same result: for each mode (`NETPROV_PROCFS`), a
//! container's sysctls — a plain key, a per-interface key, a multi-value key, an `all`
//! key — are written, read back by `sysctl` inside the container, reported as drift by
//! `check` when changed behind netprov's back and repaired by one apply; a key the
//! kernel lacks is refused (exit 2) before anything is made. A process that applies
//! more containers than one instance serves (16) sets every one of them.

use std::path::PathBuf;
use std::process::Output;

use serde_json::json;
use testkit::{text, unique, HostNetns};

const SYSCTLS: [(&str, &str); 4] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.eth0.forwarding", "1"),
    ("net.ipv4.tcp_rmem", "4096 131072 6291456"),
    ("net.ipv4.conf.all.rp_filter", "2"),
];

struct Env {
    host: HostNetns,
    dir: PathBuf,
    mode: &'static str,
}

impl Env {
    fn new(mode: &'static str) -> Env {
        let dir = std::env::temp_dir().join(unique("procfs"));
        std::fs::create_dir_all(&dir).unwrap();
        Env {
            host: HostNetns::new(),
            dir,
            mode,
        }
    }

    fn netprov(&self, args: &[&str]) -> Output {
        let bin = testkit::netprov_bin();
        let mut c = self.host.cmd(bin.to_str().unwrap(), args);
        c.env("NETPROV_PROCFS", self.mode);
        c.output().unwrap()
    }

    fn props(&mut self, i: usize, sysctls: &[(&str, &str)]) -> (String, String) {
        let id = self.host.new_id("pf");
        let text: String = sysctls.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let p = self.dir.join(format!("{id}.json"));
        let v = json!({ "id": id, "network": { "interfaces": { "eth0": {
            "ip4": format!("10.77.{i}.3/31"), "hostIp4": format!("10.77.{i}.2/31"),
            "ip6": format!("fd77::{i:x}:3/127"), "hostIp6": format!("fd77::{i:x}:2/127"),
            "hostName": format!("pf{}", &id[id.len() - 6..]) } } },
            "sysctl": text });
        std::fs::write(&p, v.to_string()).unwrap();
        (id, p.display().to_string())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn in_ct(id: &str, key: &str) -> String {
    let out = testkit::ok_cmd(testkit::nsenter(
        &PathBuf::from("/run/netns").join(id),
        "sysctl",
        &["-n", key],
    ));
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn set_in_ct(id: &str, kv: &str) {
    testkit::ok_cmd(testkit::nsenter(
        &PathBuf::from("/run/netns").join(id),
        "sysctl",
        &["-qw", kv],
    ));
}

#[test]
fn private_and_shared_procfs_set_check_and_repair_the_same_sysctls() {
    for mode in ["private", "shared"] {
        let mut e = Env::new(mode);
        let (id, p) = e.props(0, &SYSCTLS);
        let o = e.netprov(&["apply", &p]);
        assert!(o.status.success(), "{mode}: {}", text(&o));
        for (k, v) in SYSCTLS {
            assert_eq!(in_ct(&id, k), v, "{mode}: {k}");
        }
        let o = e.netprov(&["check", &p]);
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", text(&o));
        // Changed behind netprov's back: drift, named; one apply repairs it.
        set_in_ct(&id, "net.ipv6.conf.eth0.forwarding=0");
        set_in_ct(&id, "net.ipv4.tcp_rmem=4096 87380 6291456");
        let o = e.netprov(&["check", &p]);
        assert_eq!(o.status.code(), Some(3), "{mode}: {}", text(&o));
        let shown = text(&o);
        assert!(
            shown.contains("sysctl net.ipv6.conf.eth0.forwarding")
                && shown.contains("sysctl net.ipv4.tcp_rmem"),
            "{mode}: {shown}"
        );
        let o = e.netprov(&["apply", &p]);
        assert!(o.status.success(), "{mode}: {}", text(&o));
        for (k, v) in SYSCTLS {
            assert_eq!(in_ct(&id, k), v, "{mode}: {k}");
        }
        assert!(e.netprov(&["destroy", &p]).status.success());

        // A key this kernel lacks: invalid input, nothing made.
        let (bad, p) = e.props(1, &[("net.ipv4.no_such_key", "1")]);
        let o = e.netprov(&["apply", &p]);
        assert_eq!(o.status.code(), Some(2), "{mode}: {}", text(&o));
        assert!(
            text(&o).contains("net.ipv4.no_such_key"),
            "{mode}: {}",
            text(&o)
        );
        assert!(!PathBuf::from("/run/netns").join(&bad).exists(), "{mode}");
    }
}

#[test]
fn one_process_sets_the_sysctls_of_more_containers_than_an_instance_serves() {
    let mut e = Env::new("private");
    let n = 40;
    let files: Vec<(String, String)> = (0..n)
        .map(|i| {
            e.props(
                i,
                &[
                    ("net.ipv4.ip_forward", "1"),
                    ("net.ipv4.conf.eth0.rp_filter", "2"),
                ],
            )
        })
        .collect();
    let mut args = vec!["apply"];
    args.extend(files.iter().map(|(_, p)| p.as_str()));
    let o = e.netprov(&args);
    assert!(o.status.success(), "{}", text(&o));
    for (id, _) in &files {
        assert_eq!(in_ct(id, "net.ipv4.ip_forward"), "1", "{id}");
        assert_eq!(in_ct(id, "net.ipv4.conf.eth0.rp_filter"), "2", "{id}");
    }
    args[0] = "check";
    let o = e.netprov(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    args[0] = "destroy";
    assert!(e.netprov(&args).status.success());
}
