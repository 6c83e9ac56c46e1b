//! Host-netns links a host-wide scan found for a container (gc), deleted when they
//! still carry its alias.

use crate::engine::destroy::DestroyReport;
use crate::error::OpError;
use crate::kernel::link;
use crate::kernel::netlink::Netlink;
use crate::marks::alias_owner;
use crate::model::ContainerId;

/// Deletes the host-netns links `names` that are still there and carry container
/// `id`'s alias (`netprov:<id>` or `netprov:<id>:<if>`); a link renamed or re-marked
/// meanwhile is left. Adds what it deleted to `rep`; returns the failures.
pub async fn delete_host_links(
    host: &Netlink,
    id: &ContainerId,
    names: &[String],
    rep: &mut DestroyReport,
) -> Vec<OpError> {
    let mut fails = Vec::new();
    let count = crate::kernel::netlink::MutationCount::default();
    for name in names {
        let got = match host.get_link(link::get_by_name(name)).await {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                fails.push(OpError::errno(format!("get link {name} in host netns"), e));
                continue;
            }
        };
        if got.alias.as_deref().and_then(alias_owner).as_ref() != Some(id) {
            continue;
        }
        match host.mutate(link::delete(got.index), 0, &count).await {
            Ok(()) | Err(libc::ENODEV) => rep.links_deleted.push(format!("{name} (host netns)")),
            Err(e) => fails.push(OpError::errno(
                format!("delete link {name} in host netns"),
                e,
            )),
        }
    }
    rep.messages += count.get();
    fails
}
