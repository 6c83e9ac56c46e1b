//! Every step kind (but the OVS and OVN changes, whose words are their layers'):
//! its sentence, its drift with the drift's kind, its phase and its `--json` op.

use super::*;
use crate::engine::drift::{Object, Problem};
use crate::kernel::route::RouteSpec;
use crate::model::{ContainerId, IfName, MacAddr, Ruleset};

fn web() -> ContainerId {
    ContainerId::new("web").unwrap()
}

fn name(s: &str) -> IfName {
    IfName::new(s).unwrap()
}

fn route(dest: &str, gw: Option<&str>) -> RouteSpec {
    RouteSpec {
        dest: dest.parse().unwrap(),
        gateway: gw.map(|g| g.parse().unwrap()),
        dev: None,
        metric: 0,
    }
}

/// (step, sentence, drift, drift kind, phase, op)
fn cases() -> Vec<(
    Step,
    &'static str,
    &'static str,
    Object,
    Problem,
    Phase,
    &'static str,
)> {
    let ns = At::Netns(web());
    let mac = Some(MacAddr([2, 0, 0, 0, 0, 1]));
    let addr: ipnetwork::IpNetwork = "10.0.0.2/31".parse().unwrap();
    use LinkStep as L;
    use Object as O;
    use Phase as P;
    use Problem::*;
    vec![
        (NetnsStep::CreateNetns { netns: web(), path: "/run/netns/web".into() }.into(),
         "create netns web at /run/netns/web", "netns /run/netns/web: missing", O::Netns, Missing, P::Netns, "create_netns"),
        (L::CreateVeth { host: name("ve-web-lan"), peer: name("lan"), netns: web(), host_alias: "netprov:web:lan".into(), peer_alias: "netprov:web".into(), mtu: Some(1400), mac }.into(),
         "create veth ve-web-lan (host) ↔ lan (netns web) mtu 1400 mac 02:00:00:00:00:01", "veth ve-web-lan (host) ↔ lan (netns web): missing", O::Veth, Missing, P::HostLinks, "create_veth"),
        (L::DeleteLink { at: At::Host, link: name("ve-web-lan") }.into(),
         "delete stale link ve-web-lan in host netns", "link ve-web-lan in host netns: is half of a netprov veth pair whose other end is gone", O::Link, Extra, P::HostLinks, "delete_link"),
        (L::RemoveLink { at: ns.clone(), link: "old".into() }.into(),
         "delete link old in netns web (not wanted as it is)", "link old in netns web: is netprov's but not wanted as it is (not in the props, or of another kind)", O::Link, Extra, P::HostLinks, "remove_link"),
        (L::Release { link: name("ve-web-lan") }.into(),
         "detach ve-web-lan from its bridge in host netns", "link ve-web-lan in host netns: is a bridge port, the props want none", O::Link, Differs, P::HostLinks, "release"),
        (L::DeleteDeadOvsDevice { netns: web(), link: name("lan") }.into(),
         "delete dead OVS internal device lan in netns web (ovs-vswitchd made a new one)", "OVS internal device lan in netns web: is dead: ovs-vswitchd restarted and made a new one in the host netns", O::OvsDevice, Extra, P::HostLinks, "delete_dead_ovs_device"),
        (L::MarkLink { at: ns.clone(), link: "lo".into(), alias: "netprov-netns:web".into() }.into(),
         "set alias netprov-netns:web on lo in netns web", "link lo in netns web: lacks its ownership alias netprov-netns:web", O::Link, Differs, P::HostLinks, "mark_link"),
        (L::MoveLinkIn { link: name("eth1"), netns: web(), kind: MoveKind::Existing, alias: None }.into(),
         "move existing link eth1 into netns web", "interface eth1: is not in netns web", O::Interface, Differs, P::ContainerLinks, "move_link_in"),
        (L::CreateMacvlan { link: name("mv-lan"), parent: name("lan"), netns: web(), alias: "netprov:web".into(), mac }.into(),
         "create macvlan mv-lan (bridge mode) on lan in netns web mac 02:00:00:00:00:01", "macvlan mv-lan in netns web: missing", O::Macvlan, Missing, P::ContainerLinks, "create_macvlan"),
        (L::SetLink { at: ns.clone(), link: name("lan"), mtu: Some(9000), mac }.into(),
         "set mtu 9000 mac 02:00:00:00:00:01 on lan in netns web", "link lan in netns web: mtu differs (want 9000), MAC differs (want 02:00:00:00:00:01)", O::Link, Differs, P::LinkState, "set_link"),
        (L::Enslave { link: name("ve-web-lan"), bridge: name("br0") }.into(),
         "attach ve-web-lan to bridge br0 in host netns", "link ve-web-lan in host netns: is not a port of bridge br0", O::Link, Differs, P::HostLinks, "enslave"),
        (L::LinkUp { at: ns.clone(), link: "lo".into() }.into(),
         "set lo up in netns web", "link lo in netns web: is down", O::Link, Differs, P::LinkState, "link_up"),
        (AddressStep::DelAddress { at: ns.clone(), link: name("lan"), addr }.into(),
         "delete address 10.0.0.2/31 from lan in netns web", "address 10.0.0.2/31 on lan in netns web: is not desired", O::Address, Extra, P::Addresses, "del_address"),
        (AddressStep::AddAddress { at: ns.clone(), link: name("lan"), addr }.into(),
         "add address 10.0.0.2/31 to lan in netns web", "address 10.0.0.2/31 on lan in netns web: missing", O::Address, Missing, P::Addresses, "add_address"),
        (AddressStep::ReAddAddress { at: ns.clone(), link: name("lan"), addr }.into(),
         "re-add address 10.0.0.2/31 to lan in netns web", "address 10.0.0.2/31 on lan in netns web: shares its subnet with an address that is not desired (the kernel drops it with that one)", O::Address, Differs, P::Addresses, "re_add_address"),
        (RouteStep::DelRoute { at: ns.clone(), route: route("10.9.0.0/16", Some("10.0.0.1")) }.into(),
         "delete route 10.9.0.0/16 via 10.0.0.1 in netns web", "route 10.9.0.0/16 via 10.0.0.1 in netns web: is not desired", O::Route, Extra, P::Routes, "del_route"),
        (RouteStep::ReplaceRoute { at: ns.clone(), route: route("0.0.0.0/0", Some("10.0.0.1")), was: None }.into(),
         "replace route default via 10.0.0.1 in netns web", "route default via 10.0.0.1 in netns web: missing", O::Route, Missing, P::Routes, "replace_route"),
        (SysctlStep::WriteSysctl { netns: web(), key: "net.ipv4.ip_forward".into(), path: "net/ipv4/ip_forward".into(), value: "1".into(), current: Some("0".into()) }.into(),
         "set sysctl net.ipv4.ip_forward=1 in netns web", "sysctl net.ipv4.ip_forward in netns web: is \"0\", want \"1\"", O::Sysctl, Differs, P::Sysctls, "write_sysctl"),
        (NftStep::LoadRuleset { netns: web(), digest: "ab".into(), reason: RulesetReason::Changed, ruleset: Ruleset { text: String::new() } }.into(),
         "load nftables ruleset in netns web (sha256 ab)", "nftables ruleset in netns web: differs from the props", O::Ruleset, Differs, P::Nft, "load_ruleset"),
        (NftStep::RemoveRuleset { netns: web() }.into(),
         "remove nftables ruleset netprov loaded in netns web", "nftables ruleset in netns web: is loaded but the props have none", O::Ruleset, Extra, P::Nft, "remove_ruleset"),
        (NftStep::RemoveHostRules { table: "netprov-web".into() }.into(),
         "remove host rules table inet netprov-web in host netns", "host rules table inet netprov-web: exists but no host rule is wanted", O::HostRules, Extra, P::Nft, "remove_host_rules"),
    ]
}

#[test]
fn every_kind_reads_as_a_sentence_and_as_drift() {
    for (step, sentence, drift, object, problem, phase, op) in cases() {
        assert_eq!(step.to_string(), sentence);
        let d = step.as_drift();
        assert_eq!(d.to_string(), drift, "{sentence}");
        assert_eq!((d.object, d.problem), (object, problem), "{sentence}");
        assert_eq!(step.phase(), phase, "{sentence}");
        let j = serde_json::to_value(&step).unwrap();
        assert_eq!(j["op"], op, "{sentence}");
        let dj = serde_json::to_value(&d).unwrap();
        assert_eq!(
            format!(
                "{}: {}",
                dj["object"].as_str().unwrap(),
                dj["problem"].as_str().unwrap()
            ),
            drift
        );
    }
}
