//! OVS and OVN operations (blocking clients, run on the blocking pool).

use crate::blocking::blocking;
use crate::engine::execute::{Exec, Op};
use crate::error::OpError;
use crate::ovn::{OvnChange, OvnClient};
use crate::ovsdb::OvsChange;

impl Exec<'_> {
    /// Runs all of a plan's OVS changes: one transaction (removals first, in their own),
    /// then waits until ovs-vswitchd applied them, so an internal port's device exists
    /// before the next phase moves it. When another writer changed the rows since they
    /// were observed (a failed `wait`), it re-observes and converges with retries.
    pub(super) async fn ovs(&self, changes: Vec<OvsChange>) -> Result<(), OpError> {
        let conn = self.ovs.clone().ok_or_else(|| {
            OpError::new(
                format!("configure OVS ports of {}", self.id),
                "not connected",
            )
        })?;
        let (id, specs) = (self.id.clone(), self.ovs_specs.clone());
        blocking("configure OVS ports", move || {
            let mut c = conn
                .lock()
                .map_err(|_| OpError::new("configure OVS ports", "connection poisoned"))?;
            match crate::ovsdb::apply(&mut c, &id, &changes) {
                Ok(()) => Ok(()),
                Err(e) if e.conflict => crate::ovsdb::converge(&mut c, &id, &specs).map(|_| ()),
                Err(e) => Err(e.error),
            }
        })
        .await
    }

    /// One OVN change: Northbound changes over a connection of their own, waits for
    /// ovn-controller through the container's OVS connection.
    pub(super) async fn ovn(&self, change: &OvnChange, op: Op<'_>) -> Result<(), OpError> {
        let (c, id, ovn, ovs) = (
            change.clone(),
            self.id.to_string(),
            self.ovn.clone(),
            self.ovs.clone(),
        );
        blocking(op, move || {
            let nb = match &c {
                OvnChange::WaitInstalled { .. } => None,
                _ => Some(std::sync::Arc::new(std::sync::Mutex::new(
                    OvnClient::connect(&ovn.endpoint(), crate::ovn::client::NB_DB)?,
                ))),
            };
            crate::ovn::execute(&c, &id, nb.as_ref(), ovs.as_ref(), ovn.install_timeout)
        })
        .await
    }
}
