//! Builders shared by the diff's unit tests: a container `web` with an owned netns,
//! its interfaces, and observed links.

use crate::engine::observe::Observed;
use crate::kernel::link::LinkState;
use crate::model::*;

/// Container `web` in `/run/netns/web` with `interfaces` and nothing else.
pub fn desired(interfaces: Vec<Interface>) -> Desired {
    Desired {
        id: ContainerId::new("web").unwrap(),
        netns: NetnsSpec::Owned {
            path: "/run/netns/web".into(),
        },
        interfaces,
        routes: vec![],
        sysctls: vec![],
        nft: None,
        host_rules: HostRules::default(),
    }
}

/// A plain veth interface `name` with host end `host`, one address on each side.
pub fn veth(name: &str, host: &str, host_addr: &str, addr: &str) -> Interface {
    Interface {
        name: IfName::new(name).unwrap(),
        kind: InterfaceKind::Veth(VethHost {
            name: IfName::new(host).unwrap(),
            addrs: vec![host_addr.parse().unwrap()],
            bridge: None,
        }),
        addrs: vec![addr.parse().unwrap()],
        mtu: None,
        mac: None,
        macvlan: None,
    }
}

/// An up link of unknown kind, with no alias or group.
pub fn link(name: &str, index: u32) -> LinkState {
    LinkState {
        index,
        name: name.into(),
        up: true,
        ..Default::default()
    }
}

/// The netns of `d` exists and carries netprov's owner mark (on `lo`, made by `lo`).
pub fn owned_netns(d: &Desired, lo: LinkState) -> Observed {
    let mut o = Observed {
        netns_exists: true,
        ..Default::default()
    };
    o.container.links.insert(
        "lo".into(),
        LinkState {
            alias: Some(crate::marks::netns_mark(&d.id)),
            ..lo
        },
    );
    o
}
