//! nftables: the container's own ruleset through libnftables ([`ruleset`]) and the
//! host-side rules netprov generates for a container through nftnl batches ([`host`]).
//!
//! No `nft` process is ever spawned. See docs/nftables.md.
//!
//! Why two stacks: the container ruleset is nft text the user wrote, which only
//! libnftables can parse (`ffi`). The host table is netprov's own, built as libnftnl
//! messages sent in one batch over netprov's netfilter socket (`netlink`), and read
//! back with a netlink dump parsed by libnftnl. Measured (docs/nftables.md, "Why two
//! nftables paths"; `host/stack_bench.rs`), libnftables was slower for the host table —
//! create 1.6–2.1× at one veth and 2.3–3.8× at 500, drift read 3–5× through JSON —
//! could not express it as text at all (`dnat`/`snat` are nft keywords, refused as
//! chain names), and would serialize every host-table apply behind its process-wide
//! lock. So the host path stays on nftnl; each `unsafe` block of either carries a
//! `// SAFETY:` comment, and libnftnl objects are owned through `host/obj.rs`.

pub mod capture;
mod ffi;
pub mod host;
pub mod include;
#[cfg(netprov_libmnl)]
mod libmnl;
mod marker;
mod netlink;
pub mod ruleset;

pub use host::{HostSpec, HostState, VethLink};
pub use ruleset::{CheckError, NftSyntaxError, RulesetChange, RulesetState};
