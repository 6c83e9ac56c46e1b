//! nspawn-glue's end-to-end tests, one binary (run one module with
//! `cargo test -p netprov-nspawn-glue --test e2e <module>`): the shipped units verified
//! by `systemd-analyze`, coexistence with systemd-networkd's stock files, and real
//! systemd-nspawn containers provisioned through the drop-in's command lines. Fixtures
//! shared with netprov's tests are in the `testkit` crate; see docs/testing.md.

mod support;

mod coexist;
mod nspawn_e2e;
mod units;
