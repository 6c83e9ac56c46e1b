//! One `network.interfaces.<name>` entry → [`Interface`]: kind inference, addresses,
//! OVS and macvlan settings.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;

use super::addr::{self, Family};
use super::errors::{key_path, Errors};
use super::names;
use super::raw::{self, given};
use crate::marks::OWNER_KEY;
use crate::model::{
    ContainerId, IfName, Interface, InterfaceKind, MacAddr, Macvlan, OvsPort, OvsStyle, VethHost,
    VlanMode, VlanTag,
};

pub fn interface(
    e: &mut Errors,
    id: &ContainerId,
    name: &str,
    raw: &raw::Interface,
) -> Option<Interface> {
    let at = key_path("network.interfaces", name);
    let f = |field: &str| format!("{at}.{field}");
    let name = e.check(
        &at,
        IfName::new(name).map_err(|m| format!("interface name {name:?} {m}")),
    );
    let a = addrs(e, &at, raw);
    let mut kind = kind(e, &at, raw, id, name.as_ref(), &a);
    let macvlan = raw
        .macvlan
        .as_ref()
        .and_then(|m| macvlan(e, &f("macvlan"), m, name.as_ref()))
        .flatten();
    let mtu = raw.mtu.and_then(|m| {
        e.check(
            f("mtu"),
            if (68..=65535).contains(&m) {
                Ok(m)
            } else {
                Err(format!("{m} is out of range: an MTU is 68–65535"))
            },
        )
    });
    let mut mac = given(&raw.mac).and_then(|s| e.check(f("mac"), addr::mac(s)));
    if let (Some(InterfaceKind::Ovs(port)), Some(n)) = (kind.as_mut(), name.as_ref()) {
        if let Some(o) = raw.ovs.as_ref().and_then(|o| o.ovn.as_ref()) {
            let addrs: Vec<IpNetwork> = a.ip4.into_iter().chain(a.ip6).collect();
            port.ovn =
                super::ovn::port(e, &f("ovs.ovn"), o, id, n, mac, &addrs, &port.external_ids);
            // The logical port's addresses and port security name this MAC: the
            // interface must have it, so a derived one is set on the interface too.
            if let Some(p) = &port.ovn {
                mac = Some(p.mac);
            }
        }
    }
    Some(Interface {
        name: name?,
        kind: kind?,
        addrs: a.ip4.into_iter().chain(a.ip6).collect(),
        mtu,
        mac,
        macvlan,
    })
}

/// The container end's and the (veth) host end's addresses, each valid or `None`.
struct Addrs {
    ip4: Option<IpNetwork>,
    ip6: Option<IpNetwork>,
    host4: Option<IpNetwork>,
    host6: Option<IpNetwork>,
}

/// Checks the addresses of the interface at `at`; the two ends must differ.
fn addrs(e: &mut Errors, at: &str, raw: &raw::Interface) -> Addrs {
    let f = |field: &str| format!("{at}.{field}");
    let ip4 = given(&raw.ip4).and_then(|s| e.check(f("ip4"), addr::interface_addr(s, Family::V4)));
    let ip6 = given(&raw.ip6).and_then(|s| e.check(f("ip6"), addr::interface_addr(s, Family::V6)));
    let host4 = given(&raw.host_ip4)
        .and_then(|s| e.check(f("hostIp4"), addr::interface_addr(s, Family::V4)));
    let host6 = given(&raw.host_ip6)
        .and_then(|s| e.check(f("hostIp6"), addr::interface_addr(s, Family::V6)));
    for (field, mine, host) in [("hostIp4", ip4, host4), ("hostIp6", ip6, host6)] {
        if let (Some(m), Some(h)) = (mine, host) {
            if m.ip() == h.ip() {
                e.err(
                    f(field),
                    format!("{h} is also the container end's address; the two ends of a veth need different addresses"),
                );
            }
        }
    }
    Addrs {
        ip4,
        ip6,
        host4,
        host6,
    }
}

/// The interface's kind, from which fields are written: an OVS port (`ovs.bridge`), a
/// veth (any host-end field) or an existing link (neither).
fn kind(
    e: &mut Errors,
    at: &str,
    raw: &raw::Interface,
    id: &ContainerId,
    name: Option<&IfName>,
    a: &Addrs,
) -> Option<InterfaceKind> {
    let f = |field: &str| format!("{at}.{field}");
    let if_name = |e: &mut Errors, field: &str, v: &Option<String>| {
        given(v).and_then(|s| e.check(f(field), IfName::new(s).map_err(|m| format!("{s:?} {m}"))))
    };
    let host_name = if_name(e, "hostName", &raw.host_name);
    let host_bridge = if_name(e, "hostBridge", &raw.host_bridge);
    let ovs = raw.ovs.clone().unwrap_or_default();
    if let Some(bridge) = given(&ovs.bridge) {
        for (field, set) in [
            ("hostIp4", given(&raw.host_ip4).is_some()),
            ("hostIp6", given(&raw.host_ip6).is_some()),
            ("hostBridge", given(&raw.host_bridge).is_some()),
        ] {
            if set {
                e.err(
                    f(field),
                    format!("ovs.bridge {bridge:?} makes this an OVS port, which has no host end to give {field}; remove {field} or ovs.bridge"),
                );
            }
        }
        return ovs_port(e, &f("ovs"), bridge, &ovs, host_name, id, name).map(InterfaceKind::Ovs);
    }
    ovs_unset(e, &f("ovs"), &ovs);
    // Kind follows from which fields are written, valid or not.
    let host_fields = [
        &raw.host_ip4,
        &raw.host_ip6,
        &raw.host_name,
        &raw.host_bridge,
    ];
    if !host_fields.into_iter().any(|f| given(f).is_some()) {
        return Some(InterfaceKind::Existing);
    }
    let derived = name.map(|n| names::veth_host(id, n));
    host_name.or(derived).map(|name| {
        InterfaceKind::Veth(VethHost {
            name,
            addrs: a.host4.into_iter().chain(a.host6).collect(),
            bridge: host_bridge,
        })
    })
}

/// With `ovs.bridge` empty, the other OVS fields must be defaults too.
fn ovs_unset(e: &mut Errors, at: &str, ovs: &raw::Ovs) {
    let set = [
        ("vlan", ovs.vlan.is_some_and(|v| v != 0)),
        ("trunks", ovs.trunks.as_ref().is_some_and(|t| !t.is_empty())),
        ("vlan_mode", given(&ovs.vlan_mode).is_some()),
        // Either style is a default a generator may emit for every interface.
        (
            "style",
            given(&ovs.style).is_some_and(|s| s != "internal" && s != "veth"),
        ),
        (
            "external_ids",
            ovs.external_ids.as_ref().is_some_and(|x| !x.is_empty()),
        ),
        (
            "ovn",
            ovs.ovn.as_ref().is_some_and(|o| given(&o.switch).is_some()),
        ),
    ];
    for (field, is_set) in set {
        if is_set {
            e.err(
                format!("{at}.{field}"),
                format!("ovs.{field} is set but ovs.bridge is empty; set ovs.bridge to make this an OVS port, or remove ovs.{field}"),
            );
        }
    }
}

fn ovs_port(
    e: &mut Errors,
    at: &str,
    bridge: &str,
    ovs: &raw::Ovs,
    host_name: Option<IfName>,
    id: &ContainerId,
    iface: Option<&IfName>,
) -> Option<OvsPort> {
    let bridge = e.check(
        format!("{at}.bridge"),
        IfName::new(bridge).map_err(|m| format!("bridge name {bridge:?} {m}")),
    );
    let (vlan, trunks, vlan_mode) = vlans(e, at, ovs);
    let style = style(e, at, ovs, host_name, id, iface);
    let external_ids = external_ids(e, at, ovs);
    Some(OvsPort {
        bridge: bridge?,
        vlan: vlan?,
        trunks,
        vlan_mode,
        style: style?,
        external_ids,
        ovn: None,
    })
}

/// `ovs.vlan`, `ovs.trunks` (sorted, without repeats) and `ovs.vlan_mode`, checked
/// against each other.
fn vlans(
    e: &mut Errors,
    at: &str,
    ovs: &raw::Ovs,
) -> (Option<VlanTag>, Vec<VlanTag>, Option<VlanMode>) {
    let f = |field: &str| format!("{at}.{field}");
    let vlan = e.check(f("vlan"), VlanTag::new(ovs.vlan.unwrap_or(0)));
    let mut trunks = Vec::new();
    for (i, t) in ovs.trunks.iter().flatten().enumerate() {
        trunks.extend(e.check(format!("{at}.trunks[{i}]"), VlanTag::new(*t)));
    }
    trunks.sort();
    trunks.dedup();
    let vlan_mode = given(&ovs.vlan_mode).and_then(|m| {
        let mode = match m {
            "access" => Ok(VlanMode::Access),
            "trunk" => Ok(VlanMode::Trunk),
            "native-tagged" => Ok(VlanMode::NativeTagged),
            "native-untagged" => Ok(VlanMode::NativeUntagged),
            _ => Err(format!(
                "{m:?} is not a VLAN mode: use access, trunk, native-tagged or native-untagged"
            )),
        };
        e.check(f("vlan_mode"), mode)
    });
    let tag = vlan.map_or(0, VlanTag::get);
    match vlan_mode {
        Some(VlanMode::Access) if !trunks.is_empty() => {
            e.err(f("trunks"), "vlan_mode \"access\" carries only ovs.vlan; remove trunks or use a trunk/native mode")
        }
        Some(VlanMode::Trunk) if tag != 0 => e.err(
            f("vlan"),
            format!("vlan_mode \"trunk\" ignores the access tag {tag}; use native-tagged/native-untagged or vlan 0"),
        ),
        Some(VlanMode::NativeTagged | VlanMode::NativeUntagged) if tag == 0 => e.err(
            f("vlan"),
            "a native VLAN mode needs ovs.vlan (1–4095) as the native VLAN",
        ),
        _ => {}
    }
    (vlan, trunks, vlan_mode)
}

/// `ovs.style`: veth by default. The OVS port is then the veth host end, named like
/// any veth host end after the container and the interface, so every container can
/// call its interface `lan`; an internal port is named by the interface itself,
/// host-wide.
fn style(
    e: &mut Errors,
    at: &str,
    ovs: &raw::Ovs,
    host_name: Option<IfName>,
    id: &ContainerId,
    iface: Option<&IfName>,
) -> Option<OvsStyle> {
    match given(&ovs.style).unwrap_or("veth") {
        "internal" => {
            if host_name.is_some() {
                e.err(
                    format!("{}.hostName", at.trim_end_matches(".ovs")),
                    "hostName names a veth host end, but ovs.style \"internal\" moves the OVS port itself into the container; use ovs.style \"veth\" or remove hostName",
                );
            }
            Some(OvsStyle::Internal)
        }
        "veth" => host_name
            .or_else(|| iface.map(|n| names::veth_host(id, n)))
            .map(|host| OvsStyle::Veth { host }),
        other => {
            e.err(
                format!("{at}.style"),
                format!("{other:?} is not an OVS style: use \"internal\" or \"veth\""),
            );
            None
        }
    }
}

/// `ovs.external_ids`, without netprov's own ownership key.
fn external_ids(e: &mut Errors, at: &str, ovs: &raw::Ovs) -> BTreeMap<String, String> {
    let mut external_ids = BTreeMap::new();
    for (k, v) in ovs.external_ids.iter().flatten() {
        if k.is_empty() || k == OWNER_KEY {
            e.err(
                key_path(&format!("{at}.external_ids"), k),
                format!("{k:?} cannot be set: keys must be non-empty and {OWNER_KEY:?} is netprov's ownership mark"),
            );
        } else {
            external_ids.insert(k.clone(), v.clone());
        }
    }
    external_ids
}

/// `Some(None)`: valid but absent; `None`: invalid (errors recorded).
fn macvlan(
    e: &mut Errors,
    at: &str,
    raw: &raw::Macvlan,
    iface: Option<&IfName>,
) -> Option<Option<Macvlan>> {
    let f = |field: &str| format!("{at}.{field}");
    let ip4 = given(&raw.ip4).and_then(|s| e.check(f("ip4"), addr::interface_addr(s, Family::V4)));
    let ip6 = given(&raw.ip6).and_then(|s| e.check(f("ip6"), addr::interface_addr(s, Family::V6)));
    let vrid = match &raw.vrid {
        None => Ok(None),
        Some(raw::Vrid::Text(s)) if s.is_empty() => Ok(None),
        Some(raw::Vrid::Text(s)) => match s.parse::<i64>() {
            Ok(n) if n.to_string() == *s => vrid(n),
            _ => Err(format!(
                "{s:?} is not a VRRP id: write a decimal number 1–255, e.g. \"12\""
            )),
        },
        Some(raw::Vrid::Number(n)) => vrid(*n),
    };
    let vrid = e.check(f("vrid"), vrid)?;
    let explicit = given(&raw.mac).and_then(|s| e.check(f("mac"), addr::mac(s)));
    // RFC 5798: 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID} for IPv6.
    let vrrp = vrid.map(|v| {
        let family = if ip4.is_none() && ip6.is_some() { 2 } else { 1 };
        MacAddr([0, 0, 0x5e, 0, family, v])
    });
    let name = names::macvlan(iface?, vrid);
    Some(Some(Macvlan {
        name,
        addrs: ip4.into_iter().chain(ip6).collect(),
        vrid,
        mac: explicit.or(vrrp),
    }))
}

fn vrid(n: i64) -> Result<Option<u8>, String> {
    match u8::try_from(n) {
        Ok(v) if v >= 1 => Ok(Some(v)),
        _ => Err(format!("{n} is out of range: a VRRP id is 1–255")),
    }
}
