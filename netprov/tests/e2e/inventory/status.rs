//! `status`: links, counters, OVS ports and drift of one container.

use super::*;

/// `status` of a container: host end and netns links with their addresses and
/// counters (which count the ping), its OVS port with ofport and VLAN, the ruleset and
/// host-table digests, drift against its props file.
// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn status_shows_links_counters_ports_and_drift() {
    let mut t = T::new();
    let id = t.id();
    let mut extra = json!({ "interfaces": { format!("l{id}"): { "ip4": "10.78.0.2/24",
                            "ovs": { "bridge": "br0", "vlan": 42 } } } });
    extra["nft"] = json!(
        "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n"
    );
    extra["masquerade"] = json!(true);
    let p = T::write(&t.props, &id, veth(&id, 5, extra));
    t.ok(&["apply", &p]);
    assert!(pings(&id, "70.5.0.1"));

    let s = t.json(&["status", &id]);
    let link = |name: &str| {
        s["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("no link {name}: {s}"))
            .clone()
    };
    let host = link(&format!("w{id}"));
    assert_eq!(host["side"], "host");
    assert!(
        host["addresses"].to_string().contains("70.5.0.1/31"),
        "{host}"
    );
    let wan = link("wan");
    assert_eq!(wan["side"], "netns");
    assert!(
        wan["addresses"].to_string().contains("70.5.0.2/31"),
        "{wan}"
    );
    assert!(wan["tx_packets"].as_u64().unwrap() >= 2, "{wan}");
    assert!(host["rx_packets"].as_u64().unwrap() >= 2, "{host}");
    // The OVS port (veth style, the default) is a host end too: in both lists.
    let port = s["ovs_ports"][0]["name"].as_str().unwrap().to_owned();
    assert!(port.starts_with("np-"), "{s}");
    assert_eq!(link(&port)["side"], "host");
    assert!(link(&format!("l{id}"))["addresses"]
        .to_string()
        .contains("10.78.0.2/24"));
    assert_eq!(s["ovs_ports"][0]["tag"], 42, "{s}");
    assert!(s["ovs_ports"][0]["ofport"].as_i64().unwrap() > 0, "{s}");
    assert_eq!(s["nft_digest"].as_str().unwrap().len(), 32, "{s}");
    assert_eq!(s["nft_intact"], true);
    assert_eq!(s["host_table"], true);
    assert_eq!(s["sync"]["state"], "in_sync", "{s}");

    // Drift: an address removed behind netprov's back.
    assert!(
        in_ns(&id, "ip", &["addr", "del", "70.5.0.2/31", "dev", "wan"])
            .status()
            .unwrap()
            .success()
    );
    let s = t.json(&["status", &id]);
    assert_eq!(s["sync"]["state"], "drifted", "{s}");
    assert!(
        s["sync"]["differences"].to_string().contains("70.5.0.2/31"),
        "{s}"
    );
    let out = t.ok(&["status", &id]);
    let h = String::from_utf8_lossy(&out.stdout);
    assert!(
        h.contains(&format!("{id}: OVS port {port} ofport ")) && h.contains("vlan 42"),
        "{h}"
    );
    assert!(
        h.contains(&format!("{id}: drift: address 70.5.0.2/31 on wan")),
        "{h}"
    );

    // An id with nothing: an empty status, not an error; a bad id is invalid input.
    let none = unique("n");
    let s = t.json(&["status", &none]);
    assert_eq!(s["links"], json!([]), "{s}");
    assert_eq!(s["sync"]["state"], "no_props");
    assert_eq!(t.netprov(&["status", "../x"]).status.code(), Some(2));
    // A /run/netns/<id> made by `ip netns add`: its links are not shown as netprov's.
    let foreign = t.id();
    testkit::ok("ip", &["netns", "add", &foreign]);
    let s = t.json(&["status", &foreign]);
    assert_eq!(s["links"], json!([]), "{s}");
    assert!(
        s["netns_not_ours"]
            .as_str()
            .unwrap()
            .contains("no owner mark"),
        "{s}"
    );
    t.ok(&["destroy", &id]);
}
