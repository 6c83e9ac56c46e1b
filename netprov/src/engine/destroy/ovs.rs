//! Whether a container shows OVS interfaces, when OVSDB cannot say.

use crate::engine::observe;
use crate::kernel::link;
use crate::kernel::netlink::Netlink;
use crate::model::ContainerId;

/// Whether the container netns shows OVS interfaces netprov made: an owned link that is
/// neither a veth nor a macvlan (only OVS internal ports are moved in and marked), or
/// an owned veth whose host end is enslaved to the kernel datapath (`ovs-system`). A
/// veth port on a userspace datapath leaves no such trace.
pub(super) async fn shows_ovs(
    st: &observe::NsState,
    host: &Netlink,
    id: &ContainerId,
    calias: &str,
) -> bool {
    for l in st.links.values().filter(|l| l.owned_as(calias)) {
        match &l.kind {
            link::Kind::Veth => {}
            link::Kind::Macvlan => continue,
            _ => return true,
        }
        let (Some(peer), Some(_)) = (l.link, l.link_netnsid) else {
            continue;
        };
        let get = |i| async move { host.get_link(link::get_by_index(i)).await.ok().flatten() };
        let Some(h) = get(peer).await else { continue };
        if h.alias.as_deref() != Some(crate::marks::host_alias(id, &l.name).as_str()) {
            continue;
        }
        if let Some(m) = h.controller {
            if matches!(get(m).await, Some(c) if c.kind == link::Kind::Other("openvswitch".into()))
            {
                return true;
            }
        }
    }
    false
}
