//! Golden diff cases: `tests/diff_cases/<case>/` holds a `props.json`, the observed
//! kernel/OVSDB/OVN state `observed.json` (an [`Observed`] as JSON) and what netprov
//! makes of them: `plan.txt` (the plan as `netprov plan` prints it), `check.txt` (the
//! drift as `netprov check` prints it) and `plan.json` (the plan as `--json` carries
//! it) — or, when the diff refuses, `error.txt` (the error as `netprov plan` prints it
//! after `netprov plan: <id>: `). No root needed: the props go through the real parser
//! and validator, the observed state through serde, the plan through the real diff.
//!
//! `NETPROV_BLESS=1 cargo test -p netprov --lib golden` rewrites the expected files
//! from what the code makes now (review the diff before committing). See
//! tests/diff_cases/README.md for the format and how to add a case.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::observe::Observed;
use crate::engine::plan::{
    AddressStep, LinkStep, NetnsStep, NftStep, OvnStep, OvsStep, Plan, RouteStep, Step, SysctlStep,
};
use crate::ovn::OvnChange;
use crate::ovsdb::OvsChange;

/// Lists every variant of an enum once and derives from that list both the names and
/// a function naming a value's variant. The match is exhaustive: a variant added to
/// (or removed from) the enum breaks the build until the list here follows, and then
/// the coverage check asks for a case that plans it.
macro_rules! variants {
    ($all:ident, $name:ident, $ty:ident: $($v:ident),+ $(,)?) => {
        const $all: &[&str] = &[$(stringify!($v)),+];
        fn $name(x: &$ty) -> &'static str {
            match x {
                $($ty::$v { .. } => stringify!($v),)+
            }
        }
    };
}

variants!(NETNS_STEPS, netns_kind, NetnsStep: CreateNetns);
variants!(LINK_STEPS, link_kind, LinkStep:
    CreateVeth, DeleteLink, RemoveLink, Release, DeleteDeadOvsDevice, MarkLink, MoveLinkIn,
    CreateMacvlan, SetLink, Enslave, LinkUp,
);
variants!(ADDRESS_STEPS, address_kind, AddressStep: DelAddress, AddAddress, ReAddAddress);
variants!(ROUTE_STEPS, route_kind, RouteStep: DelRoute, ReplaceRoute);
variants!(SYSCTL_STEPS, sysctl_kind, SysctlStep: WriteSysctl);
variants!(OVS_STEPS, ovs_step_kind, OvsStep: OvsPort);
variants!(OVN_STEPS, ovn_step_kind, OvnStep: OvnPort);
variants!(NFT_STEPS, nft_kind, NftStep:
    LoadRuleset, RemoveRuleset, InstallHostRules, RemoveHostRules,
);

/// Every step kind: the variants of each kind's step type.
fn all_steps() -> impl Iterator<Item = &'static str> {
    [
        NETNS_STEPS,
        LINK_STEPS,
        ADDRESS_STEPS,
        ROUTE_STEPS,
        SYSCTL_STEPS,
        OVS_STEPS,
        OVN_STEPS,
        NFT_STEPS,
    ]
    .into_iter()
    .flatten()
    .copied()
}

/// The step's kind; the match on [`Step`] is exhaustive too.
fn step_kind(s: &Step) -> &'static str {
    match s {
        Step::Netns(k) => netns_kind(k),
        Step::Link(k) => link_kind(k),
        Step::Address(k) => address_kind(k),
        Step::Route(k) => route_kind(k),
        Step::Sysctl(k) => sysctl_kind(k),
        Step::Ovs(k) => ovs_step_kind(k),
        Step::Ovn(k) => ovn_step_kind(k),
        Step::Nft(k) => nft_kind(k),
    }
}
variants!(OVS_CHANGES, ovs_kind, OvsChange:
    Create, Recreate, SetVlan, SetTrunks, SetVlanMode, SetExternalIds, Remove,
);
variants!(OVN_CHANGES, ovn_kind, OvnChange: Create, Update, Remove, WaitInstalled);

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff_cases")
}

/// The expected files a case may have; a plan gives the first three, a refusal the last.
const OUTPUTS: [&str; 4] = ["plan.txt", "check.txt", "plan.json", "error.txt"];

/// The files the diff makes for one case: (file name, content).
type Made = Vec<(&'static str, String)>;

/// What the diff makes of one case, and the kinds of the planned steps (`Step`,
/// `OvsPort/Create`, …).
fn run(dir: &Path) -> Result<(Made, Vec<String>), String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("read {f}: {e}"));
    let props_path = dir.join("props.json");
    let d = crate::props::parse_str(&read("props.json")?, Some(&props_path)).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        format!("props.json is invalid:\n{}", lines.join("\n"))
    })?;
    let text = read("observed.json")?;
    let o: Observed =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text))
            .map_err(|e| format!("observed.json: {e}"))?;
    let plan = match crate::engine::diff::diff(&d, &o) {
        Ok(p) => p,
        Err(e) => return Ok((vec![("error.txt", format!("{e}\n"))], Vec::new())),
    };
    let kinds = plan.steps.iter().flat_map(kinds).collect();
    let json = serde_json::to_string_pretty(&plan).expect("a plan serialises") + "\n";
    Ok((
        vec![
            ("plan.txt", plan.to_string()),
            ("check.txt", check_text(&plan)),
            ("plan.json", json),
        ],
        kinds,
    ))
}

/// The step's kind, and for OVS/OVN steps also the kind of change.
fn kinds(s: &Step) -> Vec<String> {
    let mut out = vec![step_kind(s).to_owned()];
    match s {
        Step::Ovs(OvsStep::OvsPort { change }) => out.push(format!("OvsPort/{}", ovs_kind(change))),
        Step::Ovn(OvnStep::OvnPort { change }) => out.push(format!("OvnPort/{}", ovn_kind(change))),
        _ => {}
    }
    out
}

/// The plan read as drift, as `netprov check` prints it.
fn check_text(p: &Plan) -> String {
    if p.steps.is_empty() {
        return format!("{}: in sync\n", p.id);
    }
    p.steps
        .iter()
        .map(|s| format!("{}: {}\n", p.id, s.as_drift()))
        .collect()
}

fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/diff_cases exists")
        .map(|e| e.expect("read tests/diff_cases").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn golden_diff_cases() {
    let bless = std::env::var_os("NETPROV_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    let dirs = case_dirs();
    assert!(!dirs.is_empty(), "no case in {}", cases_dir().display());
    for dir in &dirs {
        let case = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (files, kinds) = match run(dir) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("case {case}: {e}"));
                continue;
            }
        };
        seen.extend(kinds);
        for f in OUTPUTS {
            let path = dir.join(f);
            let actual = files.iter().find(|(n, _)| *n == f).map(|(_, t)| t.as_str());
            let expected = std::fs::read_to_string(&path).ok();
            if expected.as_deref() == actual {
                continue;
            }
            if bless {
                match actual {
                    Some(t) => std::fs::write(&path, t).expect("write expected file"),
                    None => std::fs::remove_file(&path).expect("remove stale expected file"),
                }
                continue;
            }
            failures.push(match (expected, actual) {
                (Some(e), Some(a)) => format!("case {case}: {f} differs\n{}", unified(&e, a)),
                (None, Some(a)) => format!("case {case}: {f} is missing; the diff makes:\n{a}"),
                (Some(e), None) => {
                    let made: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
                    format!(
                        "case {case}: {f} is expected but the diff made {} instead:\n{}\nexpected {f}:\n{e}",
                        made.join(", "),
                        files.iter().map(|(_, t)| t.as_str()).next().unwrap_or_default()
                    )
                }
                (None, None) => unreachable!(),
            });
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden diff cases fail (NETPROV_BLESS=1 rewrites the expected files):\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
    let wanted = all_steps()
        .map(|s| s.to_string())
        .chain(OVS_CHANGES.iter().map(|c| format!("OvsPort/{c}")))
        .chain(OVN_CHANGES.iter().map(|c| format!("OvnPort/{c}")));
    let missing: Vec<String> = wanted.filter(|k| !seen.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "no golden diff case plans these step kinds (add a case to tests/diff_cases): {}",
        missing.join(", ")
    );
}

/// A unified-style line diff of `expected` and `actual`, with 3 lines of context.
fn unified(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    // Longest common subsequence table, from the end.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let near = |k: usize| {
        ops[k.saturating_sub(3)..(k + 4).min(ops.len())]
            .iter()
            .any(|(c, _)| *c != ' ')
    };
    let mut out = String::from("--- expected\n+++ actual\n");
    let mut skipped = false;
    for (k, (c, line)) in ops.iter().enumerate() {
        if near(k) {
            if skipped {
                out.push_str("@@ … @@\n");
                skipped = false;
            }
            let _ = writeln!(out, "{c}{line}");
        } else {
            skipped = true;
        }
    }
    out
}

#[test]
fn unified_diff_shows_changed_lines_with_context() {
    let e = "a\nb\nc\nd\ne\nf\ng\nh\n";
    let a = "a\nb\nc\nd\nE\nf\ng\nh\n";
    assert_eq!(
        unified(e, a),
        "--- expected\n+++ actual\n@@ … @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"
    );
}

/// Every observed.json reads back as what it says: serialising the [`Observed`] it
/// holds and reading that again gives the same plan (the derives lose nothing the
/// diff uses), so a case captured from a real run (`serde_json::to_string(&observed)`)
/// means what a hand-written one does.
#[test]
fn golden_observed_round_trips() {
    for dir in case_dirs() {
        let text = std::fs::read_to_string(dir.join("observed.json")).unwrap();
        let Ok(o) = serde_json::from_str::<Observed>(&text) else {
            continue; // reported by golden_diff_cases
        };
        let again: Observed =
            serde_json::from_str(&serde_json::to_string(&o).unwrap()).expect("round trip");
        let Ok(d) = crate::props::parse_str(
            &std::fs::read_to_string(dir.join("props.json")).unwrap(),
            None,
        ) else {
            continue;
        };
        let (p1, p2) = (
            crate::engine::diff::diff(&d, &o).map_err(|e| e.to_string()),
            crate::engine::diff::diff(&d, &again).map_err(|e| e.to_string()),
        );
        assert_eq!(p1, p2, "case {}", dir.display());
    }
}

/// Capturing a case is lossless: any link state, address and route observe can fill
/// in reads back from its JSON as the same value (MAC as text, kinds, the
/// address-generation mode as its number, missing fields as their defaults).
mod round_trip {
    use proptest::prelude::*;

    use crate::engine::observe::{NsState, Observed};
    use crate::kernel::link::{Kind, LinkState};
    use crate::kernel::route::RouteSpec;

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Kind::Veth),
            Just(Kind::Macvlan),
            Just(Kind::Bridge),
            Just(Kind::Unknown),
            "[a-z]{1,12}".prop_map(Kind::Other),
        ]
    }

    prop_compose! {
        fn link()(
            index in 1u32..100_000,
            name in "[a-z0-9-]{1,15}",
            alias in proptest::option::of("netprov:[a-z]{1,8}(:[a-z]{1,8})?"),
            group in prop_oneof![Just(0u32), Just(0x4e50), any::<u32>()],
            kind in kind(),
            up: bool,
            mtu in proptest::option::of(68u32..65536),
            mac in proptest::option::of(any::<[u8; 6]>()),
            link in proptest::option::of(any::<u32>()),
            controller in proptest::option::of(any::<u32>()),
            link_netnsid in proptest::option::of(any::<i32>()),
            addrgenmode in proptest::option::of(any::<u8>()),
        ) -> LinkState {
            LinkState {
                index, name, alias, group, kind, up, mtu, mac, link, controller, link_netnsid,
                addrgenmode: addrgenmode.map(Into::into),
            }
        }
    }

    fn net() -> impl Strategy<Value = ipnetwork::IpNetwork> {
        prop_oneof![
            (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, p)| {
                ipnetwork::IpNetwork::new(std::net::Ipv4Addr::from(a).into(), p).unwrap()
            }),
            (any::<[u8; 16]>(), 0u8..=128).prop_map(|(a, p)| {
                ipnetwork::IpNetwork::new(std::net::Ipv6Addr::from(a).into(), p).unwrap()
            }),
        ]
    }

    prop_compose! {
        fn route()(dest in net(), gw in proptest::option::of(net()),
                   dev in proptest::option::of("[a-z]{1,15}"), metric: u32) -> RouteSpec {
            RouteSpec { dest, gateway: gw.map(|g| g.ip()), dev, metric }
        }
    }

    prop_compose! {
        fn ns()(links in proptest::collection::vec(link(), 0..4),
                addrs in proptest::collection::btree_map(1u32..100, proptest::collection::vec(net(), 0..3), 0..3),
                routes in proptest::collection::vec(route(), 0..3)) -> NsState {
            NsState {
                links: links.into_iter().map(|l| (l.name.clone(), l)).collect(),
                addrs,
                routes,
            }
        }
    }

    proptest! {
        #[test]
        fn golden_observed_json_is_lossless(container in ns(), host in ns(), exists: bool,
                sysctls in proptest::collection::btree_map("[a-z.]{1,20}", proptest::option::of("[0-9]{1,3}"), 0..3)) {
            let o = Observed { netns_exists: exists, container, host, sysctls, ..Default::default() };
            let json = serde_json::to_value(&o).unwrap();
            let back: Observed = serde_json::from_value(json.clone()).unwrap();
            prop_assert_eq!(&back.container.links, &o.container.links);
            prop_assert_eq!(&back.host.routes, &o.host.routes);
            prop_assert_eq!(serde_json::to_value(&back).unwrap(), json);
        }
    }
}
