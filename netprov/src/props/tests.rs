//! Validation as a whole: kinds, derived values, collected errors, round trips.

use super::errors::key_path;
use super::*;
use crate::model::{IfName, InterfaceKind, MacAddr, OvsStyle, VlanMode};

fn ok(json: &str) -> Desired {
    parse_str(json, None).unwrap_or_else(|e| panic!("{json}: {e:?}"))
}

fn errs(json: &str) -> Vec<String> {
    parse_str(json, None)
        .expect_err(json)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn one(ifaces: &str) -> String {
    format!(r#"{{"id":"c1","network":{{"interfaces":{ifaces}}}}}"#)
}

#[test]
fn kinds_are_inferred() {
    let d = ok(&one(
        r#"{"a":{"ip4":"10.0.0.2","hostIp4":"10.0.0.1"},"b":{"ovs":{"bridge":"br0","vlan":7}},"c":{"ip4":"10.1.0.2/24"},"d":{"hostName":"dhost"}}"#,
    ));
    let names: Vec<_> = d.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    match &d.interfaces[0].kind {
        InterfaceKind::Veth(h) => assert_eq!(h.name.as_str(), "np-c1-a"),
        k => panic!("{k:?}"),
    }
    match &d.interfaces[1].kind {
        InterfaceKind::Ovs(p) => {
            assert_eq!(p.vlan.get(), 7);
            // veth by default: the host end is named like any veth host end.
            assert_eq!(
                p.style,
                OvsStyle::Veth {
                    host: IfName::new("np-c1-b").unwrap()
                }
            );
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(d.interfaces[2].kind, InterfaceKind::Existing);
    assert!(matches!(&d.interfaces[3].kind, InterfaceKind::Veth(h) if h.name.as_str() == "dhost"));
    assert!(d.host_rules.anti_spoof);
    assert_eq!(d.netns.path(), &PathBuf::from("/run/netns/c1"));
}

#[test]
fn nixunits_defaults_mean_absent() {
    let d = ok(
        r#"{"id":"c1","network":{"interfaces":{"eth0":{"hostIp4":"","hostIp6":"","ip4":"10.0.0.2","ip6":"","macvlan":null,"ovs":{"bridge":"","vlan":0}}},"ip4route":"","ip6route":"","netns_path":"","nft":""},"sysctl":""}"#,
    );
    assert_eq!(d.interfaces[0].kind, InterfaceKind::Existing);
    assert!(d.routes.is_empty() && d.sysctls.is_empty() && d.nft.is_none());
    assert!(!d.host_rules.anti_spoof);
}

#[test]
fn vrrp_macs_follow_rfc_5798() {
    let d = ok(&one(
        r#"{"a":{"macvlan":{"ip4":"10.0.0.5/24","vrid":"12"}},"b":{"macvlan":{"ip6":"2001:db8::5/64","vrid":255}},"c":{"macvlan":{"vrid":1,"mac":"02:00:00:00:00:07"}}}"#,
    ));
    let mv = |n: usize| d.interfaces[n].macvlan.clone().unwrap();
    assert_eq!(mv(0).name.as_str(), "mv-a-12");
    assert_eq!(mv(0).mac, Some(MacAddr([0, 0, 0x5e, 0, 1, 12])));
    assert_eq!(mv(1).mac, Some(MacAddr([0, 0, 0x5e, 0, 2, 255])));
    assert_eq!(mv(2).mac, Some(MacAddr([2, 0, 0, 0, 0, 7])));
    let e = errs(&one(r#"{"a":{"macvlan":{"vrid":"012"}}}"#));
    assert!(e[0].contains("write a decimal number"), "{e:?}");
}

#[test]
fn default_routes_and_zone_syntax() {
    let d = ok(
        r#"{"id":"c1","network":{"interfaces":{"a":{"ip6":"2001:db8::2/64"},"b":{"hostName":"hb"}},"ip4route":"10.0.0.1","ip6route":"fe80::1%b"}}"#,
    );
    assert_eq!(d.routes.len(), 2);
    assert_eq!(d.routes[0].dest.to_string(), "0.0.0.0/0");
    assert_eq!(d.routes[1].dest.to_string(), "::/0");
    assert_eq!(d.routes[1].dev.as_ref().unwrap().as_str(), "b");
    // One interface: the link-local gateway's interface is implied.
    let d = ok(
        r#"{"id":"c1","network":{"interfaces":{"a":{"ip6":"2001:db8::2/64"}},"ip6route":"fe80::1"}}"#,
    );
    assert_eq!(d.routes[0].dev.as_ref().unwrap().as_str(), "a");
    let e = errs(r#"{"id":"c1","network":{"interfaces":{"a":{}},"ip6route":"fe80::1%zz"}}"#);
    assert!(e[0].contains("does not have"), "{e:?}");
}

#[test]
fn explicit_routes() {
    let e = errs(
        r#"{"id":"c1","network":{"interfaces":{"a":{}},"routes":[{"to":"10.1.0.0/16"},{"to":"10.2.0.0/16","dev":"x"},{"to":"10.3.0.0/16","via":"2001:db8::1"},{"to":"10.4.0.0/16","dev":"a"},{"to":"10.4.0.0/16","dev":"a"}]}}"#,
    );
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(e[0].starts_with("network.routes[0]: a route needs \"via\""));
    assert!(e[1].starts_with("network.routes[1].dev:"));
    assert!(e[2].starts_with("network.routes[2].via:"));
    assert!(e[3].contains("same metric"));
}

#[test]
fn ovs_contradictions_name_both_fields() {
    let e = errs(&one(r#"{"a":{"hostBridge":"br1","ovs":{"bridge":"br0"}}}"#));
    assert!(
        e[0].contains("hostBridge") && e[0].contains("ovs.bridge"),
        "{e:?}"
    );
    let e = errs(&one(
        r#"{"a":{"ovs":{"bridge":"","trunks":[3],"style":"tap"}}}"#,
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    // Either style is a default a generator may emit without a bridge.
    for style in ["internal", "veth", ""] {
        ok(&one(&format!(
            r#"{{"a":{{"ovs":{{"bridge":"","vlan":0,"style":"{style}"}}}}}}"#
        )));
    }
    let d = ok(&one(r#"{"a":{"ovs":{"bridge":"br0","style":"internal"}}}"#));
    assert!(
        matches!(&d.interfaces[0].kind, InterfaceKind::Ovs(p) if p.style == OvsStyle::Internal)
    );
    let e = errs(&one(
        r#"{"a":{"ovs":{"bridge":"br0","vlan_mode":"access","trunks":[2]}}}"#,
    ));
    assert!(e[0].contains("trunks"), "{e:?}");
    let e = errs(&one(
        r#"{"a":{"ovs":{"bridge":"br0","external_ids":{"netprov-id":"x"}}}}"#,
    ));
    assert!(e[0].contains("ownership"), "{e:?}");
    let d = ok(&one(
        r#"{"a":{"ovs":{"bridge":"br0","vlan":5,"trunks":[9,3,3],"vlan_mode":"native-tagged","style":"veth"}}}"#,
    ));
    match &d.interfaces[0].kind {
        InterfaceKind::Ovs(p) => {
            assert_eq!(p.trunks.iter().map(|t| t.get()).collect::<Vec<_>>(), [3, 9]);
            assert_eq!(p.vlan_mode, Some(VlanMode::NativeTagged));
            assert_eq!(
                p.style,
                OvsStyle::Veth {
                    host: IfName::new("np-c1-a").unwrap()
                }
            );
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn names_and_addresses_are_unique() {
    let e = errs(&one(
        r#"{"a":{"ip4":"10.0.0.2"},"b":{"ip4":"10.0.0.2/24"}}"#,
    ));
    assert!(e[0].contains("is on both a and b"), "{e:?}");
    let e = errs(&one(r#"{"a":{"hostName":"h"},"b":{"hostName":"h"}}"#));
    assert!(e[0].contains("host-side name h"), "{e:?}");
    let e = errs(&one(r#"{"mv-a":{},"a":{"macvlan":{}}}"#));
    assert!(e[0].contains("macvlan name mv-a"), "{e:?}");
    // Interface names that are not plain words are quoted in paths.
    let e = errs(&one(r#"{"eth0.100":{"ip4":"x"}}"#));
    assert!(
        e[0].starts_with("network.interfaces[\"eth0.100\"].ip4"),
        "{e:?}"
    );
}

#[test]
fn forwards_and_host_rules() {
    let d = ok(
        r#"{"id":"c1","network":{"interfaces":{"a":{"ip6":"2001:db8::2","hostIp6":"2001:db8::1"},"b":{"ip4":"10.0.0.2","hostIp4":"10.0.0.1"}},"masquerade":true,"antiSpoof":false,"forwards":[{"proto":"tcp","hostPort":80,"port":8080}]}}"#,
    );
    assert!(d.host_rules.masquerade && !d.host_rules.anti_spoof);
    assert_eq!(d.host_rules.forwards[0].to_addr.to_string(), "10.0.0.2");
    let e = errs(
        r#"{"id":"c1","network":{"interfaces":{"a":{"ip6":"2001:db8::2"}},"forwards":[{"proto":"tcp","hostPort":0,"port":80}]}}"#,
    );
    assert_eq!(e.len(), 2, "{e:?}");
}

#[test]
fn adopted_netns_paths() {
    let d = ok(r#"{"id":"c1","network":{"netns_path":"/proc/1/ns/net"}}"#);
    assert!(matches!(d.netns, crate::model::NetnsSpec::Adopted { .. }));
    assert!(errs(r#"{"id":"c1","network":{"netns_path":"run/x"}}"#)[0].contains("absolute"));
    assert!(errs(r#"{"id":"c1","network":{"netns_path":"/run/../x"}}"#)[0].contains(".."));
}

#[test]
fn errors_carry_the_file() {
    let e = parse_str(r#"{"id":""}"#, Some(Path::new("a.json"))).unwrap_err();
    assert_eq!(e[0].to_string(), "a.json:1:7: id: \"\" must not be empty");
}

#[test]
fn examples_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let d = load(&p).unwrap_or_else(|e| panic!("{}: {e:?}", p.display()));
            let back = parse_str(&to_json(&d).to_string(), None).unwrap();
            assert_eq!(back, d, "{}", p.display());
            n += 1;
        }
    }
    assert!(n >= 7);
}

#[test]
fn conflicts_across_files() {
    let a = ok(
        r#"{"id":"a","network":{"interfaces":{"e":{"ip4":"10.0.0.2"}},"forwards":[{"proto":"tcp","hostPort":80,"port":80}]}}"#,
    );
    let b = ok(
        r#"{"id":"b","network":{"interfaces":{"f":{"ip4":"10.0.0.3"}},"forwards":[{"proto":"tcp","hostPort":80,"port":80,"hostIp":"192.0.2.1","to":"10.0.0.3"},{"proto":"udp","hostPort":80,"port":80}]}}"#,
    );
    let e = check_conflicts(&[a.clone(), b], &[]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].path, "network.forwards[0]");
    assert!(
        e[0].message
            .contains("tcp host port 80 is also claimed by a"),
        "{e:?}"
    );
    assert!(check_conflicts(&[a], &[]).is_empty());
}

#[test]
fn adopted_netns_conflicts_with_owned_handle() {
    let a = ok(r#"{"id":"a"}"#);
    let b = ok(r#"{"id":"b","network":{"netns_path":"/run/netns/a"}}"#);
    let e = check_conflicts(&[a, b], &[]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].path, "network.netns_path");
    let e = load(Path::new("/nonexistent/p.json")).unwrap_err();
    assert_eq!(
        e[0].message,
        "read /nonexistent/p.json: No such file or directory"
    );
}

mod bad_names {
    //! Every name the kernel refuses or mangles, in every name-bearing field, is refused
    //! at that field's path (issue 12).
    use super::*;
    use proptest::prelude::*;

    /// A name with at least one byte the kernel refuses (or reads as a template), or a
    /// reserved one, or one too long.
    fn bad_name() -> impl Strategy<Value = String> {
        prop_oneof![
            (
                "[a-z]{0,6}",
                prop::sample::select(vec!["%", "/", ":", " ", "\t", "\n", "é", "\u{7f}"]),
                "[a-z%]{0,6}"
            )
                .prop_map(|(a, c, b)| format!("{a}{c}{b}")),
            prop::sample::select(vec!["lo", "all", "default", ".", "..", ""])
                .prop_map(String::from),
            "[a-z]{16,20}",
        ]
    }

    /// The props with `name` in field `field`, and the JSON path its error must name.
    fn placed(field: usize, name: &str) -> (String, String) {
        let n = serde_json::Value::from(name).to_string();
        match field {
            0 => (
                format!(r#"{{"id":"c1","network":{{"interfaces":{{{n}:{{"ip4":"10.0.0.2"}}}}}}}}"#),
                key_path("network.interfaces", name),
            ),
            1 => (
                one(&format!(r#"{{"wan":{{"hostName":{n}}}}}"#)),
                "network.interfaces.wan.hostName".into(),
            ),
            2 => (
                one(&format!(r#"{{"wan":{{"hostBridge":{n}}}}}"#)),
                "network.interfaces.wan.hostBridge".into(),
            ),
            _ => (
                one(&format!(r#"{{"lan":{{"ovs":{{"bridge":{n}}}}}}}"#)),
                "network.interfaces.lan.ovs.bridge".into(),
            ),
        }
    }

    proptest! {
        #[test]
        fn refused_at_the_fields_path(name in bad_name(), field in 0usize..4) {
            // An empty hostName/hostBridge/bridge means "absent"; only the key can't be.
            prop_assume!(!(name.is_empty() && field > 0));
            let (json, path) = placed(field, &name);
            let e = parse_str(&json, None).expect_err(&json);
            prop_assert!(e.iter().any(|e| e.path == path), "{}: {:?}", json, e);
        }

        #[test]
        fn good_names_pass_everywhere(name in "[a-z][a-z0-9_.-]{0,14}", field in 0usize..4) {
            prop_assume!(!["lo", "all", "default"].contains(&name.as_str()));
            let (json, _) = placed(field, &name);
            prop_assert!(parse_str(&json, None).is_ok(), "{}", json);
        }
    }
}

fn ovn_port(d: &Desired) -> (&crate::model::OvnPort, Option<MacAddr>) {
    match &d.interfaces[0].kind {
        InterfaceKind::Ovs(p) => (p.ovn.as_ref().expect("ovn"), d.interfaces[0].mac),
        k => panic!("{k:?}"),
    }
}

#[test]
fn ovn_port_defaults_follow_the_interface() {
    let d = ok(&one(
        r#"{"lan":{"ip4":"10.0.0.2/24","ip6":"fd00::2/64","ovs":{"bridge":"br-int","ovn":{"switch":"ls-a"}}}}"#,
    ));
    let (p, mac) = ovn_port(&d);
    assert_eq!(p.name, "c1:lan");
    assert_eq!(mac, Some(p.mac), "a derived MAC is set on the interface");
    assert_eq!(p.addresses, [format!("{} 10.0.0.2 fd00::2", p.mac)]);
    assert_eq!(p.port_security, p.addresses);
    // Round trip through the emitted JSON keeps everything.
    let again = ok(&crate::props::to_json(&d).to_string());
    assert_eq!(again, d);

    let d = ok(&one(
        r#"{"lan":{"mac":"02:00:00:00:00:05","ovs":{"bridge":"br-int","ovn":{"switch":"ls-a","addresses":["unknown"],"port_security":false}}}}"#,
    ));
    let (p, _) = ovn_port(&d);
    assert_eq!(p.mac.to_string(), "02:00:00:00:00:05");
    assert_eq!(p.addresses, ["unknown"]);
    assert!(p.port_security.is_empty());
}

#[test]
fn ovn_port_errors_name_the_field() {
    let e = errs(&one(
        r#"{"lan":{"ovs":{"bridge":"br-int","external_ids":{"iface-id":"x"},"ovn":{"switch":"ls-a"}}}}"#,
    ));
    assert!(
        e.iter()
            .any(|m| m.contains("ovs.external_ids.iface-id") && m.contains("written by netprov")),
        "{e:?}"
    );
    let e = errs(&one(
        r#"{"lan":{"ovs":{"bridge":"","ovn":{"switch":"ls-a"}}}}"#,
    ));
    assert!(e.iter().any(|m| m.contains("ovs.ovn")), "{e:?}");
    let e = errs(&one(
        r#"{"lan":{"ovs":{"bridge":"br-int","ovn":{"addresses":["02:00:00:00:00:01"]}}}}"#,
    ));
    assert!(e.iter().any(|m| m.contains("ovs.ovn.switch")), "{e:?}");
    let e = errs(&one(
        r#"{"lan":{"ovs":{"bridge":"br-int","ovn":{"switch":"s","port_security":[" x"]}}}}"#,
    ));
    assert!(
        e.iter().any(|m| m.contains("ovs.ovn.port_security[0]")),
        "{e:?}"
    );
}

mod ovn_generated {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any valid id and interface name: the logical port name is unambiguous (it
        /// splits back at its only `:`), the derived MAC is unicast and locally
        /// administered and set on the interface, the default addresses name it and
        /// the IPs, and the props round-trip.
        #[test]
        fn ovn_ports_from_any_names(
            id in "[A-Za-z0-9][A-Za-z0-9_-]{0,20}",
            iface in "[a-z][a-z0-9_.-]{0,14}",
            host in 2u8..250,
            v6 in any::<bool>(),
        ) {
            prop_assume!(!["lo", "all", "default"].contains(&iface.as_str()));
            let ip6 = if v6 { format!(r#","ip6":"fd00::{host:x}/64""#) } else { String::new() };
            let json = format!(
                r#"{{"id":"{id}","network":{{"interfaces":{{"{iface}":{{"ip4":"10.0.0.{host}/24"{ip6},"ovs":{{"bridge":"br-int","ovn":{{"switch":"A"}}}}}}}}}}}}"#
            );
            let d = ok(&json);
            let (p, mac) = ovn_port(&d);
            prop_assert_eq!(p.name.split_once(':'), Some((id.as_str(), iface.as_str())));
            prop_assert_eq!(p.name.matches(':').count(), 1);
            prop_assert_eq!(p.mac.0[0] & 0x03, 0x02);
            prop_assert_eq!(mac, Some(p.mac));
            let mut want = format!("{} 10.0.0.{host}", p.mac);
            if v6 {
                want.push_str(&format!(" fd00::{host:x}"));
            }
            prop_assert_eq!(&p.addresses, &vec![want]);
            prop_assert_eq!(&p.port_security, &p.addresses);
            prop_assert_eq!(ok(&crate::props::to_json(&d).to_string()), d.clone());
        }
    }
}
