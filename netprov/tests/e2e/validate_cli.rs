//! `netprov validate` and `netprov schema` end to end, on the shipped examples, plus
//! property tests of the parser. No network state is touched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use netprov::props;
use proptest::prelude::*;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn netprov(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netprov"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run netprov")
}

fn json_files(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    v.sort();
    v
}

/// Invalid cases: `<name>.json`, or a group `<name>.1.json`, `<name>.2.json` checked
/// together (cross-file conflicts), each with `<name>.expect`.
fn invalid_cases() -> Vec<(String, Vec<String>)> {
    let mut names = BTreeSet::new();
    for f in json_files("examples/invalid") {
        let stem = f.trim_end_matches(".json");
        let group = stem
            .rsplit_once('.')
            .filter(|(_, n)| n.chars().all(|c| c.is_ascii_digit()));
        names.insert(group.map_or(stem, |(g, _)| g).to_owned());
    }
    let all = json_files("examples/invalid");
    names
        .into_iter()
        .map(|n| {
            let files = all
                .iter()
                .filter(|f| {
                    let rest = f.strip_prefix(n.as_str()).unwrap_or_default();
                    rest == ".json"
                        || rest
                            .strip_prefix('.')
                            .and_then(|r| r.strip_suffix(".json"))
                            .is_some_and(|d| d.chars().all(|c| c.is_ascii_digit()))
                })
                .cloned()
                .collect();
            (n, files)
        })
        .collect()
}

#[test]
fn every_example_validates() {
    let files = json_files("examples");
    assert!(files.len() >= 7);
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = netprov(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_invalid_example_fails_with_its_message() {
    let cases = invalid_cases();
    assert!(cases.len() >= 12);
    for (name, files) in cases {
        let expect = std::fs::read_to_string(repo().join(format!("{name}.expect")))
            .unwrap_or_else(|_| panic!("{name}.expect missing"));
        let mut args = vec!["validate"];
        args.extend(files.iter().map(String::as_str));
        let out = netprov(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        for line in expect.lines().filter(|l| !l.is_empty()) {
            assert!(
                stderr.contains(line),
                "{name}: expected {line:?} in:\n{stderr}"
            );
        }
    }
}

#[test]
fn json_errors_and_usage() {
    let out = netprov(&["--json", "validate", "examples/invalid/vlan-4356.json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"][0]["path"], "network.interfaces.lan.ovs.vlan");
    assert_eq!(netprov(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(netprov(&["validate"]).status.code(), Some(2));
    let bad = netprov(&["--ovsdb", "tcp:1.2.3.4:1", "schema"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Invalid input is refused with exit 2 before the engine starts (the engine-backed
/// behaviour of these commands is tested in cli_apply.rs, inside a sandbox netns).
#[test]
fn engine_commands_validate_first() {
    for cmd in ["apply", "plan", "check", "destroy"] {
        let out = netprov(&[cmd, "examples/invalid/vlan-4356.json"]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("network.interfaces.lan.ovs.vlan"), "{err}");
    }
    assert_eq!(netprov(&["destroy", "../etc"]).status.code(), Some(2));
}

/// Invalid examples the schema can express; the others need cross-field or value
/// rules only `validate` has (address values and kinds, routes, sysctl keys, VRRP
/// ids written as strings, conflicts between files, JSON syntax).
const SCHEMA_REJECTS: &[&str] = &[
    "bad-id",
    "every-problem",
    "ip4-holds-ipv6",
    "ifname-template",
    "long-ifname",
    "mtu-too-small",
    "unknown-field",
    "vlan-4356",
];

#[test]
fn schema_is_valid_and_agrees_with_the_examples() {
    let out = netprov(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    jsonschema::meta::validate(&schema).expect("valid JSON Schema");
    let validator = jsonschema::validator_for(&schema).unwrap();
    let load = |f: &str| -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(repo().join(f)).unwrap()).ok()
    };
    for f in json_files("examples") {
        let v = load(&f).unwrap();
        let errs: Vec<_> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errs.is_empty(), "{f}: {errs:?}");
    }
    for (name, files) in invalid_cases() {
        let base = name.rsplit('/').next().unwrap();
        for f in files {
            let Some(v) = load(&f) else { continue }; // not JSON at all
            let expressible = SCHEMA_REJECTS.contains(&base);
            assert_eq!(!validator.is_valid(&v), expressible, "{f}");
        }
    }
}

/// Every property path of the schema, e.g. `network.interfaces.<name>.ovs.vlan`.
fn schema_paths(s: &Value, defs: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return schema_paths(&defs[name], defs, prefix, out);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for sub in s.get(key).and_then(Value::as_array).into_iter().flatten() {
            schema_paths(sub, defs, prefix, out);
        }
    }
    for (k, sub) in s
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let p = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        out.insert(p.clone());
        schema_paths(sub, defs, &p, out);
    }
    if let Some(sub) = s.get("additionalProperties").filter(|a| a.is_object()) {
        schema_paths(sub, defs, &format!("{prefix}.<name>"), out);
    }
    if let Some(sub) = s.get("items") {
        schema_paths(sub, defs, &format!("{prefix}[]"), out);
    }
}

#[test]
fn docs_cover_every_schema_property() {
    let schema = props::schema();
    let mut paths = BTreeSet::new();
    schema_paths(&schema, &schema["$defs"], "", &mut paths);
    assert!(
        paths.contains("network.interfaces.<name>.ovs.vlan"),
        "{paths:?}"
    );
    assert!(paths.contains("network.routes[].via"), "{paths:?}");
    let docs = std::fs::read_to_string(repo().join("docs/properties.md")).unwrap();
    let missing: Vec<_> = paths
        .iter()
        .filter(|p| !docs.contains(&format!("`{p}`")))
        .collect();
    assert!(missing.is_empty(), "docs/properties.md lacks {missing:?}");
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9.:/%_ -]{0,20}".prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "br0",
            "10.0.0.1/31",
            "fe80::1",
            "12",
            "veth",
            "net.ipv4.ip_forward=1"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "id",
                    "network",
                    "sysctl",
                    "interfaces",
                    "ip4",
                    "ip6",
                    "hostIp4",
                    "ovs",
                    "bridge",
                    "vlan",
                    "macvlan",
                    "vrid",
                    "routes",
                    "to",
                    "via",
                    "x",
                ])
                .prop_map(String::from),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn examples() -> Vec<Value> {
    json_files("examples")
        .iter()
        .map(|f| serde_json::from_str(&std::fs::read_to_string(repo().join(f)).unwrap()).unwrap())
        .collect()
}

/// JSON pointers of every node of `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, c)| pointers(c, format!("{at}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

/// Parsing never panics, and whatever is accepted round-trips through `to_json`,
/// whose output the schema accepts.
fn check(text: &str) {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    if let Ok(d) = props::parse_str(text, None) {
        let emitted = props::to_json(&d);
        let back = props::parse_str(&emitted.to_string(), None);
        assert_eq!(back.as_ref(), Ok(&d), "{text}");
        let schema = SCHEMA.get_or_init(|| jsonschema::validator_for(&props::schema()).unwrap());
        assert!(schema.is_valid(&emitted), "{emitted}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_json_never_panics(v in json_value()) {
        check(&v.to_string());
        let mut top = serde_json::Map::new();
        top.insert("id".into(), "c1".into());
        top.insert("network".into(), v);
        check(&Value::Object(top).to_string());
    }

    #[test]
    fn mutated_examples_never_panic(which in 0usize..64, node in 0usize..256, v in json_value()) {
        let ex = examples();
        let mut doc = ex[which % ex.len()].clone();
        let mut ptrs = Vec::new();
        pointers(&doc, String::new(), &mut ptrs);
        let ptr = &ptrs[node % ptrs.len()];
        match doc.pointer_mut(ptr) {
            Some(slot) if !ptr.is_empty() => *slot = v,
            _ => doc = v,
        }
        check(&doc.to_string());
    }

    #[test]
    fn mangled_text_never_panics(which in 0usize..64, at in 0usize..4096, len in 0usize..8, junk in "[\\[\\]{}\":,0-9a-z\\\\ ]{0,6}") {
        let files = json_files("examples");
        let text = std::fs::read_to_string(repo().join(&files[which % files.len()])).unwrap();
        let at = at % text.len();
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap();
        let end = (at + len..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        check(&format!("{}{junk}{}", &text[..at], &text[end..]));
    }
}

/// The properties example in the README is valid, ruleset included (libnftables dry run,
/// so this needs root like the other end-to-end tests).
#[test]
fn readme_example_validates() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("```json\n")
        .expect("a json block in the README")
        + 8;
    let len = readme[start..].find("```").unwrap();
    let file = std::env::temp_dir().join(format!("netprov-readme-{}.json", std::process::id()));
    std::fs::write(&file, &readme[start..start + len]).unwrap();
    let out = netprov(&["validate", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// RUST_LOG selects what is logged by target and level, overriding `-v`; one netprov
/// cannot read is named in a warning and `-v` decides instead.
#[test]
fn rust_log_selects_the_log_and_a_bad_one_is_named() {
    let file = &json_files("examples")[0];
    let run = |rust_log: &str, v: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_netprov"))
            .args(v)
            .args(["validate", file])
            .env("RUST_LOG", rust_log)
            .current_dir(repo())
            .output()
            .expect("run netprov");
        assert_eq!(out.status.code(), Some(0), "RUST_LOG={rust_log} {v:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let validated = "validated file";
    assert!(run("netprov=info", &[]).contains(validated));
    assert!(run("netprov::cli=debug,tokio=warn", &[]).contains(validated));
    // RUST_LOG overrides -v, both ways
    assert!(!run("netprov=warn", &["-vv"]).contains(validated));
    assert!(!run("other_crate=trace", &["-v"]).contains(validated));
    for bad in ["netprov[apply]=info", "netprov=loud"] {
        let err = run(bad, &["-v"]);
        assert!(err.contains(&format!("RUST_LOG={bad:?} ignored")), "{err}");
        assert!(err.contains(validated), "-v decides: {err}");
        let err = run(bad, &[]);
        assert!(err.contains("ignored") && !err.contains(validated), "{err}");
    }
}
