//! The fast paths of issue 13, for correctness (their speed lives in bench/run):
//!
//! * a cold apply checks its ruleset by loading it: a ruleset the kernel refuses is
//!   still invalid input (exit 2, libnftables' line) and leaves nothing behind;
//! * the ruleset's marker records the generation of netprov's own commit: intact while
//!   nobody commits in the netns, drift after any commit there, never confused by
//!   commits in other namespaces;
//! * destroy in bulk (the kernel's netns cleanup): when it returns, nothing is left in
//!   the host netns, for many containers destroyed by one process too; and the next
//!   apply of the same ids works.

use std::path::PathBuf;

use crate::engine_common::{container, host_links, host_netprov_routes, in_ct_ok, veth};
use netprov::model::Ruleset;
use netprov::nft::ruleset;
use netprov::nft::RulesetState;
use serde_json::json;
use testkit::{ok, text, unique, HostNetns};

const RULES: &str = "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    meta l4proto icmp accept\n  }\n}\n";

/// Files under a fresh temp dir, removed on drop.
struct Dir(PathBuf);
impl Dir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(format!("netprov-{}", unique("d")));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn props(&self, id: &str, i: usize, nft: &str) -> String {
        let p = self.0.join(format!("{id}.json"));
        let v = json!({ "id": id, "network": {
            "interfaces": { "eth0": {
                "ip4": format!("10.79.{i}.2/24"), "hostIp4": format!("10.79.{i}.1/24"),
                "hostName": format!("hf{id}") } },
            "ip4route": format!("10.79.{i}.1"),
            "nft": nft,
        }});
        std::fs::write(&p, v.to_string()).unwrap();
        p.display().to_string()
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bad_rulesets() -> Vec<(&'static str, usize)> {
    // (ruleset, line of the error): a parser error, an evaluation error (an unknown
    // interface) and a jump to a chain that does not exist.
    vec![
        ("table inet filter {\n  chain input {\n    type filter hook input priority 0;\n    meta l4proto icmp dropp\n  }\n}\n", 4),
        ("table inet filter {\n  chain input {\n    type filter hook input priority 0;\n    iif nosuchif accept\n  }\n}\n", 4),
        ("table inet filter {\n  chain input {\n    type filter hook input priority 0;\n    jump nowhere\n  }\n}\n", 4),
    ]
}

#[test]
fn refused_ruleset_on_a_cold_apply_is_invalid_input_and_leaves_nothing() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    for (i, (bad, line)) in bad_rulesets().into_iter().enumerate() {
        let id = host.new_id("f");
        let p = dir.props(&id, i, bad);
        let o = host.netprov(&["apply", &p]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("network.nft"), "{err}");
        assert!(err.contains(&format!("line {line}")), "{err}");
        assert!(!err.contains("netprov_state"), "{err}");
        // Nothing left: no handle, no host end, no host route.
        assert!(!PathBuf::from("/run/netns").join(&id).exists());
        assert!(host_links(&host).is_empty(), "{:?}", host_links(&host));
        assert_eq!(host_netprov_routes(&host).trim(), "");
        // The same id with a valid ruleset then applies cleanly, and traffic flows.
        let p = dir.props(&id, i, RULES);
        let o = host.netprov(&["apply", &p]);
        assert!(o.status.success(), "{}", text(&o));
        host.ok("ping", &["-c1", "-W3", &format!("10.79.{i}.2")]);
        let o = host.netprov(&["destroy", &p]);
        assert!(o.status.success(), "{}", text(&o));
    }
}

#[test]
fn the_generation_tells_netprovs_commit_from_anyone_elses() {
    let mut host = HostNetns::new();
    let a = container(&mut host);
    let b = container(&mut host);
    for d in [&a, &b] {
        ok("ip", &["netns", "add", d.id.as_str()]);
    }
    let r = Ruleset { text: RULES.into() };
    let (pa, pb) = (a.netns.path(), b.netns.path());
    ruleset::load(pa, &r).unwrap();
    let st = ruleset::observe(pa).unwrap();
    assert!(st.is_intact(), "{st:?}");
    assert_eq!(ruleset::plan(Some(&r), &st), None);
    // Commits elsewhere (another netns, many of them) do not touch a's generation.
    for _ in 0..3 {
        ruleset::load(pb, &r).unwrap();
    }
    assert!(ruleset::observe(pa).unwrap().is_intact());
    // Listing is not committing.
    in_ct_ok(&a, "nft", &["list", "ruleset"]);
    assert!(ruleset::observe(pa).unwrap().is_intact());
    // Any commit in a's netns reads as a change; a commit that changes the listing is
    // drift, and so — conservatively — is one that left no trace (the marker cannot
    // tell; reloading is always safe).
    for cmds in [
        "add table ip other",
        "add table ip gone; delete table ip gone",
    ] {
        ruleset::load(pa, &r).unwrap();
        assert!(ruleset::observe(pa).unwrap().is_intact());
        in_ct_ok(&a, "nft", &[cmds]);
        let st = ruleset::observe(pa).unwrap();
        assert!(
            matches!(st, RulesetState::Loaded { .. }) && !st.is_intact(),
            "{cmds}: {st:?}"
        );
        assert!(ruleset::plan(Some(&r), &st).is_some());
    }
    // A marker written by an older netprov (live digest, no generation) still reads.
    in_ct_ok(
        &a,
        "nft",
        &["flush ruleset; table inet netprov_state { comment \"netprov src=ab live=pending\"; }"],
    );
    let st = ruleset::observe(pa).unwrap();
    assert!(
        matches!(&st, RulesetState::Loaded { source_digest, recorded_live_digest: None, .. } if source_digest == "ab"),
        "{st:?}"
    );
}

#[test]
fn destroy_of_many_in_one_process_leaves_nothing_and_the_ids_apply_again() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let ids: Vec<String> = (0..5).map(|_| unique("g")).collect();
    let files: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            host.track(id);
            dir.props(id, 10 + i, RULES)
        })
        .collect();
    let args = |cmd: &'static str| -> Vec<String> {
        std::iter::once(cmd.to_owned())
            .chain(files.iter().cloned())
            .collect()
    };
    for round in 0..2 {
        let a = args("apply");
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = host.netprov(&a);
        assert!(o.status.success(), "round {round}: {}", text(&o));
        for i in 0..ids.len() {
            host.ok("ping", &["-c1", "-W3", &format!("10.79.{}.2", 10 + i)]);
        }
        // By file and by id, mixed.
        let mut d: Vec<String> = vec!["destroy".into()];
        for (i, (id, f)) in ids.iter().zip(&files).enumerate() {
            d.push(if i % 2 == 0 { f.clone() } else { id.clone() });
        }
        let d: Vec<&str> = d.iter().map(String::as_str).collect();
        let o = host.netprov(&d);
        assert!(o.status.success(), "round {round}: {}", text(&o));
        // Right when destroy returned: the kernel's cleanup already took the host ends.
        assert!(
            host_links(&host).is_empty(),
            "round {round}: {:?}",
            host_links(&host)
        );
        assert_eq!(host_netprov_routes(&host).trim(), "");
        for id in &ids {
            assert!(!PathBuf::from("/run/netns").join(id).exists());
        }
    }
}

/// The engine-level twin: an owned netns's veth goes with the netns, and a host end the
/// container no longer points at (props only) is still found by name.
#[test]
fn destroy_by_props_finds_host_ends_left_without_their_peer() {
    let mut host = HostNetns::new();
    let e = crate::engine_common::engine(&host, None);
    let mut d = container(&mut host);
    d.interfaces
        .push(veth("lan", &["10.80.0.2/24"], &["10.80.0.1/24"]));
    e.apply(&d).unwrap();
    // A marked host end whose container end is gone (an interrupted run's leftover):
    // move the container end away into a scratch netns so the peer is elsewhere.
    let scratch = host.new_id("s");
    ok("ip", &["netns", "add", &scratch]);
    in_ct_ok(&d, "ip", &["link", "set", "lan", "netns", &scratch]);
    let rep = e
        .destroy(&netprov::engine::DestroyTarget::Props(d.clone()))
        .unwrap();
    assert!(rep.netns_removed, "{rep:?}");
    assert!(host_links(&host).is_empty(), "{:?}", host_links(&host));
}

/// The verifying observe after a pass looks up, one by one, the routes the pass added
/// through a host link it created, instead of listing the host's routes (see
/// `engine::observe::FreshHostRoutes`). Whichever route step of a cold apply is lost
/// (the test hook `--drop-step` does not send it), the second pass repairs exactly it;
/// then `check` is clean, the host has exactly the wanted netprov routes and traffic
/// flows both ways.
#[test]
fn a_cold_apply_that_loses_any_route_step_repairs_exactly_that_one() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = host.new_id("lr");
    let hostname = format!("lr{}", &id[id.len() - 6..]);
    let p = dir.0.join(format!("{id}.json"));
    let props = json!({ "id": id, "network": {
        "interfaces": { "eth0": {
            "ip4": "10.78.0.3/31", "hostIp4": "10.78.0.2/31",
            "ip6": "fd78::3/127", "hostIp6": "fd78::2/127",
            "hostName": hostname } },
        "ip4route": "10.78.0.2", "ip6route": "fd78::2",
        "routes": [ { "to": "10.78.9.0/24", "via": "10.78.0.2" } ] }});
    std::fs::write(&p, props.to_string()).unwrap();
    let p = p.display().to_string();
    let plan = host.netprov(&["--json", "plan", &p]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let steps = plan[0]["result"]["steps"].as_array().unwrap().clone();
    let routes: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i]["op"] == "replace_route")
        .collect();
    // Two host peer routes, two container peer routes, two defaults, one explicit.
    assert_eq!(routes.len(), 7, "{plan}");
    let mut wanted_host = None;
    for i in routes {
        let o = host.netprov(&["--json", "apply", "--drop-step", &i.to_string(), &p]);
        assert!(o.status.success(), "dropping step {i}: {}", text(&o));
        let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let r = &rep[0]["result"];
        assert_eq!(r["passes"], 2, "dropping step {i}: {rep}");
        assert_eq!(
            r["repairs"][0]["steps"],
            json!([steps[i]]),
            "dropping step {i}"
        );
        let o = host.netprov(&["check", &p]);
        assert_eq!(o.status.code(), Some(0), "dropping step {i}: {}", text(&o));
        let routes = host_netprov_routes(&host);
        match &wanted_host {
            None => wanted_host = Some(routes),
            Some(w) => assert_eq!(&routes, w, "dropping step {i}"),
        }
        in_ct_ok_path(&id, "ping", &["-c1", "-W3", "10.78.0.2"]);
        in_ct_ok_path(&id, "ping", &["-c1", "-W3", "fd78::2"]);
        let o = host.netprov(&["destroy", &p]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let w = wanted_host.unwrap();
    assert!(
        w.contains(&format!("10.78.0.3 dev {hostname} "))
            && w.contains(&format!("fd78::3 dev {hostname} ")),
        "{w}"
    );
}

fn in_ct_ok_path(id: &str, cmd: &str, args: &[&str]) -> String {
    testkit::ok_cmd(testkit::nsenter(
        &PathBuf::from("/run/netns").join(id),
        cmd,
        args,
    ))
}
