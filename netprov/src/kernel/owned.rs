//! The ownership marks' checks over what is read of the kernel: whether a link is
//! netprov's, whose a netns is by its links, which protocol-77 routes of an adopted
//! netns a container may delete. The marks themselves, and the invariant, are in
//! [`crate::marks`]; these checks live here so that `marks` depends on nothing of the
//! kernel layer (which uses the marks when it creates objects).

use std::collections::BTreeMap;

use crate::kernel::link::LinkState;
use crate::kernel::route::RouteSpec;
use crate::kernel::state::NsState;
use crate::marks::{container_alias, lo_mark_owner, Owner, ALIAS_PREFIX, NETPROV_GROUP};
use crate::model::ContainerId;

impl LinkState {
    /// Created by netprov: in the netprov group (the alias may still be missing after a
    /// crash, see the module doc) or carrying a netprov alias.
    pub fn created_by_netprov(&self) -> bool {
        self.group == NETPROV_GROUP
            || self
                .alias
                .as_deref()
                .is_some_and(|a| a.starts_with(ALIAS_PREFIX))
    }

    /// Carries exactly this mark: alias `alias`, or (`None`) no alias and the netprov
    /// group — a link whose creation was interrupted before its alias was set.
    pub fn has_mark(&self, alias: Option<&str>) -> bool {
        self.alias.as_deref() == alias && (alias.is_some() || self.group == NETPROV_GROUP)
    }

    /// Whether netprov may manage this link as `alias`: it carries exactly that alias,
    /// or it is a netprov-created link whose alias was never set.
    pub fn owned_as(&self, alias: &str) -> bool {
        match self.alias.as_deref() {
            Some(a) => a == alias,
            None => self.group == NETPROV_GROUP,
        }
    }
}

/// The protocol-77 routes (`st.routes`) of an adopted netns that container `d` may
/// delete: through a link it created or names, or with the key of one of `want`.
/// Another container's (or tool's) protocol-77 routes there are not netprov's for `d`.
pub fn adopted_routes(
    d: &crate::model::Desired,
    st: &NsState,
    want: &[RouteSpec],
) -> Vec<RouteSpec> {
    let alias = container_alias(&d.id);
    let named = |dev: &str| {
        d.interfaces.iter().any(|i| {
            i.name.as_str() == dev || i.macvlan.as_ref().is_some_and(|m| m.name.as_str() == dev)
        })
    };
    st.routes
        .iter()
        .filter(|r| {
            let via_ours = r.dev.as_deref().is_some_and(|dev| {
                named(dev) || st.links.get(dev).is_some_and(|l| l.owned_as(&alias))
            });
            via_ours || want.iter().any(|w| w.same_key(r))
        })
        .cloned()
        .collect()
}

/// Reads the owner of a netns from its links by name.
pub fn netns_owner(id: &ContainerId, links: &BTreeMap<String, LinkState>) -> Owner {
    let lo = links.get("lo").and_then(|l| l.alias.as_deref());
    if let Some(o) = lo_mark_owner(id, lo) {
        return o;
    }
    let alias = container_alias(id);
    if links.values().any(|l| l.alias.as_deref() == Some(&alias)) {
        Owner::Unmarked
    } else {
        Owner::Foreign
    }
}
