//! The container netns: created, marked, or (adopted) checked.

use crate::engine::observe::Observed;
use crate::engine::plan::{At, LinkStep, NetnsStep, Step};
use crate::error::OpError;
use crate::model::{Desired, NetnsSpec};

/// The netns steps: create it, or mark or check the one there; then `lo` up.
pub(super) fn steps(d: &Desired, o: &Observed) -> Result<Vec<Step>, OpError> {
    let mut steps = Vec::new();
    match &d.netns {
        NetnsSpec::Owned { path } if !o.netns_exists => {
            steps.push(Step::Netns(NetnsStep::CreateNetns {
                netns: d.id.clone(),
                path: path.clone(),
            }))
        }
        NetnsSpec::Adopted { path } if !o.netns_exists => {
            return Err(OpError::new(
                format!("open netns {}", path.display()),
                "the adopted netns (netns_path) does not exist",
            ))
        }
        NetnsSpec::Owned { path } => steps.extend(owned_netns(d, path, o)?),
        NetnsSpec::Adopted { path } => adopted_netns(d, path, o)?,
    }
    if !o.container.links.get("lo").is_some_and(|l| l.up) {
        steps.push(Step::Link(LinkStep::LinkUp {
            at: At::Netns(d.id.clone()),
            link: "lo".into(),
        }));
    }
    Ok(steps)
}

/// An existing `/run/netns/<id>` is netprov's only with its owner mark (or, made by an
/// older netprov, with this container's links: then it gets the mark now).
fn owned_netns(d: &Desired, path: &std::path::Path, o: &Observed) -> Result<Option<Step>, OpError> {
    use crate::marks::{self, Owner};
    match crate::kernel::owned::netns_owner(&d.id, &o.container.links) {
        Owner::Ours => Ok(None),
        Owner::Unmarked => Ok(Some(Step::Link(LinkStep::MarkLink {
            at: At::Netns(d.id.clone()),
            link: "lo".into(),
            alias: marks::netns_mark(&d.id),
        }))),
        other => Err(marks::netns_not_ours(&d.id, path, &other)),
    }
}

/// An adopted netns may be anything but another container's own netns.
fn adopted_netns(d: &Desired, path: &std::path::Path, o: &Observed) -> Result<(), OpError> {
    use crate::marks::Owner;
    match crate::kernel::owned::netns_owner(&d.id, &o.container.links) {
        Owner::Other(other) => Err(OpError::new(
            format!("adopt netns {} for {}", path.display(), d.id),
            format!("it is netprov's own netns of container {other}"),
        )),
        _ => Ok(()),
    }
}
