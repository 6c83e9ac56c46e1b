//! netprov's end-to-end tests, one binary: each module was a test binary of its own
//! (run one with `cargo test -p netprov --test e2e <module>`). They run as root, with
//! real netlink in network namespaces they create, a private Open vSwitch / OVN and
//! real libnftables; the fixtures are in the `testkit` crate, shared with
//! nspawn-glue's tests. See docs/testing.md.
//!
//! One process runs every module on several threads (`--test-threads`): a test may
//! enter a netns only on its own thread (netprov's library does so per thread) or in a
//! child process, and sets environment variables only on child commands.

mod engine_common;

mod cli_apply;
mod cli_host_rules;
mod cli_nft;
mod cli_ovs;
mod converge;
mod destroy_no_wait;
mod drift_matrix;
mod engine_apply;
mod fast_paths;
mod host_names;
mod input_safety;
mod inventory;
mod lifecycle;
mod netns_adopt;
mod nft_batch_cache;
mod nft_host;
mod nft_ruleset;
mod ovn_multihost;
mod ovs_client;
mod ovs_defaults;
mod ovs_ports;
mod procfs;
mod userns;
mod validate_cli;
