//! What one container's host rules depend on: its veth host ends with the container's
//! addresses, and its `HostRules`.

use std::net::IpAddr;

use super::{build, HostTable};
use crate::model::{ContainerId, Desired, HostRules, IfName, InterfaceKind};

/// A veth host end and the container's addresses on that link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethLink {
    pub host_if: IfName,
    pub container_addrs: Vec<IpAddr>,
}

/// Everything the host rules of one container depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub id: ContainerId,
    pub rules: HostRules,
    /// Sorted by host interface name.
    pub links: Vec<VethLink>,
}

impl HostSpec {
    pub fn new(id: ContainerId, rules: &HostRules, mut links: Vec<VethLink>) -> Self {
        links.sort_by(|a, b| a.host_if.cmp(&b.host_if));
        for l in &mut links {
            l.container_addrs.sort();
            l.container_addrs.dedup();
        }
        Self {
            id,
            rules: rules.clone(),
            links,
        }
    }

    /// The spec for a validated container: its veth links (host end + container
    /// addresses, including those of a macvlan stacked on the veth, whose traffic
    /// leaves through it) and its `HostRules`.
    ///
    /// Veths whose host end is enslaved to a bridge are left out: on the host their
    /// packets arrive with the bridge as input interface, so per-port anti-spoofing
    /// would need a bridge-family table, which netprov does not generate (yet).
    pub fn from_desired(d: &Desired) -> Self {
        let links = d
            .interfaces
            .iter()
            .filter_map(|i| match &i.kind {
                InterfaceKind::Veth(h) if h.bridge.is_none() => Some(VethLink {
                    host_if: h.name.clone(),
                    container_addrs: i
                        .addrs
                        .iter()
                        .chain(i.macvlan.iter().flat_map(|m| m.addrs.iter()))
                        .map(|a| a.ip())
                        .collect(),
                }),
                _ => None,
            })
            .collect();
        Self::new(d.id.clone(), &d.host_rules, links)
    }

    /// Rejects what the rules cannot express: a forward whose `host_addr` and `to_addr`
    /// are of different IP versions (NAT does not translate between them).
    pub fn check(&self) -> Result<(), String> {
        for f in &self.rules.forwards {
            if let Some(h) = f.host_addr {
                if h.is_ipv4() != f.to_addr.is_ipv4() {
                    return Err(format!(
                        "port forward {h} port {} -> {} port {} mixes IPv4 and IPv6",
                        f.host_port, f.to_addr, f.to_port
                    ));
                }
            }
        }
        Ok(())
    }

    /// Name of the container's host table.
    pub fn table_name(&self) -> String {
        table_name(&self.id)
    }

    /// True when no rule would be generated (then the table should not exist).
    pub fn is_empty(&self) -> bool {
        !self.spoofs() && !self.masquerades() && self.rules.forwards.is_empty()
    }

    /// Anti-spoofing has a host end to guard (chain `spoof`).
    pub(super) fn spoofs(&self) -> bool {
        self.rules.anti_spoof && !self.links.is_empty()
    }

    /// Masquerade has a container address to masquerade (chain `snat`).
    pub(super) fn masquerades(&self) -> bool {
        self.rules.masquerade && self.links.iter().any(|l| !l.container_addrs.is_empty())
    }

    /// The table content this spec generates, canonically (what `check` compares the
    /// kernel's table with).
    pub fn expected(&self) -> HostTable {
        HostTable::from_messages(&build::messages(self))
    }
}

/// A container's host-table spec and the table it generates, built on first use.
///
/// Building the table (libnftnl objects, serialised and parsed back) costs ~0.4 ms, and
/// one apply compares with it twice: the observe (to tell a torn read from drift) and
/// the plan. The engine makes one per apply and hands it to both; its fields are
/// private, so the table always belongs to the spec beside it.
#[derive(Debug)]
pub struct HostExpected {
    spec: HostSpec,
    table: std::sync::OnceLock<HostTable>,
}

impl HostExpected {
    pub fn new(spec: HostSpec) -> Self {
        Self {
            spec,
            table: std::sync::OnceLock::new(),
        }
    }

    pub fn spec(&self) -> &HostSpec {
        &self.spec
    }

    /// What the spec generates (built once).
    pub fn table(&self) -> &HostTable {
        self.table.get_or_init(|| self.spec.expected())
    }
}

/// The container's host table (`netprov-<id>`, [`crate::marks`]).
pub fn table_name(id: &ContainerId) -> String {
    crate::marks::host_table_name(id)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `n` veth host ends `ve-<i>`, each with one IPv4 and one IPv6 container address
    /// (also the benchmark's links).
    pub fn numbered_links(n: usize) -> Vec<VethLink> {
        (0..n)
            .map(|i| VethLink {
                host_if: IfName::new(&format!("ve-{i}")).unwrap(),
                container_addrs: vec![
                    format!("10.{}.{}.2", i / 256, i % 256).parse().unwrap(),
                    format!("fd00::{i:x}").parse().unwrap(),
                ],
            })
            .collect()
    }

    #[test]
    fn expected_content_has_constant_rules_and_one_element_per_address() {
        let links = numbered_links(500);
        let s = HostSpec::new(
            ContainerId::new("big").unwrap(),
            &HostRules {
                anti_spoof: true,
                masquerade: true,
                ..Default::default()
            },
            links,
        );
        let t = s.expected();
        assert_eq!(t.rules["spoof"].len(), 6);
        assert_eq!(t.rules["snat"].len(), 4);
        assert_eq!(t.elems["links"].len(), 500);
        assert_eq!(t.elems["links-v4"].len(), 500);
        assert_eq!(t.elems["links-v6"].len(), 500);
        assert_eq!(t.elems["addrs-v6"].len(), 500);
        assert!(t.elems["links-v6"].contains("\"ve-499\" . fd00::1f3"));
        assert_eq!(t.objects as usize, t.chains.len() + t.sets.len());
        // Observe reads exactly the chains and sets netprov may generate.
        assert!(t.chains.keys().all(|c| build::CHAINS.contains(&c.as_str())));
        assert!(t.sets.keys().all(|s| build::SETS.contains(&s.as_str())));
        assert_eq!(t.sets.len(), build::SETS.len());
        // Far below the default 208 KiB socket buffer, let alone a forced larger one.
        let mut msgs = build::delete_table("netprov-big");
        msgs.extend(build::messages(&s));
        let len = build::batch(&msgs).len();
        eprintln!("500 links (v4+v6, anti-spoofing, masquerade): batch {len} bytes");
        assert!(len < 200 * 1024);
    }

    #[test]
    fn spec_from_desired_takes_unbridged_veths_with_macvlan_addrs() {
        use crate::model::{Interface, Macvlan, NetnsSpec, VethHost};
        let iface = |name: &str, host: &str, bridge: Option<&str>, addr: &str| Interface {
            name: IfName::new(name).unwrap(),
            kind: InterfaceKind::Veth(VethHost {
                name: IfName::new(host).unwrap(),
                addrs: vec!["10.0.0.1/24".parse().unwrap()],
                bridge: bridge.map(|b| IfName::new(b).unwrap()),
            }),
            addrs: vec![addr.parse().unwrap()],
            mtu: None,
            mac: None,
            macvlan: None,
        };
        let mut wan = iface("wan", "ve-c-wan", None, "10.0.0.2/24");
        wan.macvlan = Some(Macvlan {
            name: IfName::new("mv-wan").unwrap(),
            addrs: vec!["10.0.0.10/24".parse().unwrap()],
            vrid: None,
            mac: None,
        });
        let d = Desired {
            id: ContainerId::new("c").unwrap(),
            netns: NetnsSpec::Owned {
                path: "/run/netns/c".into(),
            },
            interfaces: vec![iface("lan", "ve-c-lan", Some("br0"), "10.1.0.2/24"), wan],
            routes: vec![],
            sysctls: vec![],
            nft: None,
            host_rules: HostRules {
                anti_spoof: true,
                ..Default::default()
            },
        };
        let s = HostSpec::from_desired(&d);
        assert_eq!(s.links.len(), 1);
        assert_eq!(s.links[0].host_if.as_str(), "ve-c-wan");
        let want: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "10.0.0.10".parse().unwrap()];
        assert_eq!(s.links[0].container_addrs, want);
    }

    #[test]
    fn table_name_carries_the_id() {
        assert_eq!(table_name(&ContainerId::new("a.b").unwrap()), "netprov-a.b");
    }
}
