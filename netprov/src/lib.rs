//! netprov: a declarative, netlink-native network provisioner for systemd-nspawn containers.
//!
//! props.json ─parse+validate─▶ [`model::Desired`] ─┐
//!                                                  ├─ plan ─▶ Plan ─execute─▶ kernel / OVSDB
//! kernel + OVSDB ─observe──────▶ Observed ─────────┘
//!
//! See docs/architecture.md.

pub mod address;
pub mod cli;
pub mod destroy;
pub mod diff;
pub mod engine;
pub mod error;
pub mod execute;
pub mod inventory;
pub mod link;
pub mod lock;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod netns_owner;
pub mod netns_release;
pub mod nft;
pub mod observe;
pub mod ovn;
pub mod ovsdb;
pub mod plan;
pub mod props;
pub mod route;
pub mod sysctl;
pub mod userns;
