//! [`Desired`] → [`raw::Props`]: the properties file that validates back to the same
//! model. Derived values are written out explicitly (host-end names, MACs, routes as
//! `routes` entries) so the result does not depend on the rules that derived them.

use std::collections::BTreeMap;

use super::raw;
use crate::model::{Desired, Interface, InterfaceKind, L4Proto, NetnsSpec, OvsStyle};

pub fn emit(d: &Desired) -> raw::Props {
    let interfaces = d
        .interfaces
        .iter()
        .map(|i| (i.name.to_string(), interface(i)))
        .collect();
    let routes = d
        .routes
        .iter()
        .map(|r| raw::Route {
            to: r.dest.to_string(),
            via: r.gateway.map(|g| g.to_string()),
            dev: r.dev.as_ref().map(ToString::to_string),
            metric: r.metric,
        })
        .collect();
    let forwards = d
        .host_rules
        .forwards
        .iter()
        .map(|f| raw::Forward {
            proto: match f.proto {
                L4Proto::Tcp => raw::Proto::Tcp,
                L4Proto::Udp => raw::Proto::Udp,
            },
            host_port: f.host_port.into(),
            port: f.to_port.into(),
            to: Some(f.to_addr.to_string()),
            host_ip: f.host_addr.map(|a| a.to_string()),
        })
        .collect();
    let sysctl: BTreeMap<_, _> = d
        .sysctls
        .iter()
        .map(|s| (s.key.clone(), raw::SysctlValue::Text(s.value.clone())))
        .collect();
    raw::Props {
        id: d.id.to_string(),
        network: Some(raw::Network {
            netns_path: Some(match &d.netns {
                NetnsSpec::Owned { .. } => String::new(),
                NetnsSpec::Adopted { path } => path.display().to_string(),
            }),
            interfaces: Some(interfaces),
            ip4route: None,
            ip6route: None,
            nft: d.nft.as_ref().map(|r| r.text.clone()),
            routes: Some(routes),
            masquerade: Some(d.host_rules.masquerade),
            forwards: Some(forwards),
            anti_spoof: Some(d.host_rules.anti_spoof),
        }),
        sysctl: (!sysctl.is_empty()).then_some(raw::Sysctls::Map(sysctl)),
    }
}

fn interface(i: &Interface) -> raw::Interface {
    let addr = |v4: bool, addrs: &[ipnetwork::IpNetwork]| {
        addrs
            .iter()
            .find(|a| a.is_ipv4() == v4)
            .map(ToString::to_string)
    };
    let mut r = raw::Interface {
        ip4: addr(true, &i.addrs),
        ip6: addr(false, &i.addrs),
        mtu: i.mtu,
        mac: i.mac.map(|m| m.to_string()),
        macvlan: i.macvlan.as_ref().map(|m| raw::Macvlan {
            ip4: addr(true, &m.addrs),
            ip6: addr(false, &m.addrs),
            vrid: m.vrid.map(|v| raw::Vrid::Number(v.into())),
            mac: m.mac.map(|m| m.to_string()),
        }),
        ..Default::default()
    };
    match &i.kind {
        InterfaceKind::Veth(h) => {
            r.host_ip4 = addr(true, &h.addrs);
            r.host_ip6 = addr(false, &h.addrs);
            r.host_name = Some(h.name.to_string());
            r.host_bridge = h.bridge.as_ref().map(ToString::to_string);
        }
        InterfaceKind::Ovs(p) => {
            r.ovs = Some(raw::Ovs {
                bridge: Some(p.bridge.to_string()),
                vlan: Some(p.vlan.get().into()),
                trunks: Some(p.trunks.iter().map(|t| t.get().into()).collect()),
                vlan_mode: p.vlan_mode.map(|m| m.as_ovsdb().to_owned()),
                style: Some(match &p.style {
                    OvsStyle::Internal => "internal".into(),
                    OvsStyle::Veth { host } => {
                        r.host_name = Some(host.to_string());
                        "veth".into()
                    }
                }),
                external_ids: Some(p.external_ids.clone()),
                ovn: p.ovn.as_ref().map(|o| raw::Ovn {
                    switch: Some(o.switch.clone()),
                    addresses: Some(o.addresses.clone()),
                    port_security: Some(raw::PortSecurity::Entries(o.port_security.clone())),
                }),
            });
        }
        InterfaceKind::Existing => {}
    }
    r
}
