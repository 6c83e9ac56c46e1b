//! Unsafe input is refused before any change (issue 12), end to end in a simulated host
//! netns: every validation gap exits 2 with its JSON path and leaves the host netns as
//! it was; an existing-link interface cannot take another owner's link; `include` in a
//! ruleset is refused without reading the file; a props path that is not a regular file
//! exits 2 at once; a closed stdout or a full stderr does not stop the work.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{text, unique, HostNetns};

/// A scratch directory for props files, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(unique("np"));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
    fn write_text(&self, name: &str, t: &str) -> String {
        std::fs::write(self.0.join(name), t).unwrap();
        self.path(name)
    }
    fn write(&self, name: &str, v: &Value) -> String {
        self.write_text(name, &serde_json::to_string_pretty(v).unwrap())
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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
    // IPv6 duplicate address detection changes address flags (and adds local routes)
    // on its own a moment after a link comes up: wait for it to settle first.
    let settled = Instant::now() + Duration::from_secs(30);
    while !host
        .ok("ip", &["-6", "addr", "show", "tentative"])
        .trim()
        .is_empty()
    {
        assert!(Instant::now() < settled, "IPv6 DAD does not settle");
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// Names the kernel refuses or mangles, and names it reserves.
const BAD_NAMES: &[&str] = &[
    "a%b",
    "x%d",
    "lo",
    "all",
    "default",
    ".",
    "..",
    "a/b",
    "a b",
    "a:b",
    "a\tb",
    "sixteen-bytes-xx",
];

/// One invalid file: what to change in [`props`], and the JSON path the error names.
struct Case {
    what: String,
    text: String,
    path: String,
}

fn case(what: impl Into<String>, v: &Value, path: impl Into<String>) -> Case {
    Case {
        what: what.into(),
        text: serde_json::to_string_pretty(v).unwrap(),
        path: path.into(),
    }
}

fn cases(id: &str) -> Vec<Case> {
    let base = props(id, 1);
    let mut out = Vec::new();
    let wan = "network.interfaces.wan";
    // Every bad name in every name-bearing field.
    for bad in BAD_NAMES {
        let mut v = base.clone();
        let i = v["network"]["interfaces"]["wan"].take();
        v["network"]["interfaces"] = json!({ *bad: i });
        // The route's gateway names no interface, so only the name is wrong.
        out.push(case(
            format!("interface name {bad:?}"),
            &v,
            key_path("network.interfaces", bad),
        ));
        for field in ["hostName", "hostBridge"] {
            let mut v = base.clone();
            v["network"]["interfaces"]["wan"][field] = Value::from(*bad);
            out.push(case(
                format!("{field} {bad:?}"),
                &v,
                format!("{wan}.{field}"),
            ));
        }
        let mut v = base.clone();
        v["network"]["interfaces"]["lan"] = json!({ "ovs": { "bridge": bad } });
        out.push(case(
            format!("ovs.bridge {bad:?}"),
            &v,
            "network.interfaces.lan.ovs.bridge",
        ));
    }
    // Addresses the kernel refuses or that cannot be an interface's.
    for bad in [
        "::ffff:224.0.0.1",
        "::ffff:10.0.0.1/128",
        "::10.0.0.1",
        "ff02::1",
        "::1",
        "::",
    ] {
        for field in ["ip6", "hostIp6"] {
            let mut v = base.clone();
            v["network"]["interfaces"]["wan"][field] = Value::from(bad);
            out.push(case(format!("{field} {bad}"), &v, format!("{wan}.{field}")));
        }
        let mut v = base.clone();
        v["network"]["interfaces"]["wan"]["macvlan"]["ip6"] = Value::from(bad);
        out.push(case(
            format!("macvlan.ip6 {bad}"),
            &v,
            format!("{wan}.macvlan.ip6"),
        ));
    }
    let mut v = base.clone();
    v["network"]["ip6route"] = Value::from("::ffff:10.78.1.3");
    out.push(case("ip6route IPv4-mapped", &v, "network.ip6route"));
    let mut v = base.clone();
    v["network"]["forwards"][0]["hostIp"] = Value::from("224.0.0.1");
    out.push(case(
        "forward hostIp multicast",
        &v,
        "network.forwards[0].hostIp",
    ));
    // sysctls that never converge or do not exist.
    for (k, val, what) in [
        ("net.ipv4.ip_forward", json!("01"), "leading zero"),
        ("net.ipv4.ip_forward", json!("true"), "not an integer"),
        ("net.ipv4.ip_forward", json!(1.0), "not an integer"),
        ("net.ipv4.no_such_sysctl", json!(1), "no such key"),
        (
            "net.ipv4.conf.eth9.forwarding",
            json!(1),
            "foreign interface",
        ),
        ("net.ipv4.route.flush", json!(1), "write-only"),
        ("net.ipv4.conf.all", json!(1), "a directory"),
    ] {
        let mut v = base.clone();
        v["sysctl"] = json!({ k: val });
        out.push(case(
            format!("sysctl {k} ({what})"),
            &v,
            key_path("sysctl", k),
        ));
    }
    // A forward overlap inside one file.
    let mut v = base.clone();
    v["network"]["forwards"] = json!([
        { "proto": "tcp", "hostPort": 8080, "port": 80, "hostIp": "192.0.2.1" },
        { "proto": "tcp", "hostPort": 8080, "port": 81 }
    ]);
    out.push(case("forward overlap", &v, "network.forwards[1]"));
    // A ruleset that would read another file.
    let mut v = base.clone();
    v["network"]["nft"] = Value::from("table inet t {}\ninclude \"/etc/hostname\"\n");
    out.push(case("nft include", &v, "network.nft"));
    // Duplicate keys, at several depths (text, since serde_json cannot write them).
    let pretty = serde_json::to_string_pretty(&base).unwrap();
    for (what, from, to, path) in [
        (
            "duplicate id",
            "\"id\":",
            "\"id\": \"other\",\n  \"id\":",
            "id".to_owned(),
        ),
        (
            "duplicate interface",
            "\"interfaces\": {",
            "\"interfaces\": {\n \"wan\": {},",
            "network.interfaces.wan".to_owned(),
        ),
        (
            "duplicate sysctl",
            "\"net.ipv4.ip_forward\": 1",
            "\"net.ipv4.ip_forward\": 1, \"net.ipv4.ip_forward\": 0",
            key_path("sysctl", "net.ipv4.ip_forward"),
        ),
    ] {
        assert!(pretty.contains(from), "{from} in {pretty}");
        out.push(Case {
            what: what.into(),
            text: pretty.replacen(from, to, 1),
            path,
        });
    }
    out
}

/// Every validation gap of issue 12 exits 2 naming its JSON path, and neither
/// `validate` nor `apply` changes anything.
#[test]
fn every_validation_gap_exits_2_with_its_path_and_changes_nothing() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = unique("c");
    host.track(&id);
    // The control: the base file is valid (so each case fails for its own change).
    let good = dir.write("good.json", &props(&id, 1));
    let v = host.netprov(&["validate", &good]);
    assert_eq!(code(&v), 0, "{}", text(&v));

    let before = snapshot(&host, &id);
    let cases = cases(&id);
    for (n, c) in cases.iter().enumerate() {
        let f = dir.write_text(&format!("bad{n}.json"), &c.text);
        for cmd in ["validate", "apply"] {
            let out = host.netprov(&["--json", cmd, &f]);
            assert_eq!(code(&out), 2, "{}: {cmd}: {}", c.what, text(&out));
            let paths = error_paths(&out);
            assert!(
                paths.contains(&c.path),
                "{}: {cmd}: expected {} in {paths:?}: {}",
                c.what,
                c.path,
                text(&out)
            );
        }
        assert!(
            !Path::new("/run/netns").join(&id).exists(),
            "{}: a netns was created",
            c.what
        );
    }
    assert_eq!(before, snapshot(&host, &id));
    assert!(cases.len() > 70, "{} cases", cases.len());
}

/// A duplicate key is reported at both places, line:column.
#[test]
fn duplicate_keys_show_both_positions() {
    let host = HostNetns::new();
    let dir = Dir::new();
    let f = dir.write_text(
        "dup.json",
        "{\"id\": \"a\",\n \"network\": {\"interfaces\": {\"wan\": {},\n   \"wan\": {}}}}",
    );
    let out = host.netprov(&["validate", &f]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("network.interfaces.wan")
            && t.contains("line 2 column 29 and at line 3 column 4"),
        "{t}"
    );
}

/// `include` is refused before libnftables could read the file: its content appears
/// nowhere, and `/dev/zero` does not hang.
#[test]
fn include_is_refused_without_reading_the_file() {
    let host = HostNetns::new();
    let dir = Dir::new();
    let secret = format!("SECRET-{}", unique("s"));
    let secret_file = dir.write_text("secret.nft", &format!("{secret} line one\n"));
    for target in [secret_file.as_str(), "/dev/zero", "secret.nft"] {
        for nft in [
            format!("include \"{target}\"\n"),
            format!("table inet t {{\n  include \"{target}\"\n}}\n"),
        ] {
            let f = dir.write(
                "inc.json",
                &json!({ "id": unique("c"), "network": { "nft": nft } }),
            );
            for cmd in ["validate", "apply"] {
                let out = netprov_guarded(&host, &["--json", cmd, &f]);
                assert_eq!(code(&out), 2, "{}", text(&out));
                assert_eq!(error_paths(&out), ["network.nft"], "{}", text(&out));
                assert!(!text(&out).contains(&secret), "{}", text(&out));
                assert!(
                    text(&out).contains("`include` is not allowed"),
                    "{}",
                    text(&out)
                );
            }
        }
    }
}

/// A FIFO, a device, a directory or a socket as the props file exits 2 at once; so does
/// a regular file over the 2 MiB limit.
#[test]
fn props_must_be_a_regular_file_within_the_limit() {
    let host = HostNetns::new();
    let dir = Dir::new();
    let fifo = dir.path("fifo.json");
    let c = std::ffi::CString::new(fifo.clone()).unwrap();
    // SAFETY: plain syscall on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let sock = dir.path("sock.json");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let big = dir.write_text("big.json", &" ".repeat((2 << 20) + 1));
    for (p, why) in [
        (fifo.as_str(), "a FIFO"),
        ("/dev/zero", "a character device"),
        (dir.0.to_str().unwrap(), "a directory"),
        (sock.as_str(), "No such device"),
        (big.as_str(), "larger than 2097152 bytes"),
    ] {
        for cmd in ["validate", "apply", "plan", "check", "destroy"] {
            let out = netprov_guarded(&host, &[cmd, p]);
            assert_eq!(code(&out), 2, "{cmd} {p}: {}", text(&out));
            // destroy takes an argument not ending in .json that is no regular file
            // for a container id (and refuses it as one).
            if cmd != "destroy" || p.ends_with(".json") {
                assert!(text(&out).contains(why), "{cmd} {p}: {}", text(&out));
            }
        }
    }
}

/// `netprov apply f | head -0`: the pipe is closed before netprov prints; the work is
/// done and the exit code is the work's. `-v destroy f 2>/dev/full`: every log line
/// fails to write; destroy still completes.
#[test]
fn closed_stdout_and_full_stderr_do_not_stop_the_work() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = unique("c");
    host.track(&id);
    let f = dir.write("c.json", &props(&id, 2));
    let bin = testkit::netprov_bin();

    let log = dir.path("apply.log");
    let mut apply = host
        .cmd(bin.to_str().unwrap(), &["-v", "apply", &f])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    drop(apply.stdout.take()); // `head -0`: the reader is gone before the first write.
    wait_guarded(&mut apply, &["apply"]);
    let status = apply.wait().unwrap();
    let mut stderr = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The work is done: the container answers.
    host.ok("ping", &["-c1", "-W2", "10.78.2.2"]);

    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let mut destroy = host
        .cmd(bin.to_str().unwrap(), &["-vvv", "destroy", &f])
        .stdout(full())
        .stderr(full())
        .spawn()
        .unwrap();
    wait_guarded(&mut destroy, &["destroy"]);
    assert_eq!(destroy.wait().unwrap().code(), Some(0));
    assert!(!Path::new("/run/netns").join(&id).exists());
    let links = host.ok("ip", &["-o", "link"]);
    assert!(!links.contains(&format!("np-{id}")), "{links}");
    let ruleset = host.ok("nft", &["list", "ruleset"]);
    assert!(!ruleset.contains(&id), "{ruleset}");
}

/// An existing-link interface naming another container's veth host end or a bridge
/// port is refused, naming the owner, and nothing changes; a free link moves.
#[test]
fn existing_links_must_be_free() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let a = unique("c");
    let b = unique("c");
    host.track(&a);
    host.track(&b);
    let ve = unique("ve");
    let mut pa = props(&a, 3);
    pa["network"]["interfaces"]["wan"]["hostName"] = Value::from(ve.as_str());
    let fa = dir.write("a.json", &pa);
    let out = host.netprov(&["apply", &fa]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    let br = unique("br");
    let port = unique("p");
    let free = unique("f");
    host.ok("ip", &["link", "add", &br, "type", "bridge"]);
    // (veth pairs: this kernel may have no dummy module)
    for l in [&port, &free] {
        host.ok(
            "ip",
            &[
                "link",
                "add",
                l,
                "type",
                "veth",
                "peer",
                "name",
                &format!("{l}p"),
            ],
        );
    }
    host.ok("ip", &["link", "set", &port, "master", &br]);

    let before = snapshot(&host, &b);
    for (link, owner) in [
        (
            ve.as_str(),
            format!("netprov's veth host end of container {a} (its interface wan)"),
        ),
        (port.as_str(), format!("a port of bridge {br}")),
        (br.as_str(), "a Linux bridge".to_owned()),
    ] {
        let fb = dir.write(
            "b.json",
            &json!({ "id": b, "network": { "interfaces": { link: { "ip4": "10.78.9.2/24" } } } }),
        );
        let out = host.netprov(&["apply", &fb]);
        assert_eq!(code(&out), 1, "{link}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("move existing link {link} into netns {b}"))
                && text(&out).contains(&owner),
            "{link}: {}",
            text(&out)
        );
        assert_eq!(before, snapshot(&host, &b), "{link}: something changed");
    }
    // The other container still works.
    host.ok("ping", &["-c1", "-W2", "10.78.3.2"]);

    // The control: a free link is moved in.
    let fb = dir.write(
        "b.json",
        &json!({ "id": b, "network": { "interfaces": { free.as_str(): { "ip4": "10.78.9.2/24" } } } }),
    );
    let out = host.netprov(&["apply", &fb]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let moved = testkit::ok("ip", &["-n", &b, "-o", "link", "show", &free]);
    assert!(moved.contains(&free), "{moved}");
    for f in [&fb, &fa] {
        let out = host.netprov(&["destroy", f]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
}

/// Ports of a (userspace-datapath) Open vSwitch — an internal port, which is a tap with
/// no master, and a system port — are refused as existing links: OVSDB names them.
#[test]
fn existing_links_claimed_by_ovs_are_refused() {
    let mut o = testkit::ovs::Ovs::start();
    o.add_bridge("br0");
    let dir = Dir::new();
    let b = unique("c");
    o.host.track(&b);
    let internal = unique("oi");
    o.vsctl(&[
        "add-port",
        "br0",
        &internal,
        "--",
        "set",
        "interface",
        &internal,
        "type=internal",
    ]);
    let system = unique("os");
    o.host.ok(
        "ip",
        &[
            "link",
            "add",
            &system,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{system}p"),
        ],
    );
    o.vsctl(&["add-port", "br0", &system]);
    let ep = o.endpoint();
    let before = snapshot(&o.host, &b);
    for (link, owner) in [
        (
            &internal,
            "a port of Open vSwitch (an OVSDB Interface of type internal)",
        ),
        (
            &system,
            "a port of Open vSwitch (an Interface row in OVSDB)",
        ),
    ] {
        let fb = dir.write(
            "b.json",
            &json!({ "id": b, "network": { "interfaces": { link.as_str(): { "ip4": "10.78.9.2/24" } } } }),
        );
        let out = o.host.netprov(&["--ovsdb", &ep, "apply", &fb]);
        assert_eq!(code(&out), 1, "{link}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("move existing link {link} into netns {b}"))
                && text(&out).contains(owner),
            "{link}: {}",
            text(&out)
        );
        assert_eq!(before, snapshot(&o.host, &b), "{link}: something changed");
    }
}
