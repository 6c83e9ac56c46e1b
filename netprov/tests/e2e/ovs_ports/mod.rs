//! OVS ports with VLAN tags against a real, private Open vSwitch (userspace datapath)
//! running in a test-made host netns, with "container" netns made by the test.
//!
//! The netlink engine (which moves internal devices into containers) is not part of
//! these tests: moving and addressing devices is done here with `ip` as scaffolding.

use std::collections::BTreeMap;

use netprov::model::{
    ContainerId, IfName, Interface, InterfaceKind, OvsPort, OvsStyle, VlanMode, VlanTag,
};
use netprov::ovsdb::port::{self, InternalDevice};
use netprov::ovsdb::{self, Client, Endpoint, OvsChange, PortSpec};
use testkit::ovs::Ovs;

fn client(o: &Ovs) -> Client {
    Client::connect(&Endpoint::parse(&o.endpoint()).unwrap()).unwrap()
}

fn id(s: &str) -> ContainerId {
    ContainerId::new(s).unwrap()
}

mod faults;
mod ownership;
mod vlans;

/// The spec netprov derives for interface `iface` of container `owner`.
fn spec(owner: &str, iface: &str, bridge: &str, vlan: i64, style: OvsStyle) -> PortSpec {
    let ovs = OvsPort {
        bridge: IfName::new(bridge).unwrap(),
        vlan: VlanTag::new(vlan).unwrap(),
        trunks: vec![],
        vlan_mode: None,
        style,
        external_ids: BTreeMap::from([("iface-id".to_owned(), format!("{owner}-{iface}"))]),
        ovn: None,
    };
    let i = Interface {
        name: IfName::new(iface).unwrap(),
        kind: InterfaceKind::Ovs(ovs.clone()),
        addrs: vec![],
        mtu: None,
        mac: None,
        macvlan: None,
    };
    let all = PortSpec::all(&id(owner), std::slice::from_ref(&i));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0], PortSpec::new(&id(owner), &i, &ovs));
    all.into_iter().next().unwrap()
}

fn internal(owner: &str, iface: &str, vlan: i64) -> PortSpec {
    spec(owner, iface, "br0", vlan, OvsStyle::Internal)
}

/// What the engine will do: move the internal device from the host into the
/// container, then address it.
fn attach(o: &Ovs, s: &PortSpec, ns: &str, addr: &str) {
    o.host
        .ok("ip", &["link", "set", s.port.as_str(), "netns", ns]);
    for args in [
        vec!["link", "set", s.port.as_str(), "name", s.iface.as_str()],
        vec!["addr", "add", addr, "dev", s.iface.as_str()],
        vec!["link", "set", s.iface.as_str(), "up"],
    ] {
        let out = Ovs::in_ns(ns, "ip", &args);
        assert!(
            out.status.success(),
            "ip {args:?} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn host_has_link(o: &Ovs, name: &str) -> bool {
    o.host.run("ip", &["link", "show", name]).status.success()
}

fn ns_has_link(ns: &str, name: &str) -> bool {
    Ovs::in_ns(ns, "ip", &["link", "show", name])
        .status
        .success()
}

/// Where `s`'s device is, looked up from the host netns as the engine will.
fn locate(o: &Ovs, s: &PortSpec, ns: &str) -> InternalDevice {
    let (s, p) = (s.clone(), Ovs::netns_path(ns));
    netprov::kernel::netns::in_netns(&o.host.path(), move || port::locate_internal_device(&s, &p))
        .unwrap()
        .unwrap()
}

fn port_uuid(o: &Ovs, port: &str) -> String {
    o.vsctl(&["get", "Port", port, "_uuid"])
}
