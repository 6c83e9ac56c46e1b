//! A link moved into the container: an OVS internal port's device, or an existing
//! host link lent to the container.

use crate::engine::diff::link::Before;
use crate::engine::diff::{existing, foreign, Differ};
use crate::engine::plan::{LinkStep, MoveKind, Step};
use crate::error::OpError;
use crate::kernel::link::{Kind, LinkState};
use crate::marks::container_alias;
use crate::model::Interface;

impl<'a> Differ<'a> {
    pub(super) fn moved(&mut self, i: &Interface, kind: MoveKind) -> Result<(), OpError> {
        let alias = match kind {
            MoveKind::OvsInternal => Some(container_alias(self.cid)),
            MoveKind::Existing => None,
        };
        match self.clear_for_move(i, kind, &alias) {
            Some(c) => self.already_in(i, kind, c, &alias),
            None => self.move_in(i, kind, alias),
        }
    }

    /// The link of that name in the container, unless this plan deletes it first.
    fn clear_for_move(
        &mut self,
        i: &Interface,
        kind: MoveKind,
        alias: &Option<String>,
    ) -> Option<&'a LinkState> {
        let o = self.o;
        let mut in_container = o.container.links.get(i.name.as_str());
        // The container end of a veth-style OVS port (the style changed to internal):
        // deleting it removes the pair; the new internal device is moved in.
        if let (MoveKind::OvsInternal, Some(c), Some(a)) = (kind, in_container, alias) {
            if c.owned_as(a) && c.kind == crate::kernel::link::Kind::Veth {
                self.steps.push(Step::Link(LinkStep::DeleteLink {
                    at: self.ns(),
                    link: i.name.clone(),
                }));
                in_container = None;
            }
        }
        // An internal port's device in the container *and* a device of that name in
        // the host: ovs-vswitchd restarted and made a new tap (userspace datapath; see
        // docs/ovs.md). The container's copy is dead: delete it, move the new one in.
        if let (MoveKind::OvsInternal, Some(c), Some(a)) = (kind, in_container, alias) {
            if c.owned_as(a) && o.host.links.contains_key(i.name.as_str()) {
                self.steps.push(Step::Link(LinkStep::DeleteDeadOvsDevice {
                    netns: self.cid.clone(),
                    link: i.name.clone(),
                }));
                self.renew(&self.ns(), i.name.as_str());
                in_container = None;
            }
        }
        // A link netprov made for this container under that name but of another kind
        // (a veth peer or macvlan; the interface was one before), or the device of an
        // OVS port this plan re-creates (e.g. on another bridge): delete it, then move
        // the wanted link in.
        if let Some(c) = in_container {
            let made_here = c.owned_as(&container_alias(self.cid));
            // Only what netprov can delete over rtnetlink.
            let other_kind = matches!(c.kind, Kind::Veth | Kind::Macvlan);
            let new_port =
                kind == MoveKind::OvsInternal && self.ovs_new_device.contains(i.name.as_str());
            if made_here && (other_kind || new_port) {
                self.steps.push(Step::Link(LinkStep::RemoveLink {
                    at: self.ns(),
                    link: i.name.to_string(),
                }));
                self.renew(&self.ns(), i.name.as_str());
                in_container = None;
            }
        }
        in_container
    }

    /// The link is in the container already: mark it if netprov owns it.
    fn already_in(
        &mut self,
        i: &Interface,
        kind: MoveKind,
        c: &LinkState,
        alias: &Option<String>,
    ) -> Result<(), OpError> {
        let id = &self.id;
        if let Some(a) = alias {
            if !c.owned_as(a) && c.alias.is_some() {
                return Err(foreign(
                    &format!("move {} into netns {id}", i.name),
                    c,
                    &self.ns(),
                    id,
                ));
            }
            if c.alias.as_deref() != Some(a.as_str()) {
                self.steps.push(Step::Link(LinkStep::MarkLink {
                    at: self.ns(),
                    link: i.name.to_string(),
                    alias: a.clone(),
                }));
            }
        }
        self.container_side(i, Before::Found(c), kind == MoveKind::OvsInternal);
        Ok(())
    }

    /// Move the host link in, then give it its state in the container.
    fn move_in(
        &mut self,
        i: &Interface,
        kind: MoveKind,
        alias: Option<String>,
    ) -> Result<(), OpError> {
        let (id, o) = (self.id.clone(), self.o);
        if kind == MoveKind::Existing && !o.host.links.contains_key(i.name.as_str()) {
            return Err(OpError::new(
                format!("move existing link {} into netns {id}", i.name),
                "no such link in the host netns or the container netns",
            ));
        }
        self.renew(&self.ns(), i.name.as_str());
        if let (MoveKind::Existing, Some(l)) = (kind, o.host.links.get(i.name.as_str())) {
            existing::check_free(l, &o.host, &o.ovsdb_interfaces, &id)?;
        }
        self.steps.push(Step::Link(LinkStep::MoveLinkIn {
            link: i.name.clone(),
            netns: self.cid.clone(),
            kind,
            alias,
        }));
        self.container_side(i, Before::MovedIn, kind == MoveKind::OvsInternal);
        Ok(())
    }
}
