//! The `netprov` binary end to end, inside a simulated host netns: plan/apply/check/
//! destroy on veth containers, exit codes, idempotence measured from `--json`, crash
//! recovery (fault injection after every step, and real SIGKILLs), and no child process.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::PropsDir as Dir;
use testkit::{ok, run, text, unique, HostNetns};

/// A veth container `id` with /31 and /127 point-to-point addresses from block `n`.
fn veth_props(id: &str, n: u8) -> Value {
    serde_json::json!({
        "id": id,
        "network": {
            "interfaces": { "wan": {
                "ip4": format!("10.77.{n}.2/31"), "hostIp4": format!("10.77.{n}.3/31"),
                "ip6": format!("fd77:{n}::a/127"), "hostIp6": format!("fd77:{n}::b/127")
            }},
            "ip4route": format!("10.77.{n}.3"),
            "ip6route": format!("fd77:{n}::b")
        },
        "sysctl": "net.ipv4.ip_forward=1"
    })
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// Nothing of container `id` is left: no handle, no host end, no netprov route.
fn assert_gone(host: &HostNetns, id: &str) {
    assert!(
        !Path::new("/run/netns").join(id).exists(),
        "handle of {id} left"
    );
    let links = host.ok("ip", &["-o", "link"]);
    assert!(!links.contains(&format!("np-{id}")), "{links}");
    for fam in ["-4", "-6"] {
        let routes = host.ok("ip", &[fam, "route", "show", "proto", "77"]);
        assert!(routes.trim().is_empty(), "{routes}");
    }
}

#[test]
fn apply_is_idempotent_check_reports_drift_and_destroy_by_id_leaves_nothing() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = host.new_id("c");
    let f = dir.write("c.json", &veth_props(&id, 1));

    // plan shows exactly what apply then does.
    let planned = json_of(&host.netprov(&["--json", "plan", &f]));
    let applied = host.netprov(&["--json", "apply", &f]);
    assert_eq!(code(&applied), 0, "{}", text(&applied));
    let applied = json_of(&applied);
    assert_eq!(
        planned[0]["result"]["steps"],
        applied[0]["result"]["plan"]["steps"]
    );
    assert!(applied[0]["result"]["messages"].as_u64().unwrap() > 0);

    // Real traffic both ways, both families.
    host.ok("ping", &["-c1", "-W2", "10.77.1.2"]);
    host.ok("ping", &["-c1", "-W2", "fd77:1::a"]);
    ok(
        "nsenter",
        &[
            &format!("--net=/run/netns/{id}"),
            "ping",
            "-c1",
            "-W2",
            "10.77.1.3",
        ],
    );

    // Second apply: empty plan, zero mutating messages.
    let again = json_of(&host.netprov(&["--json", "apply", &f]));
    assert_eq!(again[0]["result"]["plan"]["steps"], Value::Array(vec![]));
    assert_eq!(again[0]["result"]["messages"], 0);
    assert_eq!(code(&host.netprov(&["check", &f])), 0);

    // Drift: an address deleted behind netprov's back.
    ok(
        "ip",
        &["-n", &id, "addr", "del", "10.77.1.2/31", "dev", "wan"],
    );
    let drift = host.netprov(&["check", &f]);
    assert_eq!(code(&drift), 3, "{}", text(&drift));
    assert!(text(&drift).contains("10.77.1.2/31"), "{}", text(&drift));
    let repair = json_of(&host.netprov(&["--json", "apply", &f]));
    let steps = repair[0]["result"]["plan"]["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert_eq!(code(&host.netprov(&["check", &f])), 0);
    host.ok("ping", &["-c1", "-W2", "10.77.1.2"]);

    // destroy by id alone, twice (the second finds nothing and succeeds).
    let d = host.netprov(&["destroy", &id]);
    assert_eq!(code(&d), 0, "{}", text(&d));
    assert_gone(&host, &id);
    assert_eq!(code(&host.netprov(&["destroy", &id])), 0);
}

#[test]
fn several_files_in_one_process_and_errors_name_the_operation() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let ids: Vec<String> = (0..3).map(|_| unique("c")).collect();
    let files: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            host.track(id);
            dir.write(&format!("{i}.json"), &veth_props(id, 10 + i as u8))
        })
        .collect();
    let mut args = vec!["apply"];
    args.extend(files.iter().map(String::as_str));
    let out = host.netprov(&args);
    assert_eq!(code(&out), 0, "{}", text(&out));
    for i in 0..3 {
        host.ok("ping", &["-c1", "-W2", &format!("10.77.{}.2", 10 + i)]);
    }

    // A foreign link holding a wanted host-end name: a clear error, exit 1, untouched.
    let id = host.new_id("c");
    let f = dir.write("x.json", &veth_props(&id, 20));
    let hostend = format!("np-{id}-wan");
    host.add_veth(&hostend, "foreignpeer");
    let out = host.netprov(&["apply", &f]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains(&hostend), "{}", text(&out));
    assert!(host.ok("ip", &["-o", "link"]).contains("foreignpeer"));
    host.netprov(&["destroy", &f]);
    assert!(host.ok("ip", &["-o", "link"]).contains("foreignpeer"));

    let mut args = vec!["destroy"];
    args.extend(ids.iter().map(String::as_str));
    assert_eq!(code(&host.netprov(&args)), 0);
    for id in &ids {
        assert_gone(&host, id);
    }
}

/// Stopping dead after each step N (`--fail-after`, no rollback, as a SIGKILL would)
/// always leaves a state the next apply converges from and destroy cleans up.
#[test]
fn a_crash_after_any_step_is_recovered_by_the_next_apply() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = host.new_id("c");
    let f = dir.write("c.json", &veth_props(&id, 30));
    let plan = json_of(&host.netprov(&["--json", "plan", &f]));
    let len = plan[0]["result"]["steps"].as_array().unwrap().len();
    assert!(len >= 10, "{plan}");
    for k in 1..len {
        let n = k.to_string();
        let crashed = host.netprov(&["apply", "--fail-after", &n, &f]);
        assert_eq!(code(&crashed), 1, "fail-after {k}: {}", text(&crashed));
        let out = host.netprov(&["apply", &f]);
        assert_eq!(code(&out), 0, "after crash at {k}: {}", text(&out));
        let chk = host.netprov(&["check", &f]);
        assert_eq!(code(&chk), 0, "after crash at {k}: {}", text(&chk));
        host.ok("ping", &["-c1", "-W2", "10.77.30.2"]);
        assert_eq!(code(&host.netprov(&["destroy", &id])), 0);
        assert_gone(&host, &id);
    }
    // A crash followed directly by destroy also leaves nothing.
    for k in [1, len / 2, len - 1] {
        host.netprov(&["apply", "--fail-after", &k.to_string(), &f]);
        assert_eq!(code(&host.netprov(&["destroy", &id])), 0);
        assert_gone(&host, &id);
    }
}

/// Real SIGKILLs at several moments of a multi-container apply.
#[test]
fn sigkill_during_apply_then_apply_converges_and_destroy_leaves_nothing() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let ids: Vec<String> = (0..8).map(|_| unique("k")).collect();
    let files: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            host.track(id);
            dir.write(&format!("{i}.json"), &veth_props(id, 40 + i as u8))
        })
        .collect();
    for delay_ms in [1u64, 3, 6, 10, 20] {
        let bin = testkit::netprov_bin();
        let mut child = host
            .cmd(bin.to_str().unwrap(), &[])
            .arg("apply")
            .args(&files)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        let mut apply = vec!["apply"];
        apply.extend(files.iter().map(String::as_str));
        let out = host.netprov(&apply);
        assert_eq!(code(&out), 0, "after kill at {delay_ms} ms: {}", text(&out));
        let mut check = vec!["check"];
        check.extend(files.iter().map(String::as_str));
        let out = host.netprov(&check);
        assert_eq!(code(&out), 0, "after kill at {delay_ms} ms: {}", text(&out));

        let mut destroy = vec!["destroy"];
        destroy.extend(ids.iter().map(String::as_str));
        assert_eq!(code(&host.netprov(&destroy)), 0);
        for id in &ids {
            assert_gone(&host, id);
        }
    }
}

/// netprov never runs a program: under `strace -f -e trace=execve` the only execve is
/// netprov's own.
#[test]
fn netprov_spawns_no_child_process() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = host.new_id("c");
    let f = dir.write("c.json", &veth_props(&id, 50));
    let bin = testkit::netprov_bin();
    for args in [
        vec!["apply", f.as_str()],
        vec!["plan", f.as_str()],
        vec!["check", f.as_str()],
        vec!["destroy", id.as_str()],
    ] {
        let trace = dir.0.join("trace");
        let trace_s = trace.to_str().unwrap();
        let mut strace = vec![
            "-f",
            "-e",
            "trace=execve",
            "-o",
            trace_s,
            bin.to_str().unwrap(),
        ];
        strace.extend(args.iter().copied());
        let out = host.run("strace", &strace);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let log = std::fs::read_to_string(&trace).unwrap();
        let execs: Vec<&str> = log.lines().filter(|l| l.contains("execve(")).collect();
        assert_eq!(execs.len(), 1, "{args:?} spawned: {log}");
    }
    let _ = run("true", &[]);
}

/// netprov's own libnftnl (linked statically where the system has the archive,
/// netprov/build.rs) stays its own: the executable exports none of its symbols, so
/// libnftables, loaded for container rulesets with a shared libnftnl of its own, never
/// binds to netprov's copy (two copies of one library's state would then meet).
#[test]
fn libnftnl_symbols_are_not_exported() {
    let bin = testkit::netprov_bin();
    let out = run("nm", &["-D", "--defined-only", bin.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let exported = String::from_utf8_lossy(&out.stdout);
    let leaked: Vec<&str> = exported
        .lines()
        .filter(|l| l.contains(" nftnl_") || l.contains(" mnl_"))
        .collect();
    assert!(leaked.is_empty(), "exported: {leaked:?}");
}

/// Started with fds 0-2 closed (a unit whose stdout was closed, say), netprov opens
/// /dev/null on them before anything else, as std's runtime start did before netprov
/// replaced it (src/main.rs). Otherwise the files, sockets and event fds it opens take
/// those numbers and its output and logs go into them: every write to fd 1 and 2 must
/// succeed (into /dev/null), none may hit another object (EBADF, EINVAL).
#[test]
fn closed_standard_fds_are_reopened_before_anything_else() {
    let host = HostNetns::new();
    let dir = Dir::new();
    let id = unique("c");
    let f = dir.write("c.json", &veth_props(&id, 51));
    let bin = testkit::netprov_bin();
    let trace = dir.0.join("trace");
    let script = format!("exec 0<&- 1>&- 2>&-; exec {} -v apply {f}", bin.display());
    let out = host.run(
        "strace",
        &[
            "-f",
            "-e",
            "trace=write",
            "-o",
            trace.to_str().unwrap(),
            "sh",
            "-c",
            &script,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let log = std::fs::read_to_string(&trace).unwrap();
    let std_writes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" write(1, ") || l.contains(" write(2, "))
        .collect();
    let failed: Vec<&&str> = std_writes.iter().filter(|w| w.contains("= -1 ")).collect();
    // Checked and removed before the assertions, so a failure leaves nothing behind.
    let check = code(&host.netprov(&["check", &f]));
    let out = host.netprov(&["destroy", &id]);
    assert!(out.status.success(), "{}", text(&out));
    // -v: the span lines go to stderr, the plan to stdout.
    assert!(std_writes.len() > 2, "{log}");
    assert!(
        failed.is_empty(),
        "writes to a standard fd failed: {failed:?}"
    );
    assert_eq!(check, 0);
}

/// `validate` rejects a ruleset-free file with a wrong VLAN before any netns is made.
#[test]
fn invalid_input_touches_nothing() {
    let host = HostNetns::new();
    let dir = Dir::new();
    let id = unique("c");
    let mut v = veth_props(&id, 60);
    v["network"]["interfaces"]["wan"]["ip4"] = Value::from("10.77.60.2/33");
    let f = dir.write("bad.json", &v);
    let out = host.netprov(&["apply", &f]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        text(&out).contains("network.interfaces.wan.ip4"),
        "{}",
        text(&out)
    );
    assert!(!Path::new("/run/netns").join(&id).exists());
    let links = Command::new("ip")
        .args(["-n", &host.name, "-o", "link"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("np-"));
}

/// A one-file cold apply makes its netns on another CPU while it validates, observes
/// and plans (`kernel::netns_ahead`); the netns step mounts that netns, which carries
/// the container's owner mark, and the apply converges. A no-op re-apply makes none.
/// With one CPU in the process's mask nothing is made ahead, and only the result is
/// checked.
#[test]
fn a_one_file_cold_apply_mounts_the_netns_it_made_ahead() {
    const MADE_AHEAD: &str = "mounted the netns made ahead";
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = host.new_id("ah");
    let f = dir.write("ah.json", &veth_props(&id, 61));
    let o = host.netprov(&["-vv", "apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        text(&o).contains(MADE_AHEAD),
        cpus_in_mask() > 1,
        "{}",
        text(&o)
    );
    let lo = run("ip", &["-n", &id, "-d", "link", "show", "lo"]);
    assert!(
        text(&lo).contains(&format!("alias netprov-netns:{id}")),
        "{}",
        text(&lo)
    );
    assert_eq!(code(&host.netprov(&["check", &f])), 0);
    host.ok("ping", &["-c1", "-W2", "10.77.61.2"]);

    let again = host.netprov(&["-vv", "apply", &f]);
    assert_eq!(code(&again), 0, "{}", text(&again));
    assert!(!text(&again).contains(MADE_AHEAD), "{}", text(&again));

    assert_eq!(code(&host.netprov(&["destroy", &f])), 0);
    assert_gone(&host, &id);
}

/// The CPUs this process may run on (its children inherit the mask).
fn cpus_in_mask() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, filled in by the kernel.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 1;
        }
        libc::CPU_COUNT(&set) as usize
    }
}
