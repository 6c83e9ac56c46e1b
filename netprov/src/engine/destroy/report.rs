//! What a destroy is asked to remove, and what it reports.

use serde::Serialize;

use crate::error::OpError;
use crate::model::{ContainerId, Desired, NetnsSpec};

/// What destroy removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestroyReport {
    pub id: String,
    /// Links deleted, as "name (where)".
    pub links_deleted: Vec<String>,
    /// Links netprov did not own, moved back to the host netns.
    pub links_returned: Vec<String>,
    pub routes_deleted: usize,
    pub netns_removed: bool,
    /// The ruleset netprov loaded in an adopted netns was flushed.
    pub ruleset_removed: bool,
    /// OVS ports (marked as this container's) removed.
    pub ovs_ports_removed: Vec<String>,
    /// OVN logical switch ports (marked as this container's) removed from Northbound.
    pub ovn_ports_removed: Vec<String>,
    /// Why `/run/netns/<id>` was left alone: it is not netprov's (no owner mark, a
    /// symlink, …). Nothing inside it was touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_not_ours: Option<String>,
    /// Mutating netlink messages and nftables transactions sent.
    pub messages: usize,
}

/// What to destroy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestroyTarget {
    /// From a props file: also finds host ends by name, honours an adopted netns.
    Props(Desired),
    /// Only the id: the netns `/run/netns/<id>`, everything found by marks.
    Id(ContainerId),
}

impl DestroyTarget {
    pub fn id(&self) -> &ContainerId {
        match self {
            DestroyTarget::Props(d) => &d.id,
            DestroyTarget::Id(id) => id,
        }
    }
    pub(super) fn netns(&self) -> NetnsSpec {
        match self {
            DestroyTarget::Props(d) => d.netns.clone(),
            DestroyTarget::Id(id) => NetnsSpec::Owned {
                path: crate::marks::netns_path(id),
            },
        }
    }
}

/// A destroy that could not remove everything: what it did remove, and every part that
/// failed (each names its operation and object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestroyFailed {
    /// Boxed: keeps the `Err` of a `Result` small.
    pub report: Box<DestroyReport>,
    pub failures: Vec<OpError>,
}

impl DestroyFailed {
    /// A destroy of `id` that failed before removing anything.
    pub fn new(id: &ContainerId, e: OpError) -> Self {
        Self {
            report: Box::new(DestroyReport {
                id: id.to_string(),
                ..Default::default()
            }),
            failures: vec![e],
        }
    }
}

impl std::fmt::Display for DestroyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DestroyFailed {}
