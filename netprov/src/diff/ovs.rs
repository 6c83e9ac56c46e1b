//! The OVS part of the diff: the container's OVS ports (OVSDB rows), with what the
//! netlink observation knows about their devices.
//!
//! OVSDB cannot tell that an internal port's device vanished once it was moved into a
//! container (ovs-vswitchd no longer sees it), so the engine decides from the links it
//! observed: a port whose device is neither in the container nor in the host netns is
//! re-created; so is a veth-style port whose host end is gone.

use crate::error::OpError;
use crate::model::Desired;
use crate::observe::Observed;
use crate::ovsdb::{self, PortSpec};
use crate::plan::Step;

pub fn steps(d: &Desired, o: &Observed) -> Result<Vec<Step>, OpError> {
    let Some(rows) = &o.ovs else {
        return Ok(Vec::new());
    };
    let specs = PortSpec::all(&d.id, &d.interfaces);
    let mut rows = rows.clone();
    for s in &specs {
        let in_host = o.host.links.contains_key(s.port.as_str());
        if s.internal {
            let in_container = o.container.links.contains_key(s.iface.as_str());
            if !in_host && !in_container {
                rows.mark_device_missing(
                    s.port.as_str(),
                    format!(
                        "its device {} is in neither the container nor the host",
                        s.iface
                    ),
                );
            }
        } else if !in_host {
            rows.mark_device_missing(
                s.port.as_str(),
                format!("its veth host end {} is gone", s.port),
            );
        }
    }
    Ok(ovsdb::plan(&d.id, &specs, &rows)?
        .into_iter()
        .map(|change| Step::OvsPort { change })
        .collect())
}
