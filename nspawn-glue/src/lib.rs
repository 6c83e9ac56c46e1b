//! systemd integration for netprov.
//!
//! A container managed by netprov joins a network namespace that `netprov apply` made
//! complete *before* `systemd-nspawn` starts. The glue is two unit drop-ins (for the
//! upstream `systemd-nspawn@.service` and for NixUnits' `nixunits@.service`), kept as
//! files under `units/`, and a systemd generator that attaches them to every container
//! that has a props file in `/etc/netprov/`. See docs/nspawn.md.

pub mod dropin;
pub mod generator;
pub mod log;
pub mod userns;
