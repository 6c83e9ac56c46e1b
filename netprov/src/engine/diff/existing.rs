//! An "existing link" interface moves a host link into the container; it must be free.
//!
//! Moving a link takes it away from whatever uses it in the host: a veth host end of
//! another container (that container loses its network), a bridge or OVS port (the
//! switch loses the port), an OVS internal device (ovs-vswitchd loses its device and
//! recreates it). netprov refuses — before any change, naming the owner — a link that
//!
//! * netprov owns (its group or a `netprov:` alias): netprov's for some container;
//! * has a controller (`IFLA_MASTER`): a port of a bridge, bond, VRF or of the OVS
//!   datapath (every port of a kernel-datapath OVS bridge has `ovs-system` as master);
//! * is an OVS device (link kind `openvswitch`: an internal port or the datapath), or
//!   has an `Interface` row in OVSDB (with the userspace datapath an internal port is a
//!   tap without master: only OVSDB knows it);
//! * is a Linux bridge (the kernel refuses to move one anyway: NETIF_F_NETNS_LOCAL).

use std::collections::BTreeMap;

use crate::engine::observe::{NsState, Observed};
use crate::error::OpError;
use crate::kernel::link::{Kind, LinkState};
use crate::marks::{parse_alias, NETPROV_GROUP};
use crate::model::{Desired, InterfaceKind};

/// The existing-link interfaces of `d` that are still in the host netns (the ones a
/// plan would move in), by name.
pub fn in_host(d: &Desired, o: &Observed) -> Vec<String> {
    d.interfaces
        .iter()
        .filter(|i| matches!(i.kind, InterfaceKind::Existing))
        .map(|i| i.name.to_string())
        .filter(|n| !o.container.links.contains_key(n) && o.host.links.contains_key(n))
        .collect()
}

/// `Ok` when `l` (a host link about to be moved into netns `id`) belongs to nobody
/// else; `host` holds the observed host links (its controller among them), `ovsdb` the
/// OVSDB Interface rows of such names (name → type).
pub fn check_free(
    l: &LinkState,
    host: &NsState,
    ovsdb: &BTreeMap<String, String>,
    id: &str,
) -> Result<(), OpError> {
    let owner = owner(l, host).or_else(|| {
        ovsdb.get(&l.name).map(|t| match t.as_str() {
            "" => "a port of Open vSwitch (an Interface row in OVSDB)".to_owned(),
            t => format!("a port of Open vSwitch (an OVSDB Interface of type {t})"),
        })
    });
    match owner {
        None => Ok(()),
        Some(owner) => Err(OpError::new(
            format!("move existing link {} into netns {id}", l.name),
            format!("{} is {owner}; refusing to take it away (an existing-link interface must name a free host link)", l.name),
        )),
    }
}

/// Who `l` belongs to, in words; `None` when free.
fn owner(l: &LinkState, host: &NsState) -> Option<String> {
    if let Some((c, ifname)) = l.alias.as_deref().and_then(parse_alias) {
        return Some(match ifname {
            Some(ifname) => {
                format!("netprov's veth host end of container {c} (its interface {ifname})")
            }
            None => format!("netprov's link of container {c}"),
        });
    }
    if l.group == NETPROV_GROUP {
        return Some(format!(
            "a link netprov created (group {NETPROV_GROUP:#x}) whose owner mark was never completed"
        ));
    }
    if let Some(c) = l.controller {
        let ctl = host.links.values().find(|x| x.index == c);
        return Some(match ctl {
            Some(x) if x.kind == Kind::Other("openvswitch".into()) => {
                format!(
                    "a port of Open vSwitch (its master is the OVS datapath {})",
                    x.name
                )
            }
            Some(x) if x.kind == Kind::Bridge => format!("a port of bridge {}", x.name),
            Some(x) => format!("a port of {} (its master)", x.name),
            None => format!("a port of the link with ifindex {c} (its master)"),
        });
    }
    match &l.kind {
        Kind::Other(k) if k == "openvswitch" => {
            Some("an Open vSwitch device (an OVS internal port or the OVS datapath)".into())
        }
        Kind::Bridge => Some("a Linux bridge (its ports would stay behind)".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::diff::testkit::link;

    fn none() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn host(links: &[LinkState]) -> NsState {
        let mut st = NsState::default();
        for l in links {
            st.links.insert(l.name.clone(), l.clone());
        }
        st
    }

    #[test]
    fn free_links_pass() {
        let mut l = link("eth1", 5);
        l.kind = Kind::Other("dummy".into());
        assert!(check_free(&l, &host(&[l.clone()]), &BTreeMap::new(), "web").is_ok());
    }

    #[test]
    fn owned_links_name_their_owner() {
        let mut ve = link("ve-web-wan", 7);
        ve.alias = Some("netprov:web:wan".into());
        ve.group = NETPROV_GROUP;
        let e = check_free(&ve, &host(&[]), &none(), "db")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("move existing link ve-web-wan into netns db")
                && e.contains("veth host end of container web (its interface wan)"),
            "{e}"
        );
        let mut half = link("x", 8);
        half.group = NETPROV_GROUP;
        assert!(check_free(&half, &host(&[]), &none(), "db").is_err());

        let mut br = link("br-lan", 3);
        br.kind = Kind::Bridge;
        let mut port = link("eth2", 9);
        port.controller = Some(3);
        let e = check_free(&port, &host(&[br.clone(), port.clone()]), &none(), "db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a port of bridge br-lan"), "{e}");
        assert!(check_free(&br, &host(&[]), &none(), "db").is_err());

        let mut ovs = link("ovs-int", 10);
        ovs.kind = Kind::Other("openvswitch".into());
        let e = check_free(&ovs, &host(&[]), &none(), "db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Open vSwitch device"), "{e}");
        // A userspace-datapath internal port: a tap only OVSDB knows.
        let mut tap = link("lan", 11);
        tap.kind = Kind::Other("tun".into());
        assert!(check_free(&tap, &host(&[]), &none(), "db").is_ok());
        let rows = BTreeMap::from([("lan".to_owned(), "internal".to_owned())]);
        let e = check_free(&tap, &host(&[]), &rows, "db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("OVSDB Interface of type internal"), "{e}");
    }
}
