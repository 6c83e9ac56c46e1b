//! Wire operations on the kernel: netlink, netns, links, addresses, routes, sysctls.

pub mod address;
pub mod link;
pub mod link_reply;
pub mod netlink;
pub mod netns;
pub mod netns_ahead;
pub mod netns_owner;
pub mod netns_release;
pub mod nlsock;
pub mod owned;
pub mod procsys;
pub mod route;
pub mod state;
pub mod sysctl;
