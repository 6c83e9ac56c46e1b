//! Fixtures of the end-to-end tests with real systemd-nspawn containers: a cached
//! Debian root filesystem, containers started the way the unit starts them, the unit's
//! command lines, and comparable snapshots of network state. The simulated host netns
//! and the private Open vSwitch come from `testkit` (shared with netprov's tests).
#![allow(dead_code)]

pub mod container;
pub mod netstate;
pub mod rootfs;
pub mod unit;

pub use testkit::{netprov_bin, ok_cmd as ok, output};

/// A unique short name (`testkit::unique`), at most 12 bytes: host-end interface
/// names are derived from these container ids.
pub fn unique(prefix: &str) -> String {
    let name = testkit::unique(prefix);
    assert!(name.len() <= 12, "{name} too long");
    name
}
