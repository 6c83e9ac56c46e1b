//! Every validation gap exits 2 with its JSON path and leaves the host as it was;
//! duplicate keys show both positions.

use super::*;

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

// Long on purpose: the table of validation gaps, one entry per gap.
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
    let id = host.new_id("c");
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
