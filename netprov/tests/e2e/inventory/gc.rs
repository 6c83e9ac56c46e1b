//! `list` and `gc`: orphans found by their marks, foreign objects and live containers left.

use super::*;

/// Four containers of this test and three foreign objects:
/// - `live`: props in the props dir (veth + OVS port);
/// - `orphan`: applied from a file outside the props dir (veth + OVS port + host table);
/// - `busy`: likewise, but a process lives in its netns;
/// - `machine`: likewise, but its machine is registered;
/// - foreign: a netns made with `ip netns add` under an id-like name, a host link and
///   an OVS port without netprov's marks, and a protocol-77 route through that link.
///
/// `list` reports each with what it holds; `gc --dry-run` names only the orphan and
/// changes nothing; `gc` removes the orphan entirely (netns, veth, routes, host table,
/// OVS port) and nothing else; a second `gc` has nothing to do; `live` still passes
/// traffic.
// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn list_and_gc_find_orphans_by_marks_and_leave_the_rest() {
    let mut t = T::new();
    let (live, orphan, busy, machine) = (t.id(), t.id(), t.id(), t.id());
    let ovs = |iface: &str, n: u8| {
        json!({ "interfaces": { iface: { "ip4": format!("10.77.{n}.2/24"),
                                          "ovs": { "bridge": "br0", "vlan": 5, "style": "internal" } } } })
    };
    let p_live = T::write(&t.props, &live, veth(&live, 1, ovs(&format!("l{live}"), 1)));
    let mut o = ovs(&format!("l{orphan}"), 2);
    o["masquerade"] = json!(true);
    let p_orphan = T::write(&t.elsewhere, &orphan, veth(&orphan, 2, o));
    let p_busy = T::write(&t.elsewhere, &busy, veth(&busy, 3, json!({})));
    let p_machine = T::write(&t.elsewhere, &machine, veth(&machine, 4, json!({})));
    t.ok(&["apply", &p_live, &p_orphan, &p_busy, &p_machine]);
    std::fs::write(t.machines.join(&machine), "NAME=x\n").unwrap();
    let _sleeper = Bg(in_ns(&busy, "sleep", &["600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap());

    // Foreign objects, some under names netprov would use.
    let fid = t.id();
    testkit::ok("ip", &["netns", "add", &fid]);
    let flink = format!("w{fid}");
    t.o.host.add_veth(&flink, &format!("p{fid}"));
    t.o.host.ok("ip", &["link", "set", &flink, "up"]);
    t.o.host.ok(
        "ip",
        &["route", "add", "10.99.0.0/24", "dev", &flink, "proto", "77"],
    );
    let fport = format!("f{fid}");
    t.o.vsctl(&[
        "add-port",
        "br0",
        &fport,
        "--",
        "set",
        "interface",
        &fport,
        "type=internal",
    ]);

    let ids = [
        live.as_str(),
        orphan.as_str(),
        busy.as_str(),
        machine.as_str(),
        fid.as_str(),
    ];
    let with_ids = |cmd: &[&'static str]| -> Vec<String> {
        cmd.iter()
            .map(|s| s.to_string())
            .chain(ids.iter().map(|s| s.to_string()))
            .collect()
    };
    let args = with_ids(&["list"]);
    let l = t.json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let e = entry(&l, &live).unwrap_or_else(|| panic!("{live} not listed: {l}"));
    assert_eq!(e["props"], json!(format!("{p_live}")), "{e}");
    assert_eq!(e["sync"]["state"], "in_sync", "{e}");
    assert_eq!(e["orphaned"], false);
    let e = entry(&l, &orphan).unwrap();
    assert_eq!(e["orphaned"], true, "{e}");
    assert!(e.get("props").is_none(), "{e}");
    assert_eq!(e["objects"]["netns"], format!("/run/netns/{orphan}"), "{e}");
    assert_eq!(
        e["objects"]["host_links"],
        json!([format!("w{orphan}")]),
        "{e}"
    );
    assert_eq!(e["objects"]["host_table"], true, "{e}");
    assert_eq!(
        e["objects"]["ovs_ports"],
        json!([format!("l{orphan}")]),
        "{e}"
    );
    assert_eq!(
        e["objects"]["host_routes"],
        json!([format!("70.2.0.2/32 dev w{orphan}")]),
        "{e}"
    );
    let e = entry(&l, &busy).unwrap();
    assert!(e["processes"].as_u64().unwrap() >= 1, "{e}");
    assert_eq!(e["orphaned"], false, "{e}");
    let e = entry(&l, &machine).unwrap();
    assert_eq!(
        (&e["running"], &e["orphaned"]),
        (&json!(true), &json!(false)),
        "{e}"
    );
    assert!(entry(&l, &fid).is_none(), "foreign netns listed: {l}");
    let unattributed = l["unattributed"].to_string();
    assert!(
        unattributed.contains(&format!("10.99.0.0/24 dev {flink}")),
        "{l}"
    );
    assert!(
        !l.to_string().contains(&fport),
        "foreign OVS port listed: {l}"
    );

    // Human output: one line per container, the orphan marked.
    let args = with_ids(&["list"]);
    let out = t.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.lines().any(
            |x| x.starts_with(&format!("{orphan}: no props, not running"))
                && x.contains("orphaned")
        ),
        "{s}"
    );
    assert!(
        s.lines().any(|x| x.starts_with(&format!(
            "{live}: props, not running, in sync; netns, 1 host link"
        ))),
        "{s}"
    );

    // A props directory that does not exist (a typo): gc refuses, nothing is touched.
    let mut args = with_ids(&["gc"]);
    args.push("--props-dir=/nonexistent/netprov".into());
    let out = t.netprov(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("refusing to collect"), "{}", text(&out));
    assert!(Path::new("/run/netns").join(&orphan).exists());

    // Dry run: names the orphan, touches nothing.
    let args = with_ids(&["gc", "--dry-run"]);
    let out = t.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(s.lines().count(), 1, "{s}");
    assert!(
        s.starts_with(&format!(
            "{orphan}: would remove netns, 1 host link, 1 route, host table, 1 OVS port"
        )),
        "{s}"
    );
    assert!(Path::new("/run/netns").join(&orphan).exists());
    assert!(t.ovs_ports().contains(&format!("l{orphan}")));

    let args = with_ids(&["gc"]);
    let g = t.json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let removed: Vec<&str> = g
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(removed, [orphan.as_str()], "{g}");
    assert!(g[0]["removed"]["netns_removed"].as_bool().unwrap(), "{g}");
    assert_eq!(g[0]["errors"], json!([]), "{g}");
    // The orphan is gone, all of it.
    assert!(!Path::new("/run/netns").join(&orphan).exists());
    assert!(!t.host_has(&["ip", "link", "show", "dev", &format!("w{orphan}")]));
    assert!(!t.host_has(&["nft", "list", "table", "inet", &format!("netprov-{orphan}")]));
    let ports = t.ovs_ports();
    assert!(!ports.contains(&format!("l{orphan}")), "{ports}");
    // Everything else is still there.
    for id in [&live, &busy, &machine] {
        assert!(Path::new("/run/netns").join(id).exists(), "{id}");
        assert!(
            t.host_has(&["ip", "link", "show", "dev", &format!("w{id}")]),
            "{id}"
        );
    }
    assert!(
        ports.contains(&format!("l{live}")) && ports.contains(&fport),
        "{ports}"
    );
    assert!(Path::new("/run/netns").join(&fid).exists());
    assert!(t.host_has(&["ip", "link", "show", "dev", &flink]));
    let r =
        t.o.host
            .ok("ip", &["route", "show", "proto", "77", "dev", &flink]);
    assert!(r.contains("10.99.0.0/24"), "{r}");
    assert!(pings(&live, "70.1.0.1"), "live container lost its network");

    // Nothing left to collect.
    let args = with_ids(&["gc"]);
    let out = t.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.stdout.is_empty(), "{}", text(&out));

    // A container whose /run/netns handle is gone while a process still holds its
    // netns (its veth host end's peer is alive elsewhere): not collected, whatever
    // holds it. Once nothing does, the netns and its veth die with it; what is left
    // (the host table) is an orphan again.
    let detached = t.id();
    let p_detached = T::write(&t.elsewhere, &detached, veth(&detached, 9, json!({})));
    t.ok(&["apply", &p_detached]);
    let holder = Bg(in_ns(&detached, "sleep", &["600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap());
    // The holder must be in before the handle goes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.json(&["list", &detached])["containers"][0]["processes"] == 0 {
        assert!(Instant::now() < deadline, "sleep never entered the netns");
        std::thread::sleep(Duration::from_millis(20));
    }
    testkit::ok("ip", &["netns", "del", &detached]);
    let l = t.json(&["list", &detached]);
    let e = entry(&l, &detached).unwrap_or_else(|| panic!("{l}"));
    assert_eq!(e["objects"]["held_elsewhere"], true, "{e}");
    assert_eq!(e["orphaned"], false, "{e}");
    let out = t.ok(&["gc", &detached]);
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(t.host_has(&["ip", "link", "show", "dev", &format!("w{detached}")]));
    drop(holder);
    // The netns goes with its last process; the kernel then removes the veth pair.
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.host_has(&["ip", "link", "show", "dev", &format!("w{detached}")]) {
        assert!(Instant::now() < deadline, "veth outlived its netns");
        std::thread::sleep(Duration::from_millis(50));
    }
    let g = t.json(&["gc", &detached]);
    assert_eq!(g[0]["id"], detached, "{g}");
    assert!(!t.host_has(&[
        "nft",
        "list",
        "table",
        "inet",
        &format!("netprov-{detached}")
    ]));

    drop(_sleeper);
    t.ok(&["destroy", &live, &busy, &machine]);
}
