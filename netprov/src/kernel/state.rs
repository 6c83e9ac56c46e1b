//! What observe reads of one netns: its links, their addresses and netprov's routes.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::kernel::link::LinkState;
use crate::kernel::route::RouteSpec;

/// The state of one netns as far as netprov cares.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NsState {
    /// Links by name.
    pub links: BTreeMap<String, LinkState>,
    /// Permanent addresses by ifindex (kernel link-local ones left out).
    pub addrs: BTreeMap<u32, Vec<IpNetwork>>,
    /// netprov's routes (protocol 77, main table), `dev` resolved to a name.
    pub routes: Vec<RouteSpec>,
}

impl NsState {
    pub fn addrs_of(&self, link: &str) -> &[IpNetwork] {
        self.links
            .get(link)
            .and_then(|l| self.addrs.get(&l.index))
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }
}
