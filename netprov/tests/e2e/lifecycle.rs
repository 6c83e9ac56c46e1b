//! Container lifecycle through the `netprov` binary: destroy is best effort and complete
//! (an unreachable OVSDB blocks nothing else), and one operation per container id runs
//! at a time (concurrent applies of one id never stack netns mounts; a waiting process
//! says what it waits for; other ids are not held up).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::{json, Value};
use testkit::ovs::Ovs;
use testkit::PropsDir as Dir;
use testkit::{text, unique, HostNetns};

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Mounts at `/run/netns/<id>` in this mount namespace (the one netprov runs in: the
/// tests enter only the host's netns, never a mount namespace).
fn handle_mounts(id: &str) -> usize {
    let at = format!("/run/netns/{id}");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(at.as_str()))
        .count()
}

/// A veth container `id` (host end `w<id>`, block `n`) with a default route, a
/// masquerade host table and, `with_ovs`, an OVS internal port on br0.
fn props(dir: &Dir, id: &str, n: u8, with_ovs: bool) -> String {
    let mut ifs = json!({
        "wan": { "ip4": format!("70.1.{n}.2/31"), "hostIp4": format!("70.1.{n}.1/31"),
                 "hostName": format!("w{id}") },
    });
    if with_ovs {
        ifs[format!("l{n}")] = json!({ "ip4": format!("10.61.{n}.2/24"),
                    // Internal: its moved-in device shows OVS to a destroy by id. A
                    // veth-style port on the userspace datapath leaves no kernel trace
                    // (docs/engine.md, destroy step 0).
                    "ovs": { "bridge": "br0", "vlan": 7, "style": "internal" } });
    }
    dir.write_network(
        id,
        json!({ "interfaces": ifs, "ip4route": format!("70.1.{n}.1"), "masquerade": true }),
    )
}

/// What is left of container `id` in `host` outside OVSDB: its netns handle, veth host
/// end, host nftables table, netprov routes.
fn leftovers(host: &HostNetns, id: &str) -> Vec<String> {
    let mut left = Vec::new();
    if Path::new("/run/netns").join(id).exists() || handle_mounts(id) > 0 {
        left.push(format!("netns handle ({} mounts)", handle_mounts(id)));
    }
    if host
        .run("ip", &["link", "show", "dev", &format!("w{id}")])
        .status
        .success()
    {
        left.push("veth host end".into());
    }
    if host
        .run("nft", &["list", "table", "inet", &format!("netprov-{id}")])
        .status
        .success()
    {
        left.push("host table".into());
    }
    for fam in ["-4", "-6"] {
        let routes = host.ok("ip", &[fam, "route", "show", "proto", "77"]);
        if !routes.trim().is_empty() {
            left.push(format!("routes {routes}"));
        }
    }
    if lock_file(id).exists() {
        left.push("lock file".into());
    }
    left
}

fn lock_file(id: &str) -> std::path::PathBuf {
    Path::new("/run/netprov").join(format!("{id}.lock"))
}

/// A container's lock file lives as long as the container: a successful apply keeps
/// it, and later applies, checks and plans reuse the same file; destroy removes it.
/// Nothing is left by a check of a container never applied, or by a first apply that
/// failed (a ruleset the kernel refuses: the apply is undone).
#[test]
fn the_lock_file_lives_as_long_as_the_container() {
    use std::os::unix::fs::MetadataExt;
    let host = HostNetns::new();
    let dir = Dir::new();
    let id = unique("w");
    let p = props(&dir, &id, 9, false);
    let out = host.netprov(&["check", &p]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(!lock_file(&id).exists());
    let out = host.netprov(&["apply", &p]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let ino = std::fs::metadata(lock_file(&id)).unwrap().ino();
    for args in [["apply", &p], ["check", &p], ["plan", &p]] {
        let out = host.netprov(&args);
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out));
        assert_eq!(
            std::fs::metadata(lock_file(&id)).unwrap().ino(),
            ino,
            "{args:?}"
        );
    }
    let out = host.netprov(&["destroy", &p]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(leftovers(&host, &id), Vec::<String>::new());

    let bad = unique("w");
    let pb = dir.write_network(&bad, json!({
        "interfaces": { "wan": { "ip4": "70.9.0.2/31", "hostIp4": "70.9.0.1/31",
                                 "hostName": format!("w{bad}") } },
        "nft": "table inet t {\n  chain c {\n    type filter hook input priority 0;\n    jump nowhere\n  }\n}\n" }));
    let out = host.netprov(&["apply", &pb]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert_eq!(leftovers(&host, &bad), Vec::<String>::new());
}

/// OVSDB down — its socket file left behind and refusing (as after a crash), or absent
/// — for each shape (with and without an OVS interface) and each way to name the
/// container (props file, id only, as `ExecStopPost` does): destroy removes the netns,
/// veth, routes and host table all the same. It exits 1 naming OVSDB when the
/// container has OVS interfaces (their ports are still in the database; a destroy once
/// OVSDB is back removes them), and 0 for a veth-only container.
#[test]
fn destroy_with_ovsdb_down_removes_everything_else() {
    let mut o = Ovs::start();
    o.add_bridge("br0");
    let dir = Dir::new();
    // A socket file nobody listens on: connect() gets ECONNREFUSED.
    let refusing = dir.0.join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&refusing).unwrap());
    let absent = dir.0.join("absent.sock");
    let live = o.endpoint();
    let mut n = 0u8;
    for (down, sock) in [("refusing", &refusing), ("absent", &absent)] {
        let dead = format!("unix:{}", sock.display());
        for by_id in [false, true] {
            for with_ovs in [true, false] {
                n += 1;
                let case = format!(
                    "OVSDB {down}, by {}, with_ovs {with_ovs}",
                    if by_id { "id" } else { "props" }
                );
                let id = o.host.new_id("d");
                let p = props(&dir, &id, n, with_ovs);
                let out = o.host.netprov(&["--ovsdb", &live, "apply", &p]);
                assert_eq!(code(&out), 0, "{case}: {}", text(&out));
                assert!(Ovs::pings(&id, &format!("70.1.{n}.1")), "{case}: wan");
                let port = format!("l{n}");
                if with_ovs {
                    assert_eq!(o.vsctl(&["list-ports", "br0"]), port, "{case}");
                }

                let target = if by_id { id.clone() } else { p.clone() };
                let out = o.host.netprov(&["--ovsdb", &dead, "destroy", &target]);
                assert_eq!(
                    leftovers(&o.host, &id),
                    Vec::<String>::new(),
                    "{case}: {}",
                    text(&out)
                );
                if with_ovs {
                    assert_eq!(code(&out), 1, "{case}: {}", text(&out));
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        err.contains(&format!(
                            "netprov destroy: {id}: remove OVS ports of {id}: OVS database at {dead}"
                        )),
                        "{case}: {err}"
                    );
                    assert_eq!(err.lines().count(), 1, "{case}: only OVSDB failed: {err}");
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    assert!(stdout.contains("destroyed in part"), "{case}: {stdout}");
                    assert!(stdout.contains("netns removed"), "{case}: {stdout}");
                    // The port's row is still there; once OVSDB answers, destroy (by id:
                    // the netns is gone) removes it.
                    assert_eq!(o.vsctl(&["list-ports", "br0"]), port, "{case}");
                    let out = o.host.netprov(&["--ovsdb", &live, "destroy", &id]);
                    assert_eq!(code(&out), 0, "{case}: {}", text(&out));
                    assert!(text(&out).contains("1 OVS ports"), "{case}: {}", text(&out));
                } else {
                    assert_eq!(code(&out), 0, "{case}: {}", text(&out));
                }
                assert_eq!(o.vsctl(&["list-ports", "br0"]), "", "{case}");
            }
        }
    }
}

/// `--json` destroy with OVSDB refusing: one entry, `ok: false`, every failure listed
/// with its errno, and the partial result (what was removed).
#[test]
fn destroy_json_lists_failures_and_what_was_removed() {
    let mut o = Ovs::start();
    o.add_bridge("br0");
    let dir = Dir::new();
    let id = o.host.new_id("j");
    let p = props(&dir, &id, 200, true);
    let out = o.host.netprov(&["--ovsdb", &o.endpoint(), "apply", &p]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    o.stop_ovsdb();
    let out = o
        .host
        .netprov(&["--json", "--ovsdb", &o.endpoint(), "destroy", &p]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v[0];
    assert_eq!(e["id"], json!(id), "{v}");
    assert_eq!(e["ok"], json!(false), "{v}");
    assert_eq!(e["errno"], json!(libc::ECONNREFUSED), "{v}");
    assert_eq!(e["errors"].as_array().unwrap().len(), 1, "{v}");
    assert!(
        e["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{v}"
    );
    assert_eq!(e["result"]["netns_removed"], json!(true), "{v}");
    assert!(e["result"]["routes_deleted"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(leftovers(&o.host, &id), Vec::<String>::new());
}

/// 8 concurrent `netprov apply` processes of one id, 20 rounds: every apply succeeds,
/// the container ends in sync with exactly one mount of its netns handle and working
/// traffic, and destroy leaves nothing.
#[test]
fn concurrent_applies_of_one_id_mount_the_netns_once() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let bin = testkit::netprov_bin();
    for round in 0..20u8 {
        let id = host.new_id("r");
        let p = dir.write_network(
            &id,
            json!({
                "interfaces": { "wan": { "ip4": "70.2.0.2/31", "hostIp4": "70.2.0.1/31",
                                         "hostName": format!("w{id}") } },
                "ip4route": "70.2.0.1",
                "masquerade": true,
            }),
        );
        let children: Vec<_> = (0..8)
            .map(|_| {
                host.cmd(bin.to_str().unwrap(), &["apply", &p])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        for o in &outs {
            assert_eq!(code(o), 0, "round {round}: {}", text(o));
        }
        // Exactly one of them made the changes; the others found them made.
        let made = outs
            .iter()
            .filter(|o| !String::from_utf8_lossy(&o.stdout).contains("in sync, nothing to do"))
            .count();
        assert_eq!(made, 1, "round {round}");
        assert_eq!(
            handle_mounts(&id),
            1,
            "round {round}: mounts of /run/netns/{id}"
        );
        let out = host.netprov(&["check", &p]);
        assert_eq!(code(&out), 0, "round {round}: {}", text(&out));
        host.ok("ping", &["-c1", "-W2", "70.2.0.2"]);
        let out = host.netprov(&["destroy", &id]);
        assert_eq!(code(&out), 0, "round {round}: {}", text(&out));
        assert_eq!(leftovers(&host, &id), Vec::<String>::new(), "round {round}");
    }
}

/// A netns handle with stacked mounts (as concurrent creators used to leave): destroy
/// takes all of them off and removes the handle in one go.
#[test]
fn destroy_removes_stacked_netns_mounts() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = host.new_id("s");
    let p = dir.write_network(
        &id,
        json!({ "interfaces": { "wan": { "ip4": "70.3.0.2/31", "hostIp4": "70.3.0.1/31",
                                         "hostName": format!("w{id}") } } }),
    );
    let out = host.netprov(&["apply", &p]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let h = format!("/run/netns/{id}");
    // Bind the handle on itself, twice: (with propagation between the shared /run/netns
    // peers) several nsfs mounts now stack at the path.
    for _ in 0..2 {
        testkit::ok("mount", &["--bind", &h, &h]);
    }
    assert!(handle_mounts(&id) >= 3, "{}", handle_mounts(&id));
    let out = host.netprov(&["destroy", &id]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(handle_mounts(&id), 0);
    assert_eq!(leftovers(&host, &id), Vec::<String>::new());
}

/// While another process holds a container's lock, a netprov of the same id waits and
/// says for what (after a short delay), then runs when the lock is released; a netprov
/// of another id runs meanwhile.
#[test]
fn same_id_waits_and_says_so_other_ids_do_not() {
    let host = HostNetns::new();
    let dir = Dir::new();
    let (a, b) = (unique("w"), unique("w"));
    let veth = |id: &str| {
        json!({ "interfaces": { "wan": { "ip4": "70.4.0.2/31", "hostIp4": "70.4.0.1/31",
                                         "hostName": format!("w{id}") } } })
    };
    let pa = dir.write_network(&a, veth(&a));
    let pb = dir.write_network(&b, veth(&b));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id_a = netprov::model::ContainerId::new(&a).unwrap();
    let held = rt
        .block_on(netprov::engine::lock::acquire(
            &id_a,
            netprov::engine::lock::Op::Apply,
        ))
        .unwrap();

    // Another id: not held up (check of a never-applied container: drift, exit 3).
    let out = host.netprov(&["check", &pb]);
    assert_eq!(code(&out), 3, "{}", text(&out));

    // The same id: waits, and says so on stderr.
    let bin = testkit::netprov_bin();
    let mut child = host
        .cmd(bin.to_str().unwrap(), &["check", &pa])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let want = format!(
        "waiting for lock /run/netprov/{a}.lock held by another netprov (apply, pid {})",
        std::process::id()
    );
    assert!(line.contains(&want), "{line}");
    // A warning at the default verbosity (no -v, no RUST_LOG), with its level.
    assert!(line.contains("WARN"), "{line}");
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(!Path::new(&format!("/run/netprov/{a}.lock")).exists());
}

/// A part of destroy that fails mid-way does not stop the rest: an `Existing` link that
/// cannot go back to the host (a link of its name appeared there) is reported, the
/// netns that holds it is kept (removing it would destroy that link), and the veth,
/// routes and host table are removed all the same. Once the name is free, destroy again
/// returns the link and removes the netns.
#[test]
fn destroy_carries_on_past_a_failing_part_and_keeps_a_netns_with_foreign_links() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = host.new_id("f");
    let ex = format!("x{id}");
    // A veth end stands in for a physical NIC (this kernel has no dummy driver); being
    // virtual, it would die with the netns instead of going back.
    host.add_veth(&ex, &format!("y{id}"));
    let p = dir.write_network(
        &id,
        json!({
            "interfaces": {
                "wan": { "ip4": "70.5.0.2/31", "hostIp4": "70.5.0.1/31", "hostName": format!("w{id}") },
                ex.clone(): { "ip4": "10.66.0.1/24" },
            },
            "ip4route": "70.5.0.1",
            "masquerade": true,
        }),
    );
    let out = host.netprov(&["apply", &p]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    host.ok("ping", &["-c1", "-W2", "70.5.0.2"]);
    // An impostor takes the existing link's name in the host.
    host.add_veth(&ex, &format!("z{id}"));

    let out = host.netprov(&["destroy", &id]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "netprov destroy: {id}: move {ex} back to the host netns from netns {id}: File exists"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "netprov destroy: {id}: delete netns /run/netns/{id}: kept"
        )),
        "{err}"
    );
    let left = leftovers(&host, &id);
    assert_eq!(
        left,
        vec!["netns handle (1 mounts)".to_string()],
        "{}",
        text(&out)
    );
    testkit::ok("ip", &["-n", &id, "link", "show", "dev", &ex]);

    host.ok("ip", &["link", "del", &ex]);
    let out = host.netprov(&["destroy", &id]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(leftovers(&host, &id), Vec::<String>::new());
    host.ok("ip", &["link", "show", "dev", &ex]);
}

/// Two multi-file applies naming the same containers in opposite orders, at once: each
/// takes a container's lock only while applying that container, so neither can wait
/// for the other in a cycle; both finish, the containers are in sync.
#[test]
fn multi_file_applies_in_opposite_orders_do_not_deadlock() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let bin = testkit::netprov_bin();
    for round in 0..5u8 {
        let ids: Vec<String> = (0..3).map(|_| unique("m")).collect();
        let files: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| {
                host.track(id);
                dir.write_network(
                    id,
                    json!({ "interfaces": { "wan": {
                        "ip4": format!("70.6.{n}.2/31"), "hostIp4": format!("70.6.{n}.1/31"),
                        "hostName": format!("w{id}") } } }),
                )
            })
            .collect();
        let mut rev = files.clone();
        rev.reverse();
        let children: Vec<_> = [&files, &rev, &files, &rev]
            .iter()
            .map(|fs| {
                let mut args = vec!["apply"];
                args.extend(fs.iter().map(String::as_str));
                host.cmd(bin.to_str().unwrap(), &args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert_eq!(code(&o), 0, "round {round}: {}", text(&o));
        }
        let mut args = vec!["check"];
        args.extend(files.iter().map(String::as_str));
        let out = host.netprov(&args);
        assert_eq!(code(&out), 0, "round {round}: {}", text(&out));
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(handle_mounts(id), 1, "round {round}");
            host.ok("ping", &["-c1", "-W2", &format!("70.6.{n}.2")]);
        }
        let mut args = vec!["destroy"];
        args.extend(ids.iter().map(String::as_str));
        let out = host.netprov(&args);
        assert_eq!(code(&out), 0, "round {round}: {}", text(&out));
        for id in &ids {
            assert_eq!(leftovers(&host, id), Vec::<String>::new(), "round {round}");
        }
    }
}

/// A macvlan netprov put on a lent link (an existing host link moved into the container)
/// is deleted by destroy before the link goes back to the host, not left to the kernel's
/// cleanup of the old netns, which runs later: until then the old macvlan holds its MAC
/// on the returned link, and the kernel refuses a second macvlan with that MAC on it
/// (EADDRINUSE) — the next container on that link with the same VRRP id could not bring
/// its own up. Each round checks right after destroy returns, with a macvlan of that MAC
/// on the returned link in the host, and then applies the next container.
#[test]
fn destroy_takes_its_macvlans_off_a_lent_link_before_returning_it() {
    let mut host = HostNetns::new();
    host.add_veth("lent0", "lent0-p");
    let dir = Dir::new();
    for round in 0..6 {
        let id = host.new_id("mvl");
        let p = dir.write_network(
            &id,
            json!({ "interfaces": { "lent0": { "ip4": "10.62.0.2/24",
                     "macvlan": { "ip4": "10.63.0.10/24", "vrid": 12 } } } }),
        );
        let out = host.netprov(&["apply", &p]);
        assert_eq!(code(&out), 0, "round {round}: {}", text(&out));
        let out = host.netprov(&["destroy", &p]);
        assert_eq!(code(&out), 0, "round {round}: {}", text(&out));
        // RFC 5798's IPv4 MAC for VRRP id 12, as netprov gave the macvlan.
        host.ok(
            "ip",
            &[
                "link",
                "add",
                "link",
                "lent0",
                "name",
                "mvprobe",
                "address",
                "00:00:5e:00:01:0c",
                "type",
                "macvlan",
                "mode",
                "bridge",
            ],
        );
        let up = host.run("ip", &["link", "set", "mvprobe", "up"]);
        host.ok("ip", &["link", "del", "mvprobe"]);
        assert!(
            up.status.success(),
            "round {round}: the returned link still carries the old macvlan's MAC: {}",
            text(&up)
        );
    }
}
