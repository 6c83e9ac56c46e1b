//! Links the props do not name, and the state (MTU, MAC, up) of those they do.

use std::collections::BTreeSet;

use crate::engine::diff::Differ;
use crate::engine::plan::{At, LinkStep, Step};
use crate::kernel::link::{Kind, LinkState};
use crate::marks::container_alias;
use crate::model::{Desired, IfName, Interface, MacAddr};

/// What a link is when a plan's state steps reach it.
#[derive(Clone, Copy)]
pub(super) enum Before<'a> {
    /// There, as observed.
    Found(&'a LinkState),
    /// Made by this plan up, with its MTU and MAC (a veth end).
    MadeUp,
    /// Made by this plan down, with its MAC (a macvlan: its IPv6 address generation
    /// mode is set before it goes up).
    MadeDown,
    /// Moved in by this plan: it keeps what it had.
    MovedIn,
}

impl<'a> Before<'a> {
    pub(super) fn found(self) -> Option<&'a LinkState> {
        match self {
            Before::Found(l) => Some(l),
            _ => None,
        }
    }
}

impl Differ<'_> {
    /// Container links the props do not name: netprov's own are deleted. Others stay:
    /// the container's processes may make links in their netns (docker0, wg0), and an
    /// unmarked link cannot be told apart from an `Existing` link lent before, so
    /// none is ever moved to the host netns by apply (destroy returns lent links).
    pub(super) fn unwanted(&mut self, d: &Desired) {
        let wanted: BTreeSet<&str> = d
            .interfaces
            .iter()
            .flat_map(|i| {
                std::iter::once(i.name.as_str()).chain(i.macvlan.iter().map(|m| m.name.as_str()))
            })
            .collect();
        let alias = container_alias(self.cid);
        let mut links: Vec<&LinkState> = self
            .o
            .container
            .links
            .values()
            .filter(|l| l.name != "lo" && !wanted.contains(l.name.as_str()))
            .collect();
        // Macvlans first: their parent may go too.
        links.sort_by_key(|l| l.kind != Kind::Macvlan);
        for l in links {
            // Only the kinds netprov makes over rtnetlink: an OVS internal port's device
            // goes with its port (the OVSDB part of the plan removes it).
            if l.owned_as(&alias) && matches!(l.kind, Kind::Veth | Kind::Macvlan) {
                self.steps.push(Step::Link(LinkStep::RemoveLink {
                    at: self.ns(),
                    link: l.name.clone(),
                }));
                self.renew(&self.ns(), &l.name);
            }
        }
    }

    pub(super) fn link_state(
        &mut self,
        at: At,
        before: Before,
        name: &IfName,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
    ) {
        let (mtu_diff, mac_diff, up) = match before {
            Before::Found(l) => (
                mtu.filter(|m| l.mtu != Some(*m)),
                mac.filter(|m| l.mac != Some(m.0)),
                l.up,
            ),
            Before::MadeUp => (None, None, true),
            Before::MadeDown => (None, None, false),
            Before::MovedIn => (mtu, mac, false),
        };
        if mtu_diff.is_some() || mac_diff.is_some() {
            self.steps.push(Step::Link(LinkStep::SetLink {
                at: at.clone(),
                link: name.clone(),
                mtu: mtu_diff,
                mac: mac_diff,
            }));
        }
        if !up {
            self.steps.push(Step::Link(LinkStep::LinkUp {
                at,
                link: name.to_string(),
            }));
        }
    }

    /// Link state, addresses and peer routes of a container-side interface.
    pub(super) fn container_side(&mut self, i: &Interface, before: Before, owned: bool) {
        let o = self.o;
        self.link_state(self.ns(), before, &i.name, i.mtu, i.mac);
        self.addrs(
            self.ns(),
            &o.container,
            &i.name,
            before.found().is_some(),
            &i.addrs,
            owned,
        );
        let routes = Self::peer_routes(&i.addrs, i.container_peer_routes(), i.name.as_str());
        self.container_routes.extend(routes);
    }
}
