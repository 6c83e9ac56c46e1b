//! A veth pair (plain or the host end of an OVS veth-style port).

use ipnetwork::IpNetwork;

use crate::engine::diff::link::Before;
use crate::engine::diff::{foreign, Differ};
use crate::engine::plan::{At, LinkStep, Step};
use crate::error::OpError;
use crate::kernel::link::{Kind, LinkState};
use crate::marks::{container_alias, host_alias};
use crate::model::{IfName, Interface, InterfaceKind};

impl<'a> Differ<'a> {
    /// A veth (plain or OVS-veth): host end `host_name`, container side `i.name`.
    pub(super) fn veth(
        &mut self,
        i: &Interface,
        host_name: &IfName,
        host_addrs: &[IpNetwork],
        bridge: Option<&IfName>,
    ) -> Result<(), OpError> {
        let o = self.o;
        let h_alias = host_alias(self.cid, i.name.as_str());
        let c_alias = container_alias(self.cid);
        let host = o.host.links.get(host_name.as_str());
        let cont = o.container.links.get(i.name.as_str());
        self.check_veth_ends(i, host_name, host, cont, &h_alias, &c_alias)?;
        // A pair is whole when the container side's peer is the host end we found.
        let whole = match (host, cont) {
            (Some(h), Some(c)) => c.kind == Kind::Veth && c.link == Some(h.index),
            _ => false,
        };
        if !whole {
            self.recreate_pair(i, host_name, host, cont, h_alias, c_alias);
        } else {
            let (h, c) = (host.expect("whole"), cont.expect("whole"));
            self.mark_pair(i, host_name, h, c, h_alias, c_alias);
        }
        let host_st = if whole { host } else { None };
        self.host_bridge(i, host_name, host_st, bridge)?;
        let made_or = |st: Option<&'a LinkState>| st.map_or(Before::MadeUp, Before::Found);
        self.link_state(At::Host, made_or(host_st), host_name, i.mtu, None);
        self.addrs(
            At::Host,
            &o.host,
            host_name,
            host_st.is_some(),
            host_addrs,
            true,
        );
        let routes = Self::peer_routes(host_addrs, i.host_peer_routes(), host_name.as_str());
        self.host_routes.extend(routes);
        let cont_st = if whole { cont } else { None };
        self.container_side(i, made_or(cont_st), true);
        Ok(())
    }

    /// Either end found under a wanted name must be netprov's for this container.
    fn check_veth_ends(
        &self,
        i: &Interface,
        host_name: &IfName,
        host: Option<&LinkState>,
        cont: Option<&LinkState>,
        h_alias: &str,
        c_alias: &str,
    ) -> Result<(), OpError> {
        let id = &self.id;
        let create_op = format!("create veth {host_name} (host) ↔ {} (netns {id})", i.name);
        if let Some(h) = host {
            // Also this container's host end of another interface (a `hostName` moved
            // between interfaces): netprov's, re-created below for this one.
            let ours = h.owned_as(h_alias)
                || h.alias
                    .as_deref()
                    .is_some_and(|a| crate::marks::is_host_end_of(a, self.cid));
            if !ours {
                return Err(foreign(&create_op, h, &At::Host, id));
            }
        }
        if let Some(c) = cont {
            if !c.owned_as(c_alias) {
                return Err(foreign(&create_op, c, &self.ns(), id));
            }
        }
        Ok(())
    }

    /// Not a whole pair: delete what is left of it and create it anew.
    fn recreate_pair(
        &mut self,
        i: &Interface,
        host_name: &IfName,
        host: Option<&LinkState>,
        cont: Option<&LinkState>,
        h_alias: String,
        c_alias: String,
    ) {
        if host.is_some() {
            self.steps.push(Step::Link(LinkStep::DeleteLink {
                at: At::Host,
                link: host_name.clone(),
            }));
        }
        if cont.is_some() {
            self.steps.push(Step::Link(LinkStep::DeleteLink {
                at: self.ns(),
                link: i.name.clone(),
            }));
        }
        self.renew(&At::Host, host_name.as_str());
        self.renew(&self.ns(), i.name.as_str());
        self.steps.push(Step::Link(LinkStep::CreateVeth {
            host: host_name.clone(),
            peer: i.name.clone(),
            netns: self.cid.clone(),
            host_alias: h_alias,
            peer_alias: c_alias,
            mtu: i.mtu,
            mac: i.mac,
        }));
    }

    /// A whole pair: finish marking its ends (an interrupted run).
    fn mark_pair(
        &mut self,
        i: &Interface,
        host_name: &IfName,
        h: &LinkState,
        c: &LinkState,
        h_alias: String,
        c_alias: String,
    ) {
        if h.alias.as_deref() != Some(h_alias.as_str()) {
            self.steps.push(Step::Link(LinkStep::MarkLink {
                at: At::Host,
                link: host_name.to_string(),
                alias: h_alias,
            }));
        }
        if c.alias.as_deref() != Some(c_alias.as_str()) {
            self.steps.push(Step::Link(LinkStep::MarkLink {
                at: self.ns(),
                link: i.name.to_string(),
                alias: c_alias,
            }));
        }
    }

    /// The host end's Linux bridge: attach it to the wanted one, or detach it from
    /// one the props no longer name (or before it becomes an OVS port).
    fn host_bridge(
        &mut self,
        i: &Interface,
        host_name: &IfName,
        host_st: Option<&LinkState>,
        bridge: Option<&IfName>,
    ) -> Result<(), OpError> {
        if let Some(b) = bridge {
            let Some(br) = self.o.host.links.get(b.as_str()) else {
                return Err(OpError::new(
                    format!("attach {host_name} to bridge {b} in host netns"),
                    "no such bridge in the host netns",
                ));
            };
            if host_st.and_then(|h| h.controller) != Some(br.index) {
                self.steps.push(Step::Link(LinkStep::Enslave {
                    link: host_name.clone(),
                    bridge: b.clone(),
                }));
            }
        } else if host_st.is_some_and(|h| h.controller.is_some_and(|c| c != 0))
            && ((matches!(i.kind, InterfaceKind::Veth(_))
                && !self.ovs_removed.contains(host_name.as_str()))
                || self.ovs_new_veth_port.contains(host_name.as_str()))
        {
            self.steps.push(Step::Link(LinkStep::Release {
                link: host_name.clone(),
            }));
        }
        Ok(())
    }
}
