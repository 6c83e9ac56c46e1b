//! Names netprov derives: the host end of a veth and a macvlan.
//!
//! A derived name that would exceed the kernel's 15 bytes is replaced by a
//! deterministic short hash, so the same file always yields the same names.

use crate::model::{ContainerId, IfName, Interface, InterfaceKind, IFNAME_MAX};

/// Prefix of derived veth host-end names. Not `ve-`: systemd-networkd's stock
/// `80-container-ve.network` matches `ve-*` (nspawn's own `--network-veth` ends) and would
/// add a pool address, a DHCP server and masquerading to netprov's links; no stock
/// networkd, NetworkManager or dhcpcd rule matches `np-*` (docs/nspawn.md, coexistence).
pub const VETH_HOST_PREFIX: &str = "np-";

/// `np-<id>-<if>`, or `np-` + 12 hex digits of SHA-256(`<id>/<if>`) when that is longer
/// than 15 bytes.
pub fn veth_host(id: &ContainerId, iface: &IfName) -> IfName {
    let plain = format!("{VETH_HOST_PREFIX}{id}-{iface}");
    fit(plain, VETH_HOST_PREFIX, &format!("{id}/{iface}"))
}

/// `mv-<if>` or `mv-<if>-<vrid>`, or `mv-` + 12 hex digits of SHA-256(`<if>/<vrid>`)
/// (`<vrid>` empty when there is none) when that is longer than 15 bytes.
pub fn macvlan(iface: &IfName, vrid: Option<u8>) -> IfName {
    let (plain, seed) = match vrid {
        Some(v) => (format!("mv-{iface}-{v}"), format!("{iface}/{v}")),
        None => (format!("mv-{iface}"), format!("{iface}/")),
    };
    fit(plain, "mv-", &seed)
}

fn fit(plain: String, prefix: &str, seed: &str) -> IfName {
    let name = if plain.len() <= IFNAME_MAX {
        plain
    } else {
        format!("{prefix}{}", crate::marks::sha256_hex(seed.as_bytes(), 6))
    };
    // Both parts are valid interface-name characters (ids and names are checked first).
    IfName::new(&name).expect("derived interface name is valid")
}

/// The name this interface occupies in the host netns (or on the OVS switch): the veth
/// host end, or the OVS port.
pub fn host_name(i: &Interface) -> Option<&IfName> {
    match &i.kind {
        InterfaceKind::Veth(h) => Some(&h.name),
        InterfaceKind::Ovs(p) => Some(p.port_name(&i.name)),
        InterfaceKind::Existing => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ContainerId {
        ContainerId::new(s).unwrap()
    }
    fn ifn(s: &str) -> IfName {
        IfName::new(s).unwrap()
    }

    #[test]
    fn short_names_are_readable() {
        assert_eq!(veth_host(&id("web2"), &ifn("wan")).as_str(), "np-web2-wan");
        assert_eq!(macvlan(&ifn("dmz"), Some(12)).as_str(), "mv-dmz-12");
        assert_eq!(macvlan(&ifn("dmz"), None).as_str(), "mv-dmz");
    }

    #[test]
    fn long_names_are_hashed_deterministically() {
        let n = veth_host(&id("router1"), &ifn("wan"));
        assert_eq!(n.as_str(), "np-router1-wan");
        let long = veth_host(&id("database-prod"), &ifn("backend"));
        assert_eq!(long.as_str().len(), 15);
        assert!(long.as_str().starts_with("np-"));
        assert_eq!(long.as_str(), "np-5304e7361f78");
        assert_eq!(long, veth_host(&id("database-prod"), &ifn("backend")));
        assert_ne!(long, veth_host(&id("database-prod"), &ifn("backend2")));
        // SHA-256("database-prod/backend"), first 6 bytes: documented in properties.md.
        let m = macvlan(&ifn("longinterface"), Some(200));
        assert_eq!(m.as_str().len(), 15);
    }
}
