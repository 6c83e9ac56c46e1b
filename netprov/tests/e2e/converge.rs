//! Convergence property: for valid props A and B of one container id, `apply A`,
//! `check` clean, `apply B`, `check` clean — each apply converging in one plan — and
//! `destroy` leaves nothing. Real netlink in namespaces this test creates.
//!
//! Pairs come from seeded random walks over the props grammar of
//! `testkit::props_gen` (each step of a walk is a pair: the previous props → the next),
//! one fresh id per walk, destroyed at the walk's end. Environment:
//! `NETPROV_CONVERGE_PAIRS` (default 300), `NETPROV_CONVERGE_WALK` (steps per walk,
//! default 6), `NETPROV_CONVERGE_SEED` (replay a run; printed at the start and on
//! failure), `NETPROV_CONVERGE_WALK_SEED` (replay one walk, printed on failure).
//!
//! Run as root: `cargo test -p netprov --test e2e converge -- --nocapture`.

use crate::engine_common::*;
use std::path::Path;

use netprov::engine::{DestroyTarget, Engine};
use netprov::model::{Desired, InterfaceKind, NetnsSpec};
use serde_json::Value;
use testkit::props_gen::{
    existing_names, host_fixtures, reuses_lent_name, valid_props, Facts, Kinds, Rng, OVS_BRIDGES,
};
use testkit::{unique, HostNetns};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// Everything a failure message needs to replay the pair.
struct Ctx<'a> {
    run_seed: u64,
    walk_seed: u64,
    step: usize,
    prev: Option<&'a Value>,
    next: &'a Value,
}

impl Ctx<'_> {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n  pair {} of walk NETPROV_CONVERGE_WALK_SEED={} (run NETPROV_CONVERGE_SEED={})\n  A = {}\n  B = {}",
            self.step,
            self.walk_seed,
            self.run_seed,
            self.prev.map_or("(nothing)".into(), |v| v.to_string()),
            self.next
        )
    }
}

/// Apply, then: a second apply sends nothing, check is clean, every veth answers a ping.
/// Returns the number of passes the apply needed.
fn apply_and_verify(e: &Engine, d: &Desired, facts: &Facts, cx: &Ctx) -> usize {
    // As `netprov apply` with one file does: a netns the apply is to create is made
    // ahead on another CPU, and its ruleset loaded there (kernel::netns_ahead).
    netprov::kernel::netns_ahead::start_for(&cx.next.to_string(), Path::new("/run/netns"));
    let rep = e
        .apply(d)
        .unwrap_or_else(|err| cx.fail(&format!("apply B failed: {err}")));
    let drift = e
        .check(d)
        .unwrap_or_else(|err| cx.fail(&format!("check failed: {err}")));
    if !drift.is_empty() {
        let list: Vec<String> = drift.iter().map(|x| x.to_string()).collect();
        cx.fail(&format!(
            "check after apply found drift:\n    {}",
            list.join("\n    ")
        ));
    }
    let again = e
        .apply(d)
        .unwrap_or_else(|err| cx.fail(&format!("re-apply failed: {err}")));
    if again.messages != 0 {
        cx.fail(&format!(
            "re-apply of unchanged props sent {} messages:\n{}",
            again.messages, again.plan
        ));
    }
    for (ifname, addr) in &facts.pings {
        let out = in_ct(d, "ping", &["-c1", "-W2", "-I", ifname, addr]);
        if !out.status.success() {
            cx.fail(&format!(
                "ping {addr} over {ifname} from the container failed: {}",
                testkit::text(&out)
            ));
        }
    }
    if rep.passes > 1 {
        let repairs: Vec<String> = rep.repairs.iter().map(|p| p.to_string()).collect();
        eprintln!(
            "needed {} passes (walk seed {}, pair {}): first plan\n{}repairs\n{}",
            rep.passes,
            cx.walk_seed,
            cx.step,
            rep.plan,
            repairs.join("")
        );
    }
    rep.passes
}

/// After destroy: only the fixtures are left in the host netns, with no address,
/// netprov route or netprov nftables table; the container netns handle is gone.
fn assert_nothing_left(host: &HostNetns, fixtures: &[String], d: &Desired, cx: &Ctx) {
    let mut links = host_links(host);
    links.sort();
    if links != fixtures {
        cx.fail(&format!(
            "after destroy the host has links {links:?}, want only {fixtures:?}"
        ));
    }
    let routes = host_netprov_routes(host);
    if !routes.is_empty() {
        cx.fail(&format!("after destroy netprov routes remain:\n{routes}"));
    }
    let addrs = host.ok("ip", &["-o", "addr", "show"]);
    if let Some(l) = addrs
        .lines()
        .find(|l| l.contains(" inet 10.") || l.contains(" inet6 fd"))
    {
        cx.fail(&format!("after destroy a host address remains: {l}"));
    }
    let tables = host.ok("nft", &["list", "tables"]);
    if tables.contains("netprov") {
        cx.fail(&format!("after destroy nftables tables remain: {tables}"));
    }
    match &d.netns {
        NetnsSpec::Owned { .. } if netns_exists(d) => {
            cx.fail("after destroy the netns handle remains")
        }
        NetnsSpec::Adopted { path } => {
            // An adopted netns stays, with nothing of netprov's in it.
            let ns = format!("--net={}", path.display());
            let links = testkit::ok("nsenter", &[&ns, "ip", "-o", "link", "show"]);
            if links.lines().count() != 1 {
                cx.fail(&format!(
                    "after destroy the adopted netns has links:\n{links}"
                ));
            }
            for fam in ["-4", "-6"] {
                let r = testkit::ok("nsenter", &[&ns, "ip", fam, "route", "show", "proto", "77"]);
                if !r.trim().is_empty() {
                    cx.fail(&format!("after destroy the adopted netns has routes:\n{r}"));
                }
            }
            let t = testkit::ok("nsenter", &[&ns, "nft", "list", "tables"]);
            if !t.trim().is_empty() {
                cx.fail(&format!("after destroy the adopted netns has tables:\n{t}"));
            }
        }
        _ => {}
    }
}

/// What one property run works with.
struct Run<'a> {
    e: &'a Engine,
    kinds: Kinds,
    /// The host links before the first walk: all that may be left after a destroy.
    fixtures: Vec<String>,
    /// More "nothing left" checks (OVS ports).
    extra: &'a dyn Fn(&Ctx),
    run_seed: u64,
    len: usize,
}

/// Runs one walk; returns (pairs, pairs needing more than one pass).
fn walk(r: &Run, host: &mut HostNetns, walk_seed: u64) -> (usize, usize) {
    let (e, fixtures, run_seed, len) = (r.e, &r.fixtures, r.run_seed, r.len);
    let id = host.new_id("p");
    // Adopted: a netns the test made, as a container runtime would.
    let adopted = (r.kinds == Kinds::Adopted).then(|| {
        let name = unique("a");
        testkit::ok("ip", &["netns", "add", &name]);
        host.track(&name);
        format!("/run/netns/{name}")
    });
    let mut rng = Rng::new(walk_seed);
    let mut prev: Option<(Value, Desired)> = None;
    let (mut pairs, mut repaired) = (0, 0);
    let mut lent: Vec<String> = Vec::new();
    for step in 0..len {
        let (v, d, facts) = valid_props(&mut rng, &id, r.kinds, adopted.as_deref(), |d| {
            !reuses_lent_name(d, &lent)
        });
        lent.extend(existing_names(&d));
        let cx = Ctx {
            run_seed,
            walk_seed,
            step,
            prev: prev.as_ref().map(|p| &p.0),
            next: &v,
        };
        let passes = apply_and_verify(e, &d, &facts, &cx);
        if prev.is_some() {
            pairs += 1;
            if passes > 1 {
                repaired += 1;
            }
        }
        prev = Some((v, d));
    }
    let (v, d) = prev.expect("a walk has steps");
    let cx = Ctx {
        run_seed,
        walk_seed,
        step: len,
        prev: Some(&v),
        next: &Value::Null,
    };
    e.destroy(&DestroyTarget::Props(d.clone()))
        .unwrap_or_else(|err| cx.fail(&format!("destroy failed: {err}")));
    assert_nothing_left(host, fixtures, &d, &cx);
    (r.extra)(&cx);
    if let Some(p) = &adopted {
        let name = p.trim_start_matches("/run/netns/");
        testkit::ok("ip", &["netns", "del", name]);
    }
    (pairs, repaired)
}

/// Walks until `target` pairs are done (or replays one walk); asserts none needed a
/// second pass.
fn property(r: &Run, host: &mut HostNetns, target: usize) {
    let (mut pairs, mut repaired, mut walks) = (0, 0, 0);
    if let Some(ws) = env_u64("NETPROV_CONVERGE_WALK_SEED") {
        let (p, rep) = walk(r, host, ws);
        eprintln!("replayed walk {ws}: {p} pairs, {rep} needed a repair pass");
        assert_eq!(rep, 0, "pairs needed more than one pass");
        return;
    }
    let mut seeds = Rng::new(r.run_seed);
    while pairs < target {
        let (p, rep) = walk(r, host, seeds.next_u64());
        pairs += p;
        repaired += rep;
        walks += 1;
    }
    eprintln!(
        "convergence property ({:?}): {pairs} pairs in {walks} walks, all converged; {repaired} needed more than one pass",
        r.kinds
    );
    // The verify loop is the safety net: a correct first plan needs no repair.
    assert_eq!(repaired, 0, "pairs needed more than one pass (see above)");
}

fn run_seed() -> u64 {
    let seed = env_u64("NETPROV_CONVERGE_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("convergence property: NETPROV_CONVERGE_SEED={seed}");
    seed
}

fn sorted_host_links(host: &HostNetns) -> Vec<String> {
    let mut v = host_links(host);
    v.sort();
    v
}

/// Veths, existing links, macvlans, routes, nft, sysctls, host rules.
#[test]
fn any_valid_props_a_to_b_converges_in_one_apply() {
    property_in_host(Kinds::Existing, "NETPROV_CONVERGE_PAIRS", 300);
}

/// The walks of `kinds` in a simulated host without OVS: `pairs_var` pairs (default
/// `default_pairs`).
fn property_in_host(kinds: Kinds, pairs_var: &str, default_pairs: u64) {
    let target = env_u64(pairs_var).unwrap_or(default_pairs) as usize;
    let len = walk_len();
    let run_seed = run_seed();
    let mut host = HostNetns::new();
    host_fixtures(&host, kinds);
    let e = engine(&host, None);
    let r = Run {
        e: &e,
        kinds,
        fixtures: sorted_host_links(&host),
        extra: &|_| {},
        run_seed,
        len,
    };
    property(&r, &mut host, target);
}

/// Pairs per walk: `NETPROV_CONVERGE_WALK` (default 6, at least 2).
fn walk_len() -> usize {
    env_u64("NETPROV_CONVERGE_WALK").unwrap_or(6).max(2) as usize
}

/// Veths in an adopted netns (`netns_path`): the netns stays after destroy, empty of
/// netprov's links, routes and tables. `NETPROV_CONVERGE_ADOPTED_PAIRS` (default 60).
#[test]
fn any_valid_props_in_an_adopted_netns_converges_in_one_apply() {
    property_in_host(Kinds::Adopted, "NETPROV_CONVERGE_ADOPTED_PAIRS", 60);
}

/// The same with OVS ports (internal and veth style, VLAN tags) instead of existing
/// links, on a private Open vSwitch. `NETPROV_CONVERGE_OVS_PAIRS` (default 60).
#[test]
fn any_valid_props_with_ovs_ports_converges_in_one_apply() {
    let target = env_u64("NETPROV_CONVERGE_OVS_PAIRS").unwrap_or(60) as usize;
    let len = walk_len();
    let run_seed = run_seed();
    let mut o = testkit::ovs::Ovs::start();
    for b in OVS_BRIDGES {
        o.add_bridge(b);
    }
    host_fixtures(&o.host, Kinds::Ovs);
    let e = Engine::new(netprov::engine::Options {
        host_netns: Some(o.host.path()),
        fail_after: None,
        ovsdb: Some(o.sock()),
        ..Default::default()
    })
    .expect("engine");
    let db = format!("--db={}", o.endpoint());
    let ports = move |cx: &Ctx| {
        for b in OVS_BRIDGES {
            let left = testkit::ok("ovs-vsctl", &[&db, "list-ports", b]);
            if !left.trim().is_empty() {
                cx.fail(&format!("after destroy OVS ports remain on {b}: {left}"));
            }
        }
    };
    let r = Run {
        e: &e,
        kinds: Kinds::Ovs,
        fixtures: sorted_host_links(&o.host),
        extra: &ports,
        run_seed,
        len,
    };
    property(&r, &mut o.host, target);
}

/// The two cases of the issue, exactly: renumbering a /31 veth (both directions) and a
/// veth pair that must be re-created (host end moved, renamed, deleted; `hostName`
/// changed). Each converges in one pass, keeps its routes and passes traffic.
#[test]
fn renumbered_and_recreated_veths_converge_in_one_pass_with_their_routes() {
    let mut host = HostNetns::new();
    let e = engine(&host, None);
    let mut d = container(&mut host);
    let mk = |c: &str, h: &str| veth("wan", &[c], &[h]);
    d.interfaces.push(mk("10.210.0.3/31", "10.210.0.2/31"));
    d.routes.push(route("0.0.0.0/0", Some("10.210.0.2"), None));
    let one_pass = |d: &Desired, what: &str| {
        let rep = e.apply(d).unwrap_or_else(|err| panic!("{what}: {err}"));
        assert_eq!(rep.passes, 1, "{what}: {}", rep.plan);
        assert!(e.check(d).unwrap().is_empty(), "{what}: {:?}", e.check(d));
        let gw = d.routes[0].gateway.unwrap().to_string();
        in_ct_ok(d, "ping", &["-c1", "-W3", &gw]);
        let r = in_ct_ok(d, "ip", &["route", "show", "default"]);
        assert!(r.contains(&gw), "{what}: {r}");
    };
    one_pass(&d, "first apply");
    let he = host_end(&d.interfaces[0]);
    for (c, h) in [
        ("10.210.0.5/31", "10.210.0.4/31"),
        ("10.210.0.3/31", "10.210.0.2/31"),
    ] {
        let mut next = d.clone();
        let name = host_end(&next.interfaces[0]);
        next.interfaces[0] = mk(c, h);
        if let InterfaceKind::Veth(v) = &mut next.interfaces[0].kind {
            v.name = n(&name);
        }
        next.routes[0] = route("0.0.0.0/0", Some(h.split('/').next().unwrap()), None);
        one_pass(&next, &format!("renumber to {c}"));
        d = next;
    }
    let elsewhere = unique("x");
    testkit::ok("ip", &["netns", "add", &elsewhere]);
    host.track(&elsewhere);
    let drifts: [(&str, Vec<&str>); 3] = [
        (
            "host end moved",
            vec!["link", "set", &he, "netns", &elsewhere],
        ),
        ("host end deleted", vec!["link", "del", &he]),
        (
            "host end renamed",
            vec!["link", "set", &he, "name", "renamed0"],
        ),
    ];
    for (what, args) in drifts {
        host.ok("ip", &args);
        one_pass(&d, what);
    }
    // hostName changed.
    if let InterfaceKind::Veth(v) = &mut d.interfaces[0].kind {
        v.name = n(&unique("hn"));
    }
    one_pass(&d, "hostName changed");
    e.destroy(&DestroyTarget::Props(d)).unwrap();
    // The renamed host end went with its container end when the pair was re-created.
    assert!(host_links(&host).is_empty(), "{:?}", host_links(&host));
    assert_eq!(host_netprov_routes(&host), "");
}
