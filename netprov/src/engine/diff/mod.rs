//! The diff: compare a `Desired` with what was observed and produce the [`Plan`].
//!
//! Decisions made here: a link with a wanted name that is not netprov's stops the plan
//! with an error (never taken over); links netprov owns get undesired addresses and
//! routes removed; `Existing` links only get things added; a half of a veth pair whose
//! other half is gone is deleted and the pair recreated.

mod address;
pub(crate) mod existing;
#[cfg(test)]
mod golden_tests;
mod link;
mod macvlan;
mod moved;
mod netns;
mod nft;
mod ovs;
#[cfg(test)]
mod renew_tests;
mod route;
mod sysctl;
#[cfg(test)]
mod testkit;
mod veth;

use std::collections::BTreeSet;

use crate::engine::observe::Observed;
use crate::engine::plan::{At, MoveKind, OvnStep, OvsStep, Plan, Step};
use crate::error::OpError;
use crate::kernel::link::LinkState;
use crate::kernel::route::RouteSpec;
use crate::model::{ContainerId, Desired, InterfaceKind, OvsStyle};
use crate::nft::host::{HostExpected, HostSpec};
use crate::ovsdb::OvsChange;

fn foreign(what: &str, l: &LinkState, at: &At, id: &str) -> OpError {
    OpError::new(
        what.to_owned(),
        format!(
            "a link named {} already exists in {at} and is not netprov's for {id} (alias {}); refusing to take it over",
            l.name,
            l.alias.as_deref().map(|a| format!("{a:?}")).unwrap_or_else(|| "none".into())
        ),
    )
}

struct Differ<'a> {
    id: String,
    cid: &'a ContainerId,
    o: &'a Observed,
    steps: Vec<Step>,
    /// Desired netprov routes per side.
    host_routes: Vec<RouteSpec>,
    container_routes: Vec<RouteSpec>,
    /// Links (host side?, name) this plan deletes, re-creates, moves in or out: every
    /// route observed through them vanishes with the old link, so routes are planned
    /// from the state after those steps, not from the observed one.
    renewed: BTreeSet<(bool, String)>,
    /// Links whose every IPv4 address this plan deletes: the kernel then flushes all
    /// IPv4 routes through the link (fib_disable_ip), including ones the plan keeps.
    v4_flushed: BTreeSet<(bool, String)>,
    /// Interfaces whose OVS internal port the OVS part of this plan creates or
    /// re-creates: ovs-vswitchd makes a new device in the host netns (the old one, if
    /// in the container, goes with the old port), which is moved in.
    ovs_new_device: BTreeSet<String>,
    /// OVS ports this plan removes (their host ends leave the switch with them).
    ovs_removed: BTreeSet<String>,
    /// Veth host ends this plan adds as OVS ports: one still in a Linux bridge (a plain
    /// veth on a bridge before) leaves it first. The kernel datapath would refuse a
    /// device with a master; the userspace one takes it and the device stays in both.
    ovs_new_veth_port: BTreeSet<String>,
}

impl Differ<'_> {
    fn ns(&self) -> At {
        At::Netns(self.cid.clone())
    }

    fn renew(&mut self, at: &At, name: &str) {
        self.renewed.insert((*at == At::Host, name.to_owned()));
    }
}

/// Computes the plan that makes the kernel (`o`) match `d`.
pub fn diff(d: &Desired, o: &Observed) -> Result<Plan, OpError> {
    diff_with(d, o, &HostExpected::new(HostSpec::from_desired(d)))
}

/// [`diff`] with the host table `d` generates already at hand (the engine builds it
/// once per apply and observes with it too).
pub fn diff_with(d: &Desired, o: &Observed, expected: &HostExpected) -> Result<Plan, OpError> {
    let mut df = Differ::new(d, o);
    let ovs_steps = ovs::steps(d, o)?;
    df.note_ovs(&ovs_steps);
    df.steps.extend(netns::steps(d, o)?);
    df.unwanted(d);
    df.interfaces(d)?;
    df.plan_routes(d);
    df.steps.extend(sysctl::steps(d, o));
    let mut steps = df.steps;
    steps.extend(ovs_steps);
    steps.extend(ovn_steps(d, o)?);
    ovs::skip_deletes_done_by_port_removal(&mut steps, o);
    steps.extend(nft::steps(d, o, expected));
    // Stable: within a phase, steps keep the order they were found in (deletions of
    // addresses before additions, links before the macvlans on top of them).
    steps.sort_by_key(|s| s.phase());
    Ok(Plan {
        id: d.id.clone(),
        steps,
    })
}

impl<'a> Differ<'a> {
    fn new(d: &'a Desired, o: &'a Observed) -> Self {
        Differ {
            id: d.id.to_string(),
            cid: &d.id,
            o,
            steps: Vec::new(),
            host_routes: Vec::new(),
            container_routes: Vec::new(),
            renewed: BTreeSet::new(),
            v4_flushed: BTreeSet::new(),
            ovs_new_device: BTreeSet::new(),
            ovs_removed: BTreeSet::new(),
            ovs_new_veth_port: BTreeSet::new(),
        }
    }

    /// What the OVS part of the plan does to devices, for the link steps.
    fn note_ovs(&mut self, ovs_steps: &[Step]) {
        for s in ovs_steps {
            if let Step::Ovs(OvsStep::OvsPort {
                change: OvsChange::Create { spec } | OvsChange::Recreate { spec, .. },
            }) = s
            {
                if spec.internal {
                    self.ovs_new_device.insert(spec.iface.to_string());
                } else {
                    self.ovs_new_veth_port.insert(spec.port.to_string());
                }
            }
            if let Step::Ovs(OvsStep::OvsPort {
                change: OvsChange::Remove { port, .. },
            }) = s
            {
                self.ovs_removed.insert(port.clone());
            }
        }
    }

    /// Each interface's links, in the order of the props.
    fn interfaces(&mut self, d: &Desired) -> Result<(), OpError> {
        for i in &d.interfaces {
            match &i.kind {
                InterfaceKind::Veth(h) => self.veth(i, &h.name, &h.addrs, h.bridge.as_ref())?,
                InterfaceKind::Ovs(p) => match &p.style {
                    OvsStyle::Veth { host } => self.veth(i, host, &[], None)?,
                    OvsStyle::Internal => self.moved(i, MoveKind::OvsInternal)?,
                },
                InterfaceKind::Existing => self.moved(i, MoveKind::Existing)?,
            }
            self.macvlan(i)?;
        }
        Ok(())
    }
}

/// The OVN logical port steps, when the container has OVN ports.
fn ovn_steps(d: &Desired, o: &Observed) -> Result<Vec<Step>, OpError> {
    match &o.ovn {
        Some(ovn) => Ok(crate::ovn::plan(d, ovn)?
            .into_iter()
            .map(|change| Step::Ovn(OvnStep::OvnPort { change }))
            .collect()),
        None if crate::ovn::wanted(d) => Err(OpError::new(
            format!("plan OVN ports of {}", d.id),
            "the OVN Northbound database was not observed",
        )),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::{LinkStep, Phase};
    use crate::model::Interface;

    fn desired(ifaces: Vec<Interface>) -> Desired {
        use crate::model::*;
        Desired {
            routes: vec![Route {
                dest: "0.0.0.0/0".parse().unwrap(),
                gateway: Some("10.0.0.1".parse().unwrap()),
                dev: None,
                metric: None,
            }],
            sysctls: vec![Sysctl {
                key: "net.ipv4.ip_forward".into(),
                path: "net/ipv4/ip_forward".into(),
                value: "1".into(),
            }],
            ..testkit::desired(ifaces)
        }
    }

    #[test]
    fn fresh_container_plan_is_ordered_by_phase_with_ovs_move_after_its_slot() {
        use crate::model::*;
        let ovs = Interface {
            name: IfName::new("lan").unwrap(),
            kind: InterfaceKind::Ovs(OvsPort {
                bridge: IfName::new("br0").unwrap(),
                vlan: VlanTag::new(356).unwrap(),
                trunks: vec![],
                vlan_mode: None,
                style: OvsStyle::Internal,
                external_ids: Default::default(),
                ovn: None,
            }),
            addrs: vec!["10.0.0.2/24".parse().unwrap()],
            mtu: None,
            mac: None,
            macvlan: Some(Macvlan {
                name: IfName::new("mv-lan-12").unwrap(),
                addrs: vec!["10.0.0.10/24".parse().unwrap()],
                vrid: Some(12),
                mac: Some(MacAddr([0, 0, 0x5e, 0, 1, 12])),
            }),
        };
        let veth = testkit::veth("wan", "ve-web-wan", "70.0.0.1/31", "70.0.0.2/31");
        let p = diff(&desired(vec![ovs, veth]), &Observed::default()).unwrap();
        let phases: Vec<Phase> = p.steps.iter().map(|s| s.phase()).collect();
        let mut sorted = phases.clone();
        sorted.sort();
        assert_eq!(phases, sorted);
        let text = p.to_string();
        assert!(
            text.contains("create netns web at /run/netns/web"),
            "{text}"
        );
        assert!(
            text.contains("move OVS internal port lan into netns web"),
            "{text}"
        );
        assert!(
            text.contains(
                "create macvlan mv-lan-12 (bridge mode) on lan in netns web mac 00:00:5e:00:01:0c"
            ),
            "{text}"
        );
        assert!(
            text.contains("replace route 70.0.0.1/32 dev wan in netns web"),
            "{text}"
        );
        assert!(
            text.contains("replace route 70.0.0.2/32 dev ve-web-wan in host netns"),
            "{text}"
        );
        assert!(
            text.contains("set sysctl net.ipv4.ip_forward=1 in netns web"),
            "{text}"
        );
        let mv = p
            .steps
            .iter()
            .position(|s| matches!(s, Step::Link(LinkStep::MoveLinkIn { .. })))
            .unwrap();
        let mac = p
            .steps
            .iter()
            .position(|s| matches!(s, Step::Link(LinkStep::CreateMacvlan { .. })))
            .unwrap();
        assert!(mv < mac);
        assert!(p.steps[mv].phase() > Phase::OvsPorts);
        // Serialises for --json.
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["steps"][0]["op"], "create_netns");
    }
}
