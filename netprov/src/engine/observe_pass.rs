//! One observe pass of the engine: OVSDB first (an unreachable ovsdb-server fails the
//! run before anything is read or changed), OVN, then the kernel.

use std::sync::{Arc, Mutex};

use crate::blocking::blocking;
use crate::engine::observe::{self, Observed};
use crate::engine::runtime::Engine;
use crate::error::OpError;
use crate::kernel::netlink::Netlink;
use crate::model::Desired;
use crate::nft::host::HostExpected;
use crate::ovsdb::OvsConn;
use crate::ovsdb::{self, Client, PortSpec};

impl Engine {
    /// Observes everything; OVSDB first, so an unreachable ovsdb-server fails the run
    /// before anything is read or changed. Returns the OVSDB connection (if any was
    /// needed) for the execute phase.
    pub(super) async fn observe(
        &self,
        d: &Desired,
        c: Option<&Netlink>,
        expected: &HostExpected,
    ) -> Result<(Observed, Option<OvsConn>), OpError> {
        let fresh = observe::FreshHostRoutes::new();
        self.observe_with(d, c, None, expected, &fresh).await
    }

    /// [`Self::observe`], reusing the OVSDB connection of an earlier pass if any, and
    /// checking the routes of host links the earlier passes created one by one.
    pub(super) async fn observe_with(
        &self,
        d: &Desired,
        c: Option<&Netlink>,
        conn: Option<OvsConn>,
        expected: &HostExpected,
        fresh: &observe::FreshHostRoutes,
    ) -> Result<(Observed, Option<OvsConn>), OpError> {
        let specs = PortSpec::all(&d.id, &d.interfaces);
        let mut ovs = None;
        let mut rows = None;
        let (ep, id) = (self.endpoint(), d.id.clone());
        if let Some(conn) = conn {
            let conn2 = conn.clone();
            let r = blocking("observe OVS ports", move || {
                let mut client = conn2
                    .lock()
                    .map_err(|_| OpError::new("observe OVS ports", "connection poisoned"))?;
                ovsdb::observe(&mut client, &id, &specs)
            })
            .await?;
            ovs = Some(conn);
            rows = Some(r);
        } else if !specs.is_empty() {
            let (client, r) = blocking("observe OVS ports", move || {
                let mut client = Client::connect(&ep)?;
                let r = ovsdb::observe(&mut client, &id, &specs)?;
                Ok((client, r))
            })
            .await?;
            ovs = Some(Arc::new(Mutex::new(client)));
            rows = Some(r);
        } else if ep.path().exists() {
            // No OVS interface wanted: ports this container still owns (its props
            // dropped them all) must go. Only look when OVS runs here; a host without
            // OVS (no socket: checked here, without a blocking-pool thread), or with a
            // stale socket, has no such ports to find.
            let found = blocking("observe OVS ports", move || {
                let Ok(Some(mut client)) = Client::connect_if_present(&ep) else {
                    return Ok(None);
                };
                let r = ovsdb::observe(&mut client, &id, &[])?;
                Ok((!r.ports.is_empty()).then_some((client, r)))
            })
            .await?;
            if let Some((client, r)) = found {
                ovs = Some(Arc::new(Mutex::new(client)));
                rows = Some(r);
            }
        }
        let ovn = self.observe_ovn(d, ovs.clone()).await?;
        let mut o = observe::observe(d, &self.host, &self.host_path, c, expected, fresh).await?;
        o.ovs = rows;
        o.ovn = ovn;
        // Existing links about to be moved in: does Open vSwitch claim them?
        let names = crate::engine::diff::existing::in_host(d, &o);
        if !names.is_empty() {
            let (conn, ep) = (ovs.clone(), self.endpoint());
            o.ovsdb_interfaces = blocking("look up existing links in OVSDB", move || {
                ovsdb::claims::interfaces_named(conn.as_deref(), &ep, &names)
            })
            .await?;
        }
        Ok((o, ovs))
    }

    /// The container's OVN ports in NB and on this chassis: when it wants some, or
    /// when a Northbound database is configured or present (to find ports to remove).
    async fn observe_ovn(
        &self,
        d: &Desired,
        ovs: Option<OvsConn>,
    ) -> Result<Option<crate::ovn::Observed>, OpError> {
        let wanted = crate::ovn::wanted(d);
        if !wanted && !self.ovn.look_anyway() {
            return Ok(None);
        }
        let (ep, d2) = (self.ovn.endpoint(), d.clone());
        blocking("observe OVN logical ports", move || {
            let mut nb = match crate::ovn::OvnClient::connect(&ep, crate::ovn::client::NB_DB) {
                Ok(nb) => nb,
                // Only looking for leftovers: a database that is down has none to give.
                Err(_) if !wanted => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut guard = match &ovs {
                Some(c) => Some(
                    c.lock()
                        .map_err(|_| OpError::new("observe OVN chassis", "connection poisoned"))?,
                ),
                None => None,
            };
            crate::ovn::observe(&mut nb, guard.as_deref_mut(), &d2).map(Some)
        })
        .await
    }
}
