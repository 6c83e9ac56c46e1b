//! `destroy --no-wait`: destroy returns once the container's netns is released and
//! leaves the veths' host ends to the kernel's asynchronous netns cleanup. What must
//! hold regardless of when that cleanup runs:
//!
//! * the report names the host ends left to the kernel;
//! * the next apply of the same id is correct while a host end is still there — made
//!   deterministic here by keeping the released netns alive with an open handle (the
//!   state the kernel is in until its cleanup ran): the apply replaces the stale host
//!   end, traffic flows, `check` finds nothing to do, and the old netns going away
//!   afterwards takes nothing of the new one with it;
//! * destroy and re-apply, one process each (as `ExecStopPost=`/`ExecStartPre=` run
//!   them), back to back, converge.

use std::path::PathBuf;

use crate::engine_common::host_links;
use serde_json::json;
use testkit::{text, unique, HostNetns, PropsDir};

const RULES: &str = "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    meta l4proto icmp accept\n  }\n}\n";

/// Writes container `id`'s props (one veth, its addresses and route, a ruleset) into
/// `dir`; returns the path.
fn props(dir: &PropsDir, id: &str, i: usize) -> String {
    dir.write_network(
        id,
        json!({
            "interfaces": { "eth0": {
                "ip4": format!("10.81.{i}.2/24"), "hostIp4": format!("10.81.{i}.1/24"),
                "hostName": format!("hw{id}") } },
            "ip4route": format!("10.81.{i}.1"),
            "nft": RULES,
        }),
    )
}

fn ok(host: &HostNetns, args: &[&str]) -> String {
    let o = host.netprov(args);
    assert!(o.status.success(), "netprov {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn reapply_while_the_released_netns_still_holds_the_host_end() {
    let mut host = HostNetns::new();
    let dir = PropsDir::new();
    let id = unique("w");
    host.track(&id);
    let p = props(&dir, &id, 1);
    let host_end = format!("hw{id}");
    ok(&host, &["apply", &p]);
    host.ok("ping", &["-c1", "-W3", "10.81.1.2"]);

    // Another reference to the netns: the kernel cannot clean it up until it is closed,
    // exactly the state between `destroy --no-wait` returning and the cleanup.
    let held = std::fs::File::open(PathBuf::from("/run/netns").join(&id)).unwrap();
    let out = ok(&host, &["--json", "destroy", "--no-wait", &id]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = &v[0]["result"];
    assert_eq!(r["netns_removed"], json!(true), "{out}");
    assert_eq!(r["host_ends_left_to_kernel"], json!([host_end]), "{out}");
    assert!(!PathBuf::from("/run/netns").join(&id).exists());
    assert_eq!(
        host_links(&host),
        vec![host_end.clone()],
        "the held netns keeps its veth"
    );

    // The same id again, with the old host end still present.
    ok(&host, &["apply", &p]);
    host.ok("ping", &["-c1", "-W3", "10.81.1.2"]);
    let o = host.netprov(&["check", &p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // The old netns goes now; the new container is untouched by it. (The kernel's
    // cleanup is asynchronous: `destroy` below waits for it, and the new veth's host
    // end must still be the one found, not a leftover.)
    drop(held);
    let o = host.netprov(&["check", &p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    host.ok("ping", &["-c1", "-W3", "10.81.1.2"]);

    ok(&host, &["destroy", &id]);
    assert!(host_links(&host).is_empty(), "{:?}", host_links(&host));
}

#[test]
fn destroy_and_apply_back_to_back_one_process_each_converge() {
    let mut host = HostNetns::new();
    let dir = PropsDir::new();
    let ids: Vec<String> = (0..4).map(|_| unique("v")).collect();
    let files: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            host.track(id);
            props(&dir, id, 10 + i)
        })
        .collect();
    for f in &files {
        ok(&host, &["apply", f]);
    }
    for round in 0..3 {
        for (i, f) in files.iter().enumerate() {
            ok(&host, &["destroy", "--no-wait", f]);
            ok(&host, &["apply", f]);
            let o = host.netprov(&["check", f]);
            assert_eq!(o.status.code(), Some(0), "round {round}: {}", text(&o));
            host.ok("ping", &["-c1", "-W3", &format!("10.81.{}.2", 10 + i)]);
        }
    }
    let mut d = vec!["destroy"];
    d.extend(files.iter().map(String::as_str));
    ok(&host, &d);
    assert!(host_links(&host).is_empty(), "{:?}", host_links(&host));
    for id in &ids {
        assert!(!PathBuf::from("/run/netns").join(id).exists());
    }
}
