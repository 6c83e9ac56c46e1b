//! The macvlan on top of an interface.

use crate::engine::diff::link::Before;
use crate::engine::diff::{foreign, Differ};
use crate::engine::plan::{LinkStep, Step};
use crate::error::OpError;
use crate::kernel::link::Kind;
use crate::marks::container_alias;
use crate::model::Interface;

impl Differ<'_> {
    pub(super) fn macvlan(&mut self, i: &Interface) -> Result<(), OpError> {
        let Some(m) = &i.macvlan else { return Ok(()) };
        let id = self.id.clone();
        let o = self.o;
        let alias = container_alias(self.cid);
        let mut st = o.container.links.get(m.name.as_str());
        // Kept only on the very parent that stays: a macvlan of another kind, on a
        // parent this plan re-creates or moves, or on another link is made anew.
        if let Some(l) = st.filter(|l| l.owned_as(&alias)) {
            let parent_stays = !self.renewed.contains(&(false, i.name.to_string()));
            let parent = o.container.links.get(i.name.as_str()).map(|p| p.index);
            if l.kind != Kind::Macvlan || !parent_stays || l.link != parent || parent.is_none() {
                self.steps.push(Step::Link(LinkStep::RemoveLink {
                    at: self.ns(),
                    link: m.name.to_string(),
                }));
                self.renew(&self.ns(), m.name.as_str());
                st = None;
            }
        }
        if let Some(l) = st {
            if !l.owned_as(&alias) {
                return Err(foreign(
                    &format!("create macvlan {} in netns {id}", m.name),
                    l,
                    &self.ns(),
                    &id,
                ));
            }
            if l.alias.is_none() {
                self.steps.push(Step::Link(LinkStep::MarkLink {
                    at: self.ns(),
                    link: m.name.to_string(),
                    alias: alias.clone(),
                }));
            }
        } else {
            self.steps.push(Step::Link(LinkStep::CreateMacvlan {
                link: m.name.clone(),
                parent: i.name.clone(),
                netns: self.cid.clone(),
                alias,
                mac: m.mac,
            }));
        }
        let before = st.map_or(Before::MadeDown, Before::Found);
        self.link_state(
            self.ns(),
            before,
            &m.name,
            None,
            m.mac.filter(|_| st.is_some()),
        );
        self.addrs(
            self.ns(),
            &o.container,
            &m.name,
            st.is_some(),
            &m.addrs,
            true,
        );
        Ok(())
    }
}
