//! Writing the container's host table: create or replace it in one batch, or delete it.

use std::path::Path;

use nftnl::nftnl_sys::libc;

use super::read::table_exists;
use super::{build, content, table_name, HostSpec};
use crate::error::OpError;
use crate::kernel::netns::in_netns;
use crate::model::ContainerId;
use crate::nft::netlink::{BatchError, NfSocket};

/// Creates or atomically replaces the container's table in the host netns: one batch,
/// one datagram, one transaction — whatever the number of interfaces (see
/// [`NfSocket::run_batch`]).
///
/// A table that is not there is created without the `add table; delete table` prefix
/// (and with NLM_F_EXCL, so one that appeared meanwhile fails the batch with EEXIST and
/// is then replaced): a transaction that deletes an object — even one it created
/// itself — makes closing the socket wait for an RCU grace period (~8–10 ms), which a
/// first install does not need to pay. One GETTABLE decides.
pub fn apply_host(host_netns: &Path, spec: &HostSpec) -> Result<(), OpError> {
    let op = format!(
        "load nftables table inet {} in netns {}",
        spec.table_name(),
        host_netns.display()
    );
    spec.check().map_err(|e| OpError::new(&op, e))?;
    let table = spec.table_name();
    let mut create = build::messages(spec);
    build::set_exclusive(&mut create[0], true);
    let res = in_netns(host_netns, move || -> Result<(), Refused> {
        let sock = NfSocket::open().map_err(Refused::io)?;
        if !table_exists(&sock, &table).map_err(Refused::io)? {
            match sock.run_batch(&build::batch(&create)) {
                Ok(()) => return Ok(()),
                Err(e) if e.err.raw_os_error() == Some(libc::EEXIST) && e.seq == Some(1) => {}
                Err(e) => return Err(Refused(e, create)),
            }
        }
        let mut replace = build::delete_table(&table);
        build::set_exclusive(&mut create[0], false);
        replace.extend(create);
        sock.run_batch(&build::batch(&replace))
            .map_err(|e| Refused(e, replace))
    })?;
    res.map_err(|r| r.into_op_error(op))
}

/// Deletes the container's table (and with it all its chains and rules) if it exists
/// (an absent one costs one GETTABLE and no transaction).
pub fn remove_host(host_netns: &Path, id: &ContainerId) -> Result<(), OpError> {
    let name = table_name(id);
    let op = format!(
        "delete nftables table inet {name} in netns {}",
        host_netns.display()
    );
    let res = in_netns(host_netns, move || -> Result<(), Refused> {
        let sock = NfSocket::open().map_err(Refused::io)?;
        if !table_exists(&sock, &name).map_err(Refused::io)? {
            return Ok(());
        }
        let msgs = build::delete_table(&name);
        sock.run_batch(&build::batch(&msgs))
            .map_err(|e| Refused(e, msgs))
    })?;
    res.map_err(|r| r.into_op_error(op))
}

/// A batch the kernel refused, with the messages it was made of.
struct Refused(BatchError, Vec<build::NftMsg>);

impl Refused {
    fn io(e: std::io::Error) -> Self {
        Refused(e.into(), Vec::new())
    }

    /// The error names the message the kernel refused ("…: Invalid argument (set
    /// links-v4)").
    fn into_op_error(self, op: String) -> OpError {
        let Refused(e, msgs) = self;
        let mut err = OpError::io(op, &e.err);
        let failed = e.seq.and_then(|s| msgs.get((s as usize).checked_sub(1)?));
        if let Some(m) = failed {
            err.cause = format!("{} ({})", err.cause, content::describe(m.kind, &m.bytes));
        }
        err
    }
}
