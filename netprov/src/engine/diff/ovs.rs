//! The OVS part of the diff: the container's OVS ports (OVSDB rows), with what the
//! netlink observation knows about their devices.
//!
//! OVSDB cannot tell that an internal port's device vanished once it was moved into a
//! container (ovs-vswitchd no longer sees it), so the engine decides from the links it
//! observed: a port whose device is neither in the container nor in the host netns is
//! re-created; so is a veth-style port whose host end is gone.

use crate::engine::observe::Observed;
use crate::engine::plan::{At, LinkStep, OvsStep, Step};
use crate::error::OpError;
use crate::model::Desired;
use crate::ovsdb::port::IFACE_KEY;
use crate::ovsdb::{self, OvsChange};

pub fn steps(d: &Desired, o: &Observed) -> Result<Vec<Step>, OpError> {
    let Some(rows) = &o.ovs else {
        return Ok(Vec::new());
    };
    let specs = crate::ovn::port_specs(d, o.ovn.as_ref());
    let mut rows = rows.clone();
    for s in &specs {
        let in_host = o.host.links.contains_key(s.port.as_str());
        if s.internal {
            let in_container = o.container.links.contains_key(s.iface.as_str());
            if !in_host && !in_container {
                rows.mark_device_missing(
                    s.port.as_str(),
                    format!(
                        "its device {} is in neither the container nor the host",
                        s.iface
                    ),
                );
            }
        } else {
            // The veth pair is (re)created by this plan unless it is whole; ovs-vswitchd
            // keeps its packet socket on a deleted host end, so a new one needs a new port.
            let whole = match (
                o.host.links.get(s.port.as_str()),
                o.container.links.get(s.iface.as_str()),
            ) {
                (Some(h), Some(c)) => c.link == Some(h.index),
                _ => false,
            };
            if !whole {
                let why = if in_host {
                    "is being re-created"
                } else {
                    "is gone"
                };
                rows.mark_device_missing(
                    s.port.as_str(),
                    format!("its veth host end {} {why}", s.port),
                );
            }
        }
    }
    Ok(ovsdb::plan(&d.id, &specs, &rows)?
        .into_iter()
        .map(|change| Step::Ovs(OvsStep::OvsPort { change }))
        .collect())
}

/// Removing an internal OVS port deletes its device wherever it is — also inside the
/// container — so a plan that removes the port (its style changed to veth, or the
/// interface is gone) must not delete that device itself: with the kernel datapath it
/// could not (an `openvswitch` device refuses RTM_DELLINK), and after the removal
/// (which runs first, see `Phase::OvsRemovals`) it would no longer exist. A device of
/// the port's name still in the host netns is the live one ovs-vswitchd re-made after a
/// restart; the container's copy is then dead and not deleted by OVS: keep its delete.
pub fn skip_deletes_done_by_port_removal(steps: &mut Vec<Step>, o: &Observed) {
    let Some(rows) = &o.ovs else { return };
    let gone: Vec<String> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Ovs(OvsStep::OvsPort {
                change: OvsChange::Remove { port, .. },
            }) => rows.port(port),
            _ => None,
        })
        .filter(|r| r.iface.as_ref().is_some_and(|i| i.kind == "internal"))
        .filter(|r| !o.host.links.contains_key(r.name.as_str()))
        .filter_map(|r| r.external_ids.get(IFACE_KEY).cloned())
        .collect();
    steps.retain(
        |s| !matches!(s, Step::Link(LinkStep::DeleteLink { at: At::Netns(_), link }) if gone.iter().any(|g| g == link.as_str())),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::engine::diff::testkit;
    use crate::kernel::link::{Kind, LinkState};
    use crate::model::*;
    use crate::ovsdb::port::{BridgeRow, IfaceRow, PortRow, IFACE_KEY, OWNER_KEY};
    use crate::ovsdb::OvsChange;

    fn desired() -> Desired {
        testkit::desired(vec![Interface {
            name: IfName::new("lan").unwrap(),
            kind: InterfaceKind::Ovs(OvsPort {
                bridge: IfName::new("br0").unwrap(),
                vlan: VlanTag::new(10).unwrap(),
                trunks: vec![],
                vlan_mode: None,
                style: OvsStyle::Internal,
                external_ids: Default::default(),
                ovn: None,
            }),
            addrs: vec![],
            mtu: None,
            mac: None,
            macvlan: None,
        }])
    }

    /// OVSDB holds a healthy-looking owned port `lan` with VLAN 10.
    fn rows() -> crate::ovsdb::Observed {
        let ids = BTreeMap::from([
            (OWNER_KEY.to_owned(), "web".to_owned()),
            (IFACE_KEY.to_owned(), "lan".to_owned()),
        ]);
        let port = PortRow {
            uuid: "p".into(),
            name: "lan".into(),
            tag: Some(10),
            trunks: vec![],
            vlan_mode: None,
            external_ids: ids.clone(),
            interfaces: vec!["i".into()],
            iface: Some(IfaceRow {
                uuid: "i".into(),
                name: "lan".into(),
                kind: "internal".into(),
                ofport: Some(1),
                error: None,
                ifindex: Some(0),
                external_ids: ids,
            }),
            device_missing: None,
        };
        crate::ovsdb::Observed {
            owner: ContainerId::new("web").unwrap(),
            bridges: BTreeMap::from([(
                "br0".to_owned(),
                BridgeRow {
                    uuid: "b".into(),
                    name: "br0".into(),
                    ports: BTreeSet::from(["p".to_owned()]),
                },
            )]),
            ports: BTreeMap::from([("lan".to_owned(), port)]),
            stray_interfaces: BTreeSet::new(),
        }
    }

    fn link(name: &str) -> LinkState {
        LinkState {
            alias: Some("netprov:web".into()),
            kind: Kind::Other("tun".into()),
            ..testkit::link(name, 7)
        }
    }

    #[test]
    fn no_ovs_interfaces_no_ovsdb_no_steps() {
        let o = Observed::default();
        assert!(steps(&desired(), &o).unwrap().is_empty());
    }

    #[test]
    fn device_in_the_container_is_in_sync() {
        let mut o = Observed {
            ovs: Some(rows()),
            ..Default::default()
        };
        o.container.links.insert("lan".into(), link("lan"));
        assert!(steps(&desired(), &o).unwrap().is_empty());
    }

    #[test]
    fn vanished_device_recreates_the_port() {
        let o = Observed {
            ovs: Some(rows()),
            ..Default::default()
        };
        let s = steps(&desired(), &o).unwrap();
        assert!(
            matches!(
                &s[..],
                [Step::Ovs(OvsStep::OvsPort {
                    change: OvsChange::Recreate { .. }
                })]
            ),
            "{s:?}"
        );
        assert_eq!(
            s[0].to_string(),
            "re-create OVS port lan on bridge br0: its device lan is in neither the container nor the host"
        );
        assert_eq!(s[0].phase(), crate::engine::plan::Phase::OvsPorts);
    }

    #[test]
    fn retag_is_an_in_place_update_and_reads_as_drift() {
        let mut r = rows();
        r.ports.get_mut("lan").unwrap().tag = Some(20);
        let mut o = Observed {
            ovs: Some(r),
            ..Default::default()
        };
        o.container.links.insert("lan".into(), link("lan"));
        let s = steps(&desired(), &o).unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(
            s[0].as_drift().to_string(),
            "OVS port lan: VLAN is 20, want 10"
        );
        let j = serde_json::to_value(&s[0]).unwrap();
        assert_eq!(j["op"], "ovs_port");
        assert_eq!(j["change"]["action"], "set_vlan");
    }

    fn veth_end(name: &str, index: u32, peer: u32) -> LinkState {
        LinkState {
            index,
            kind: Kind::Veth,
            link: Some(peer),
            ..link(name)
        }
    }

    fn with_style(style: OvsStyle) -> Desired {
        let mut d = desired();
        if let InterfaceKind::Ovs(p) = &mut d.interfaces[0].kind {
            p.style = style;
        }
        d
    }

    /// An internal port `lan` with its device in the container, and props that now
    /// want a veth-style port.
    fn internal_port_wanted_as_veth() -> (Desired, Observed) {
        let d = with_style(OvsStyle::Veth {
            host: IfName::new("ve-web-lan").unwrap(),
        });
        let mut o = Observed {
            ovs: Some(rows()),
            ..testkit::owned_netns(&d, link("lo"))
        };
        o.container.links.insert("lan".into(), link("lan"));
        (d, o)
    }

    /// A container made with the old default (an internal port `lan`) and props that
    /// now mean a veth-style port: one plan removes the port first (which deletes the
    /// device in the container; the plan does not delete it itself), then makes the
    /// veth and the new port on its host end.
    #[test]
    fn internal_to_veth_removes_the_port_before_the_veth_takes_the_name() {
        let (d, o) = internal_port_wanted_as_veth();
        let p = crate::engine::diff::diff(&d, &o).unwrap();
        let text: Vec<String> = p.steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            p.steps[0].phase(),
            crate::engine::plan::Phase::OvsRemovals,
            "{text:#?}"
        );
        assert_eq!(text[0], "remove OVS port lan");
        assert!(text[1].starts_with("create veth ve-web-lan"), "{text:#?}");
        assert!(
            !p.steps
                .iter()
                .any(|s| matches!(s, Step::Link(LinkStep::DeleteLink { .. }))),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|t| t == "add OVS port ve-web-lan to bridge br0 (veth host end, VLAN 10)"),
            "{text:#?}"
        );
    }

    /// The same with the dead device a vswitchd restart leaves (a new tap of the port's
    /// name in the host): OVS deletes the host's, the plan deletes the container's.
    #[test]
    fn internal_to_veth_deletes_a_dead_device_itself() {
        let (d, mut o) = internal_port_wanted_as_veth();
        o.host.links.insert("lan".into(), link("lan"));
        let p = crate::engine::diff::diff(&d, &o).unwrap();
        assert!(
            p.steps
                .iter()
                .any(|s| matches!(s, Step::Link(LinkStep::DeleteLink { at: At::Netns(_), link }) if link.as_str() == "lan")),
            "{p}"
        );
    }

    /// Back: the veth-style port's container end is deleted (taking its host end with
    /// it), the internal port created and moved in, in one plan.
    #[test]
    fn veth_to_internal_deletes_the_pair_and_moves_the_new_device_in() {
        let d = desired();
        let mut r = rows();
        let mut port = r.ports.remove("lan").unwrap();
        port.name = "ve-web-lan".into();
        let iface = port.iface.as_mut().unwrap();
        iface.name = "ve-web-lan".into();
        iface.kind = String::new();
        iface.ifindex = Some(8);
        r.ports.insert("ve-web-lan".into(), port);
        let mut o = Observed {
            ovs: Some(r),
            ..testkit::owned_netns(&d, link("lo"))
        };
        o.container
            .links
            .insert("lan".into(), veth_end("lan", 3, 8));
        let p = crate::engine::diff::diff(&d, &o).unwrap();
        let text: Vec<String> = p.steps.iter().map(ToString::to_string).collect();
        assert_eq!(text[0], "remove OVS port ve-web-lan", "{text:#?}");
        let pos = |f: &dyn Fn(&Step) -> bool| p.steps.iter().position(f).unwrap();
        let del = pos(
            &|s| matches!(s, Step::Link(LinkStep::DeleteLink { at: At::Netns(_), link }) if link.as_str() == "lan"),
        );
        let add = pos(&|s| {
            matches!(
                s,
                Step::Ovs(OvsStep::OvsPort {
                    change: OvsChange::Create { .. }
                })
            )
        });
        let mv = pos(&|s| matches!(s, Step::Link(LinkStep::MoveLinkIn { .. })));
        assert!(del < add && add < mv, "{text:#?}");
        assert!(
            !p.steps
                .iter()
                .any(|s| matches!(s, Step::Link(LinkStep::DeleteDeadOvsDevice { .. }))),
            "{text:#?}"
        );
    }
}
