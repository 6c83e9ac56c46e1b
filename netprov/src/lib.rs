//! netprov: a declarative, netlink-native network provisioner for systemd-nspawn containers.
//!
//! props.json ─parse+validate─▶ [`model::Desired`] ─┐
//!                                                  ├─ plan ─▶ Plan ─execute─▶ kernel / OVSDB
//! kernel + OVSDB ─observe──────▶ Observed ─────────┘
//!
//! Source tree (see docs/architecture.md):
//!
//! ```text
//! cli/          command line: parse arguments, print results, exit codes
//! props/        props.json → model::Desired (parse, validate)
//! model.rs      the desired state
//! marks.rs      every ownership mark (link group, aliases, route protocol, OVSDB keys,
//!               nft tables, the netns mark, paths) and the checks that read them
//! engine/       observe → diff → plan → execute; destroy; per-container locks
//!   diff/       Desired vs Observed → Steps (links, addresses, OVS, nftables)
//! kernel/       wire operations on the kernel: netlink, netns, links, addresses, routes, sysctls
//! nft/          nftables rulesets (libnftables, nfnetlink)
//! ovsdb/        OVSDB JSON-RPC client and OVS port management
//! ovn/          OVN logical switch ports
//! inventory/    what netprov owns on this host (scan, list, status, gc, reconcile)
//! ser.rs        serde helpers (serialise through Display)
//! userns.rs     sysctls for containers that run in a user namespace
//! error.rs      errors (`Invalid`, `OpError`); exit codes: cli/output.rs
//! ```

pub mod blocking;
pub mod cli;
pub mod engine;
pub mod error;
pub mod inventory;
pub mod kernel;
pub mod marks;
pub mod model;
pub mod nft;
pub mod ovn;
pub mod ovsdb;
pub mod props;
pub mod ser;
pub mod userns;
