//! What is refused as an adopted netns: the host's own netns, a foreign `/run/netns`
//! handle, a symlink.

use super::*;

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
        let f = dir.write_props(&p);
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
    let f = dir.write_props(&props(
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
        ..Default::default()
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
    let id = host.new_id("f");
    ok("ip", &["netns", "add", &id]);
    foreign_veths(&id);
    let inside = snapshot(&id);
    let outside = host_snapshot(&host);
    let f = dir.write_props(&props(&id, &unique("v"), 2, json!({ "nft": RULES_A })));
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
    let f = dir.write_props(&props(&id, &unique("v"), 2, json!({ "netns_path": path })));
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
    let target = host.new_id("t");
    ok("ip", &["netns", "add", &target]);
    let id = unique("s");
    let link = Path::new("/run/netns").join(&id);
    std::os::unix::fs::symlink(format!("/run/netns/{target}"), &link).unwrap();
    let _guard = Unlink(link.clone());
    let inside = snapshot(&target);
    let f = dir.write_props(&props(&id, &unique("v"), 3, json!({})));
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
