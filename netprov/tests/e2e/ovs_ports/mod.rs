//! OVS ports with VLAN tags against a real, private Open vSwitch (userspace datapath)
//! running in a test-made host netns, with "container" netns made by the test.
//!
//! The netlink engine (which moves internal devices into containers) is not part of
//! these tests: moving and addressing devices is done here with `ip` as scaffolding.

use std::collections::BTreeMap;

use netprov::model::{
    ContainerId, IfName, Interface, InterfaceKind, OvsPort, OvsStyle, VlanMode, VlanTag,
};
use netprov::ovsdb::{self, Client, Endpoint, OvsChange, PortSpec};
use testkit::ovs::Ovs;

mod faults;
mod ownership;
mod vlans;

fn client(o: &Ovs) -> Client {
    Client::connect(&Endpoint::parse(&o.endpoint()).unwrap()).unwrap()
}

fn id(s: &str) -> ContainerId {
    ContainerId::new(s).unwrap()
}

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

/// Where an internal port's device is.
///
/// With the userspace datapath (`datapath_type=netdev`) an internal port is a
/// persistent tap device whose file descriptor ovs-vswitchd holds. Moved into a
/// container it keeps passing traffic, but ovs-vswitchd no longer sees it: OVSDB shows
/// `ifindex` 0 and `link_state` down for a healthy moved port, and nothing at all when
/// the device is deleted. And when ovs-vswitchd restarts, it creates a *new* tap under
/// the port name in its own netns while the old one stays, dead, in the container.
/// Only looking at both netns tells these cases apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InternalDevice {
    /// In the host netns under the port name: created, not yet moved (or re-created by
    /// ovs-vswitchd after the container's copy died).
    InHost,
    /// In the container under the interface name, and no copy in the host: in place.
    InContainer,
    /// In both: ovs-vswitchd restarted and made a new device; the container's one is
    /// a dead leftover.
    Both,
    /// Nowhere: the device vanished.
    Missing,
}

fn link_exists(name: &str) -> bool {
    let c = std::ffi::CString::new(name).expect("interface names have no NUL");
    // SAFETY: if_nametoindex only reads the NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// Where `s`'s device is, looked up from the host netns (the one ovs-vswitchd runs
/// in) and in the container netns `ns`.
fn locate(o: &Ovs, s: &PortSpec, ns: &str) -> InternalDevice {
    let (port, p) = (s.port.to_string(), Ovs::netns_path(ns));
    let iface = s.iface.to_string();
    let in_host =
        netprov::kernel::netns::in_netns(&o.host.path(), move || link_exists(&port)).unwrap();
    let in_container = netprov::kernel::netns::in_netns(&p, move || link_exists(&iface)).unwrap();
    match (in_host, in_container) {
        (true, false) => InternalDevice::InHost,
        (false, true) => InternalDevice::InContainer,
        (true, true) => InternalDevice::Both,
        (false, false) => InternalDevice::Missing,
    }
}

fn port_uuid(o: &Ovs, port: &str) -> String {
    o.vsctl(&["get", "Port", port, "_uuid"])
}
