//! End-to-end tests of the netlink engine: real namespaces, real traffic.
//! Run as root: `cargo test -p netprov --test e2e engine_apply`.

use crate::engine_common::*;
use netprov::engine::DestroyTarget;
use netprov::model::*;
use testkit::HostNetns;

mod connectivity;
mod ownership;
mod robustness;
