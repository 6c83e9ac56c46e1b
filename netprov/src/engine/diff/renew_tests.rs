//! The diff plans from the state its own link and address steps leave: routes through
//! a re-created link or a link stripped of its IPv4 addresses are re-added, links the
//! props no longer want are removed (only netprov's), macvlans follow their parent.

use std::collections::BTreeMap;

use super::{diff, testkit};
use crate::engine::observe::{NsState, Observed};
use crate::engine::plan::{AddressStep, Step};
use crate::kernel::link::{Kind, LinkState};
use crate::kernel::route::RouteSpec;
use crate::marks::NETPROV_GROUP;
use crate::model::*;

fn link(index: u32, name: &str, alias: Option<&str>, kind: Kind, peer: Option<u32>) -> LinkState {
    LinkState {
        alias: alias.map(Into::into),
        group: if alias.is_some() { NETPROV_GROUP } else { 0 },
        kind,
        mtu: Some(1500),
        mac: Some([2, 0, 0, 0, 0, index as u8]),
        link: peer,
        ..testkit::link(name, index)
    }
}

fn route(dest: &str, gw: Option<&str>, dev: &str) -> RouteSpec {
    let dest: ipnetwork::IpNetwork = dest.parse().unwrap();
    RouteSpec {
        dest,
        gateway: gw.map(|g| g.parse().unwrap()),
        dev: Some(dev.into()),
        metric: crate::kernel::route::default_metric(&dest),
    }
}

fn desired(c4: &str, h4: &str, gw: &str) -> Desired {
    Desired {
        routes: vec![Route {
            dest: "0.0.0.0/0".parse().unwrap(),
            gateway: Some(gw.parse().unwrap()),
            dev: None,
            metric: None,
        }],
        ..testkit::desired(vec![testkit::veth("wan", "ve-web-wan", h4, c4)])
    }
}

/// The kernel after applying `desired("10.210.0.3/31", "10.210.0.2/31", "10.210.0.2")`.
fn applied() -> Observed {
    let mut o = Observed {
        netns_exists: true,
        ..Default::default()
    };
    let h = link(
        7,
        "ve-web-wan",
        Some("netprov:web:wan"),
        Kind::Veth,
        Some(2),
    );
    let c = link(2, "wan", Some("netprov:web"), Kind::Veth, Some(7));
    o.container = NsState {
        links: BTreeMap::from([
            // The owner mark of a netns netprov made.
            (
                "lo".into(),
                link(1, "lo", Some("netprov-netns:web"), Kind::Unknown, None),
            ),
            ("wan".into(), c),
        ]),
        addrs: BTreeMap::from([(2, vec!["10.210.0.3/31".parse().unwrap()])]),
        routes: vec![
            route("10.210.0.2/32", None, "wan"),
            route("0.0.0.0/0", Some("10.210.0.2"), "wan"),
        ],
    };
    o.host = NsState {
        links: BTreeMap::from([("ve-web-wan".into(), h)]),
        addrs: BTreeMap::from([(7, vec!["10.210.0.2/31".parse().unwrap()])]),
        routes: vec![route("10.210.0.3/32", None, "ve-web-wan")],
    };
    o
}

fn texts(d: &Desired, o: &Observed) -> Vec<String> {
    diff(d, o)
        .unwrap()
        .steps
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn in_sync_is_an_empty_plan() {
    let d = desired("10.210.0.3/31", "10.210.0.2/31", "10.210.0.2");
    assert_eq!(texts(&d, &applied()), Vec::<String>::new());
}

#[test]
fn renumbering_a_veth_replans_the_routes_the_kernel_flushes_with_the_last_ipv4_address() {
    let d = desired("10.210.0.5/31", "10.210.0.4/31", "10.210.0.4");
    let t = texts(&d, &applied());
    // The old device routes go with the old addresses: no delete (it would race the
    // kernel: ESRCH); the kept default route is gone too and is added again.
    assert!(!t.iter().any(|s| s.starts_with("delete route")), "{t:#?}");
    for want in [
        "replace route 10.210.0.5/32 dev ve-web-wan in host netns",
        "replace route 10.210.0.4/32 dev wan in netns web",
        "replace route default via 10.210.0.4 in netns web",
    ] {
        assert!(t.iter().any(|s| s == want), "{want}: {t:#?}");
    }
}

#[test]
fn a_recreated_veth_gets_its_routes_from_the_new_state() {
    let d = desired("10.210.0.3/31", "10.210.0.2/31", "10.210.0.2");
    let mut o = applied();
    // The host end was renamed behind netprov's back: the pair is re-created, and
    // every route seen on the old container end dies with it.
    o.host.links.remove("ve-web-wan").unwrap();
    o.host.routes.clear();
    let t = texts(&d, &o);
    for want in [
        "delete stale link wan in netns web",
        "replace route 10.210.0.2/32 dev wan in netns web",
        "replace route default via 10.210.0.2 in netns web",
        "add address 10.210.0.3/31 to wan in netns web",
    ] {
        assert!(t.iter().any(|s| s == want), "{want}: {t:#?}");
    }
}

#[test]
fn links_no_longer_wanted_are_removed_only_when_netprovs() {
    let mut d = desired("10.210.0.3/31", "10.210.0.2/31", "10.210.0.2");
    let mut o = applied();
    o.container.links.insert(
        "mv-old".into(),
        link(9, "mv-old", Some("netprov:web"), Kind::Macvlan, Some(2)),
    );
    o.container.links.insert(
        "docker0".into(),
        link(10, "docker0", None, Kind::Bridge, None),
    );
    o.container.links.insert(
        "theirs".into(),
        link(11, "theirs", Some("netprov:other"), Kind::Veth, None),
    );
    let t = texts(&d, &o);
    assert_eq!(t, ["delete link mv-old in netns web (not wanted as it is)"]);
    // A macvlan whose parent is re-created is made anew on the new parent.
    d.interfaces[0].macvlan = Some(Macvlan {
        name: IfName::new("mv-old").unwrap(),
        addrs: vec![],
        vrid: None,
        mac: None,
    });
    o.container.links.get_mut("wan").unwrap().link = Some(99);
    let t = texts(&d, &o);
    assert!(
        t.iter()
            .any(|s| s == "delete link mv-old in netns web (not wanted as it is)")
            && t.iter()
                .any(|s| s.starts_with("create macvlan mv-old (bridge mode) on wan")),
        "{t:#?}"
    );
}

#[test]
fn a_deleted_primary_takes_the_wanted_secondary_which_is_re_added() {
    let d = desired("10.210.0.3/24", "10.210.0.2/31", "10.210.0.2");
    let mut o = applied();
    o.container.addrs.insert(
        2,
        vec![
            "10.210.0.7/24".parse().unwrap(),
            "10.210.0.3/24".parse().unwrap(),
        ],
    );
    let steps = diff(&d, &o).unwrap().steps;
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, Step::Address(AddressStep::ReAddAddress { .. }))),
        "{steps:#?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.to_string() == "replace route default via 10.210.0.2 in netns web"),
        "{steps:#?}"
    );
}

#[test]
fn ipv6_metric_zero_is_the_kernels_1024() {
    let mut d = desired("10.210.0.3/31", "10.210.0.2/31", "10.210.0.2");
    d.routes.push(Route {
        dest: "fd98::/64".parse().unwrap(),
        gateway: None,
        dev: Some(IfName::new("wan").unwrap()),
        metric: Some(0),
    });
    let mut o = applied();
    o.container.routes.push(route("fd98::/64", None, "wan"));
    assert_eq!(texts(&d, &o), Vec::<String>::new());
}
