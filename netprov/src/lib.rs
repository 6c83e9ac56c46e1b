//! netprov: a declarative, netlink-native network provisioner for systemd-nspawn containers.
//!
//! props.json ─parse+validate─▶ [`model::Desired`] ─┐
//!                                                  ├─ plan ─▶ Plan ─execute─▶ kernel / OVSDB
//! kernel + OVSDB ─observe──────▶ Observed ─────────┘
//!
//! See docs/architecture.md.

pub mod error;
pub mod model;
pub mod netns;
pub mod ovsdb;
