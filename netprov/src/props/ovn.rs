//! `ovs.ovn` → [`OvnPort`]: the logical switch port of an OVS interface (docs/ovn.md).

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use sha2::{Digest, Sha256};

use super::errors::Errors;
use super::raw::{self, given};
use crate::model::{ContainerId, IfName, MacAddr, OvnPort};

/// `external_ids` keys of the OVS Interface that netprov writes for OVN itself.
pub const OVN_KEYS: [&str; 3] = ["iface-id", "iface-id-ver", "attached_mac"];

/// `<id>:<iface>`: container ids and interface names cannot contain `:`.
pub fn port_name(id: &ContainerId, iface: &IfName) -> String {
    format!("{id}:{iface}")
}

/// A MAC for an OVN interface without `mac`: `0a` (locally administered, unicast) and
/// five bytes of SHA-256(`ovn/<id>/<iface>`), so re-applies and other hosts agree.
pub fn derived_mac(id: &ContainerId, iface: &IfName) -> MacAddr {
    let d = Sha256::digest(format!("ovn/{id}/{iface}").as_bytes());
    MacAddr([0x0a, d[0], d[1], d[2], d[3], d[4]])
}

/// `None` when absent (`switch` empty) or invalid (errors recorded in `e`).
#[allow(clippy::too_many_arguments)]
pub fn port(
    e: &mut Errors,
    at: &str,
    raw: &raw::Ovn,
    id: &ContainerId,
    iface: &IfName,
    mac: Option<MacAddr>,
    addrs: &[IpNetwork],
    external_ids: &BTreeMap<String, String>,
) -> Option<OvnPort> {
    let f = |field: &str| format!("{at}.{field}");
    let Some(switch) = given(&raw.switch) else {
        let extra =
            raw.addresses.as_ref().is_some_and(|a| !a.is_empty()) || raw.port_security.is_some();
        if extra {
            e.err(
                f("switch"),
                "ovs.ovn has addresses or port_security but no switch; name the logical switch or remove ovs.ovn",
            );
        }
        return None;
    };
    let mut ok = true;
    for k in OVN_KEYS {
        if external_ids.contains_key(k) {
            e.err(
                format!("{}.external_ids.{k}", at.trim_end_matches(".ovn")),
                format!("{k:?} is written by netprov for ovs.ovn; remove it from external_ids"),
            );
            ok = false;
        }
    }
    let mac = mac.unwrap_or_else(|| derived_mac(id, iface));
    let (addresses, addresses_ok) = addresses(e, at, raw, mac, addrs);
    let (port_security, port_security_ok) = port_security(e, at, raw, &addresses);
    ok &= addresses_ok && port_security_ok;
    ok.then(|| OvnPort {
        switch: switch.to_owned(),
        name: port_name(id, iface),
        mac,
        addresses,
        port_security,
    })
}

/// `ovs.ovn.addresses`, or `"MAC IP..."` from the interface when none are given;
/// sorted, without repeats. `false` when an entry is invalid (recorded).
fn addresses(
    e: &mut Errors,
    at: &str,
    raw: &raw::Ovn,
    mac: MacAddr,
    addrs: &[IpNetwork],
) -> (Vec<String>, bool) {
    let mut ok = true;
    let mut addresses: Vec<String> = Vec::new();
    for (i, a) in raw.addresses.iter().flatten().enumerate() {
        ok &= entry(e, format!("{at}.addresses[{i}]"), a);
        addresses.push(a.clone());
    }
    if addresses.is_empty() {
        let ips: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        addresses.push(
            std::iter::once(mac.to_string())
                .chain(ips)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    addresses.sort();
    addresses.dedup();
    (addresses, ok)
}

/// `ovs.ovn.port_security`: by default (or `true`) the addresses that start with a
/// MAC; sorted, without repeats. `false` when an entry is invalid (recorded).
fn port_security(
    e: &mut Errors,
    at: &str,
    raw: &raw::Ovn,
    addresses: &[String],
) -> (Vec<String>, bool) {
    let mut ok = true;
    let mut port_security: Vec<String> = match &raw.port_security {
        None | Some(raw::PortSecurity::Enabled(true)) => addresses
            .iter()
            // "unknown", "dynamic" and "router" are not addresses to enforce.
            .filter(|a| super::addr::mac(a.split(' ').next().unwrap_or("")).is_ok())
            .cloned()
            .collect(),
        Some(raw::PortSecurity::Enabled(false)) => Vec::new(),
        Some(raw::PortSecurity::Entries(v)) => {
            for (i, a) in v.iter().enumerate() {
                ok &= entry(e, format!("{at}.port_security[{i}]"), a);
            }
            v.clone()
        }
    };
    port_security.sort();
    port_security.dedup();
    (port_security, ok)
}

/// One OVN address entry: non-empty, no surrounding spaces, no newline, NUL or quote.
fn entry(e: &mut Errors, field: String, s: &str) -> bool {
    let bad = s.trim().is_empty() || s.trim() != s || s.contains(['\n', '\0', '"']);
    if bad {
        e.err(
            field,
            format!("{s:?} is not an OVN address entry: write \"MAC [IP...]\" without surrounding spaces"),
        );
    }
    !bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_mac_is_stable_local_unicast() {
        let id = ContainerId::new("web").unwrap();
        let a = derived_mac(&id, &IfName::new("lan").unwrap());
        assert_eq!(a, derived_mac(&id, &IfName::new("lan").unwrap()));
        assert_ne!(a, derived_mac(&id, &IfName::new("lan2").unwrap()));
        assert_eq!(a.0[0] & 0x03, 0x02, "locally administered, unicast");
    }
}
