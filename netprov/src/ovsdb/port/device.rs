//! Where an internal port's device is, for engines that do not track links themselves.
//!
//! With the userspace datapath (`datapath_type=netdev`) an internal port is a
//! persistent tap device whose file descriptor ovs-vswitchd holds. Moved into a
//! container it keeps passing traffic, but ovs-vswitchd no longer sees it: OVSDB shows
//! `ifindex` 0 and `link_state` down for a healthy moved port, and nothing at all when
//! the device is deleted. And when ovs-vswitchd restarts, it creates a *new* tap under
//! the port name in its own netns while the old one stays, dead, in the container.
//! Only looking at both netns tells these cases apart.

use std::path::Path;

use super::PortSpec;
use crate::error::OpError;

/// Where an internal port's device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalDevice {
    /// In the host netns under the port name: created, not yet moved (or re-created by
    /// ovs-vswitchd after the container's copy died). Move it in.
    InHost,
    /// In the container under the interface name, and no copy in the host: in place.
    InContainer,
    /// In both: ovs-vswitchd restarted and made a new device; the container's one is
    /// a dead leftover to delete before the new one is moved in.
    Both,
    /// Nowhere: the device vanished; [`super::Observed::mark_device_missing`] and
    /// apply to have the port re-created.
    Missing,
}

fn exists(name: &str) -> bool {
    let c = std::ffi::CString::new(name).expect("interface names have no NUL");
    // SAFETY: if_nametoindex only reads the NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// Looks for `spec`'s device in the current (host) netns — the one ovs-vswitchd runs
/// in — and in the container netns at `container_netns`.
pub fn locate_internal_device(
    spec: &PortSpec,
    container_netns: &Path,
) -> Result<InternalDevice, OpError> {
    let in_host = exists(spec.port.as_str());
    let iface = spec.iface.to_string();
    let in_container = crate::kernel::netns::in_netns(container_netns, move || exists(&iface))?;
    Ok(match (in_host, in_container) {
        (true, false) => InternalDevice::InHost,
        (false, true) => InternalDevice::InContainer,
        (true, true) => InternalDevice::Both,
        (false, false) => InternalDevice::Missing,
    })
}
