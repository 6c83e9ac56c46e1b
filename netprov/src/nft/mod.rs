//! nftables: the container's own ruleset through libnftables ([`ruleset`]) and the
//! host-side rules netprov generates for a container through nftnl batches ([`host`]).
//!
//! No `nft` process is ever spawned. See docs/nftables.md.

mod ffi;
pub mod host;
pub mod include;
mod marker;
mod netlink;
pub mod ruleset;

pub use host::{HostSpec, HostState, VethLink};
pub use ruleset::{CheckError, NftSyntaxError, RulesetChange, RulesetState};
