//! Whose netns it is, end to end through the `netprov` binary in a simulated host netns:
//! the owner mark on `/run/netns/<id>`, foreign and symlinked handles, the host netns as
//! `netns_path`, and what netprov may touch in an adopted netns (nftables tables,
//! routes, addresses, links).
//!
//! Only namespaces made here are changed. The one look at the real host
//! (`/proc/1/ns/net`) is `netprov validate`, which reads inode numbers and nothing else.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{ok, text, unique, HostNetns};
use serde_json::{json, Value};

const RULES_A: &str = "table inet mine {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    meta l4proto icmp accept\n  }\n}\n";
const RULES_B: &str = "table inet mine2 {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    tcp dport 9 drop\n  }\n}\n";

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A scratch directory for props files, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(unique("npa"));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn write(&self, v: &Value) -> String {
        let p = self.0.join(format!("{}.json", v["id"].as_str().unwrap()));
        std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
        p.to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

fn ns(name: &str, cmd: &str, args: &[&str]) -> String {
    let mut a = vec![format!("--net=/run/netns/{name}"), "--".into(), cmd.into()];
    a.extend(args.iter().map(|s| s.to_string()));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    ok("nsenter", &a)
}

/// Everything in a netns netprov could touch, as text: links (with aliases),
/// addresses, routes of every protocol, the nftables ruleset.
fn snapshot(name: &str) -> String {
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
    [
        host.ok("ip", &["-d", "-o", "link", "show"]),
        host.ok("ip", &["-o", "addr", "show"]),
        host.ok("ip", &["route", "show", "table", "all"]),
        host.ok("nft", &["list", "ruleset"]),
    ]
    .join("\n")
}

fn lo_alias(name: &str) -> String {
    ns(name, "ip", &["-o", "link", "show", "lo"])
}

/// `validate`, `plan`, `apply`, `check` and `destroy` with props whose `netns_path` is
/// the host netns all exit 2 at `network.netns_path`, and nothing in the (simulated)
/// host changes — its nftables ruleset stays byte-identical.
#[test]
fn the_host_netns_as_netns_path_is_invalid_and_nothing_changes() {
    let host = HostNetns::new();
    host.ok(
        "nft",
        &["add table inet hostfw; add chain inet hostfw input { type filter hook input priority 0; policy accept; }; add rule inet hostfw input tcp dport 22 accept"],
    );
    host.ok("ip", &["link", "add", "hostbr0", "type", "bridge"]);
    let dir = Dir::new();
    let before = host_snapshot(&host);
    let nft_before = host.ok("nft", &["list", "ruleset"]);
    // The simulated host by its handle and as the process's own netns.
    let host_path = host.path().display().to_string();
    for path in [host_path.as_str(), "/proc/self/ns/net"] {
        let id = unique("h");
        let p = props(
            &id,
            &unique("v"),
            1,
            json!({ "netns_path": path, "nft": RULES_A }),
        );
        let f = dir.write(&p);
        for cmd in ["validate", "plan", "apply", "check", "destroy"] {
            let o = host.netprov(&[cmd, &f]);
            assert_eq!(code(&o), 2, "{cmd} with netns_path {path}: {}", text(&o));
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("network.netns_path") && err.contains("host"),
                "{cmd}: {err}"
            );
        }
        let o = host.netprov(&["--json", "validate", &f]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["errors"][0]["path"], "network.netns_path", "{v}");
    }
    // PID 1's netns (the machine's own): validation only.
    let id = unique("h");
    let f = dir.write(&props(
        &id,
        &unique("v"),
        1,
        json!({ "netns_path": "/proc/1/ns/net" }),
    ));
    let o = host.netprov(&["validate", &f]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("PID 1"),
        "{}",
        text(&o)
    );
    assert_eq!(host.ok("nft", &["list", "ruleset"]), nft_before);
    assert_eq!(host_snapshot(&host), before);
}

/// The engine refuses the host netns too (apply-time re-check, against its actual host
/// netns), for apply, plan and destroy, before changing anything.
#[test]
fn the_engine_refuses_its_host_netns_as_an_adopted_netns() {
    use netprov::engine::{DestroyTarget, Engine, Options};
    use netprov::model::{ContainerId, Desired, HostRules, NetnsSpec, Ruleset};
    let host = HostNetns::new();
    host.ok("nft", &["add table inet hostfw"]);
    let before = host_snapshot(&host);
    let e = Engine::new(Options {
        host_netns: Some(host.path()),
        fail_after: None,
        ovsdb: None,
    })
    .unwrap();
    let d = Desired {
        id: ContainerId::new(&unique("h")).unwrap(),
        netns: NetnsSpec::Adopted { path: host.path() },
        interfaces: Vec::new(),
        routes: Vec::new(),
        sysctls: Vec::new(),
        nft: Some(Ruleset {
            text: RULES_A.into(),
        }),
        host_rules: HostRules::default(),
    };
    let err = e.apply(&d).unwrap_err().to_string();
    assert!(err.contains("host netns"), "{err}");
    assert!(e.plan(&d).is_err());
    assert!(e.destroy(&DestroyTarget::Props(d)).is_err());
    assert_eq!(host_snapshot(&host), before);
}

/// A `/run/netns/<id>` that netprov did not make (`ip netns add`, with a foreign veth in
/// it) is refused by apply and plan (exit 1: it is the kernel's state, not the props,
/// that is wrong) with the path and the way to adopt it; destroy — by id and by props —
/// leaves it and everything in it, and says so.
#[test]
fn a_foreign_run_netns_is_refused_by_apply_and_left_by_destroy() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = unique("f");
    host.track(&id);
    ok("ip", &["netns", "add", &id]);
    ns(&id, "ip", &["link", "set", "lo", "up"]);
    ns(
        &id,
        "ip",
        &["link", "add", "fa", "type", "veth", "peer", "name", "fb"],
    );
    ns(&id, "ip", &["addr", "add", "10.66.0.1/24", "dev", "fa"]);
    ns(&id, "ip", &["link", "set", "fa", "up"]);
    ns(&id, "ip", &["link", "set", "fb", "up"]);
    let inside = snapshot(&id);
    let outside = host_snapshot(&host);
    let f = dir.write(&props(&id, &unique("v"), 2, json!({ "nft": RULES_A })));
    for cmd in ["apply", "plan", "check"] {
        let o = host.netprov(&[cmd, &f]);
        assert_eq!(code(&o), 1, "{cmd}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("/run/netns/{id}"))
                && err.contains("no owner mark")
                && err.contains("netns_path"),
            "{cmd}: {err}"
        );
    }
    for target in [id.as_str(), f.as_str()] {
        let o = host.netprov(&["destroy", target]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("left the netns alone") && out.contains("netns kept"),
            "{out}"
        );
    }
    assert_eq!(snapshot(&id), inside);
    assert_eq!(host_snapshot(&host), outside);
    ns(&id, "ping", &["-c1", "-W2", "10.66.0.1"]);

    // Adopting it on purpose works, and destroy then leaves the foreign veth.
    let path = format!("/run/netns/{id}");
    let f = dir.write(&props(&id, &unique("v"), 2, json!({ "netns_path": path })));
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    host.ok("ping", &["-c1", "-W2", "10.79.2.2"]);
    assert_eq!(code(&host.netprov(&["destroy", &f])), 0);
    assert_eq!(snapshot(&id), inside);
}

/// A symlink planted at `/run/netns/<id>` is never followed: apply refuses it, destroy
/// leaves it and the netns it points to.
#[test]
fn a_symlink_at_run_netns_is_refused() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let target = unique("t");
    host.track(&target);
    ok("ip", &["netns", "add", &target]);
    let id = unique("s");
    let link = Path::new("/run/netns").join(&id);
    std::os::unix::fs::symlink(format!("/run/netns/{target}"), &link).unwrap();
    let _guard = Unlink(link.clone());
    let inside = snapshot(&target);
    let f = dir.write(&props(&id, &unique("v"), 3, json!({})));
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("symlink"),
        "{}",
        text(&o)
    );
    let o = host.netprov(&["destroy", &id]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("symlink"),
        "{}",
        text(&o)
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(snapshot(&target), inside);
}

/// In an adopted netns with foreign nftables tables, a foreign veth with an address, a
/// foreign static route and another container's protocol-77 route: apply keeps them
/// all, a changed ruleset replaces only netprov's tables, a foreign table changing is
/// not drift, a ruleset that would merge into a foreign table is refused, and destroy
/// removes only what netprov made.
#[test]
fn in_an_adopted_netns_only_netprovs_objects_change() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let name = unique("a");
    host.track(&name);
    ok("ip", &["netns", "add", &name]);
    ns(&name, "ip", &["link", "set", "lo", "up"]);
    ns(
        &name,
        "ip",
        &["link", "add", "fa", "type", "veth", "peer", "name", "fb"],
    );
    ns(&name, "ip", &["addr", "add", "10.66.0.1/24", "dev", "fa"]);
    ns(&name, "ip", &["link", "set", "fa", "up"]);
    ns(&name, "ip", &["link", "set", "fb", "up"]);
    // Another container's netprov route (protocol 77) and an admin's static route.
    ns(
        &name,
        "ip",
        &["route", "add", "10.67.0.0/24", "dev", "fa", "proto", "77"],
    );
    ns(&name, "ip", &["route", "add", "10.68.0.0/24", "dev", "fa"]);
    ns(
        &name,
        "nft",
        &["add table inet theirs; add chain inet theirs c { type filter hook output priority 0; policy accept; }"],
    );
    let foreign = |s: &str| -> bool {
        s.contains("10.66.0.1/24")
            && s.contains("10.67.0.0/24 dev fa proto 77")
            && s.contains("10.68.0.0/24 dev fa")
            && s.contains("table inet theirs")
    };
    let path = format!("/run/netns/{name}");
    let id = unique("c");
    let hv = unique("v");
    let mk = |nft: Option<&str>| {
        let mut extra = json!({ "netns_path": path });
        if let Some(t) = nft {
            extra["nft"] = json!(t);
        }
        dir.write(&props(&id, &hv, 4, extra))
    };
    let f = mk(Some(RULES_A));
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(foreign(&s), "{s}");
    assert!(s.contains("table inet mine"), "{s}");
    assert!(
        s.contains("10.80.4.0/24 via 10.79.4.3 dev wan proto 77"),
        "{s}"
    );
    host.ok("ping", &["-c1", "-W2", "10.79.4.2"]);
    assert!(
        !lo_alias(&name).contains("netprov-netns"),
        "an adopted netns is not marked"
    );

    // Re-apply: nothing to do. A foreign table changing is not drift.
    let o = host.netprov(&["apply", &f]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("in sync"),
        "{}",
        text(&o)
    );
    ns(&name, "nft", &["add chain inet theirs other"]);
    let o = host.netprov(&["check", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    // netprov's own table edited behind its back is drift, and the reload keeps theirs.
    ns(&name, "nft", &["add chain inet mine sneaky"]);
    let o = host.netprov(&["check", &f]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(!s.contains("sneaky") && s.contains("chain other"), "{s}");

    // A changed ruleset: table mine dropped from the props is deleted, theirs stays.
    let f = mk(Some(RULES_B));
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(foreign(&s), "{s}");
    assert!(
        s.contains("table inet mine2") && !s.contains("table inet mine {"),
        "{s}"
    );

    // A ruleset declaring the foreign table is refused; nothing changes.
    let before = snapshot(&name);
    let f_bad = mk(Some("table inet theirs {\n  chain mine {\n  }\n}\n"));
    let o = host.netprov(&["apply", &f_bad]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("table inet theirs already exists"),
        "{}",
        text(&o)
    );
    assert_eq!(snapshot(&name), before);

    // nft dropped from the props: netprov's tables go, theirs stays.
    let f = mk(None);
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(
        foreign(&s) && !s.contains("mine2") && !s.contains("netprov_state"),
        "{s}"
    );

    // Destroy: netprov's veth and route go; every foreign object stays.
    let f = mk(Some(RULES_A));
    assert_eq!(code(&host.netprov(&["apply", &f])), 0);
    let o = host.netprov(&["destroy", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(foreign(&s), "{s}");
    assert!(
        !s.contains("wan") && !s.contains("10.80.4.0") && !s.contains("table inet mine"),
        "{s}"
    );
    assert!(Path::new(&path).exists());
    ns(&name, "ping", &["-c1", "-W2", "10.66.0.1"]);
}

/// The mark exists from the moment the handle is visible: after a crash at any step
/// (fault injection) and after real SIGKILLs at generated moments, a `/run/netns/<id>`
/// that exists carries the mark, and the next apply converges.
#[test]
fn a_netprov_netns_is_marked_whenever_its_handle_exists() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = unique("m");
    host.track(&id);
    let f = dir.write(&props(&id, &unique("v"), 5, json!({})));
    let handle = Path::new("/run/netns").join(&id);
    let marked = |when: &str| {
        if netprov::kernel::netns::is_handle(&handle) {
            let lo = lo_alias(&id);
            assert!(
                lo.contains(&format!("alias netprov-netns:{id}")),
                "{when}: {lo}"
            );
        }
    };
    for k in 1..4 {
        let o = host.netprov(&["apply", "--fail-after", &k.to_string(), &f]);
        assert_eq!(code(&o), 1, "{}", text(&o));
        marked(&format!("fail-after {k}"));
        assert_eq!(code(&host.netprov(&["apply", &f])), 0);
        assert_eq!(code(&host.netprov(&["destroy", &id])), 0);
        assert!(!handle.exists());
    }
    // Kill moments spread over the first milliseconds, where the netns is made.
    let mut seed = 0x9e37_79b9u32;
    for _ in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let micros = u64::from(seed % 8000);
        let bin = common::netprov_bin();
        let mut child = host
            .cmd(bin.to_str().unwrap(), &["apply", &f])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(micros));
        let _ = child.kill();
        let _ = child.wait();
        marked(&format!("SIGKILL after {micros} µs"));
        let o = host.netprov(&["apply", &f]);
        assert_eq!(code(&o), 0, "after SIGKILL at {micros} µs: {}", text(&o));
        host.ok("ping", &["-c1", "-W2", "10.79.5.2"]);
        assert_eq!(code(&host.netprov(&["destroy", &id])), 0);
        assert!(!handle.exists());
    }
}

/// A netns made by a netprov that did not mark (its links carry this container's alias)
/// is netprov's: apply marks it, in one step, and destroy removes it.
#[test]
fn an_unmarked_netns_of_an_older_netprov_is_marked_on_apply() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = unique("u");
    host.track(&id);
    let f = dir.write(&props(&id, &unique("v"), 6, json!({})));
    assert_eq!(code(&host.netprov(&["apply", &f])), 0);
    // What an older netprov left: no mark on lo.
    ns(&id, "ip", &["link", "set", "lo", "alias", ""]);
    assert!(!lo_alias(&id).contains("alias"), "{}", lo_alias(&id));
    let o = host.netprov(&["check", &f]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("applied 1 changes"),
        "{}",
        text(&o)
    );
    assert!(lo_alias(&id).contains(&format!("alias netprov-netns:{id}")));
    assert_eq!(code(&host.netprov(&["destroy", &id])), 0);
    assert!(!Path::new("/run/netns").join(&id).exists());
}

/// `create_handle` itself: a new netns is marked; a netns mounted at the path since it
/// was observed (a concurrent run) is reused only with this container's mark.
#[test]
fn create_handle_marks_and_reuses_only_a_marked_netns() {
    use netprov::kernel::netns::{create_handle, remove_handle};
    use netprov::model::ContainerId;
    let mut host = HostNetns::new();
    let id = unique("r");
    host.track(&id);
    let cid = ContainerId::new(&id).unwrap();
    let path = Path::new("/run/netns").join(&id);
    create_handle(&path, &cid).unwrap();
    assert!(lo_alias(&id).contains(&format!("alias netprov-netns:{id}")));
    create_handle(&path, &cid).unwrap();
    let other = ContainerId::new(&unique("r")).unwrap();
    let e = create_handle(&path, &other).unwrap_err().to_string();
    assert!(
        e.contains(&format!("netprov's netns of container {id}")),
        "{e}"
    );
    remove_handle(&path).unwrap();
    ok("ip", &["netns", "add", &id]);
    let e = create_handle(&path, &cid).unwrap_err().to_string();
    assert!(e.contains("no owner mark"), "{e}");
    assert!(!lo_alias(&id).contains("alias"));
}

/// Two containers adopting one netns (in separate runs — in one run that is a conflict):
/// the second cannot load a ruleset over the first's, and its destroy leaves the first's
/// tables, links and protocol-77 routes.
#[test]
fn a_second_container_in_an_adopted_netns_never_touches_the_first() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let name = unique("a");
    host.track(&name);
    ok("ip", &["netns", "add", &name]);
    let path = format!("/run/netns/{name}");
    let a = unique("c");
    let fa = dir.write(&props(
        &a,
        &unique("v"),
        7,
        json!({ "netns_path": path, "nft": RULES_A }),
    ));
    assert_eq!(code(&host.netprov(&["apply", &fa])), 0);
    let b = unique("c");
    let mut pb = props(
        &b,
        &unique("v"),
        8,
        json!({ "netns_path": path, "nft": RULES_B }),
    );
    // Its own interface name: the two containers share the netns.
    let wan = pb["network"]["interfaces"]["wan"].take();
    pb["network"]["interfaces"] = json!({ "lan": wan });
    let fb = dir.write(&pb);
    let o = host.netprov(&["apply", &fb]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("for container {a}")),
        "{}",
        text(&o)
    );
    pb["network"]["nft"] = json!("");
    let fb = dir.write(&pb);
    let o = host.netprov(&["apply", &fb]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let before = snapshot(&name);
    assert!(
        before.contains("10.80.7.0/24 via 10.79.7.3 dev wan proto 77"),
        "{before}"
    );
    let o = host.netprov(&["destroy", &fb]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = snapshot(&name);
    assert!(
        s.contains("table inet mine") && s.contains("10.80.7.0/24 via 10.79.7.3 dev wan proto 77"),
        "{s}"
    );
    host.ok("ping", &["-c1", "-W2", "10.79.7.2"]);
    assert_eq!(code(&host.netprov(&["destroy", &fa])), 0);
    let s = snapshot(&name);
    assert!(
        !s.contains("table inet") && !s.contains("wan") && !s.contains("proto 77"),
        "{s}"
    );
}
