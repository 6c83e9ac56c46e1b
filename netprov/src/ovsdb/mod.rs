//! Open vSwitch over OVSDB (RFC 7047): a small JSON-RPC client and netprov's port logic.
//!
//! - [`jsonrpc`]: framing of the JSON stream, requests, `echo` replies.
//! - [`ops`]: transaction operations and the OVSDB data notation.
//! - [`client`]: connecting to `unix:PATH`, `transact`, waiting for ovs-vswitchd.
//! - [`port`]: observe / plan / apply / destroy of a container's OVS ports with VLANs.
//!
//! See docs/ovs.md.

pub mod claims;
pub mod client;
pub mod jsonrpc;
pub mod ops;
pub mod port;

pub use client::{Client, Endpoint, TransactError, Txn};
pub use port::{apply, converge, destroy, observe, plan, Observed, OvsChange, PortRow, PortSpec};

/// An OVSDB connection shared between the observe and execute phases of one container
/// (the client is blocking: it is only used from blocking-pool threads).
pub type OvsConn = std::sync::Arc<std::sync::Mutex<Client>>;
