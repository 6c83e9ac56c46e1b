//! OVN: an OVS interface with `ovs.ovn` becomes a logical switch port in the OVN
//! Northbound database, bound to this host's chassis. See docs/ovn.md.
//!
//! - [`client`]: endpoints (`unix:`, `tcp:`) and transactions on the OVN databases.
//! - [`lsp`]: Logical_Switch_Port spec, observe, plan, apply, destroy (ownership by
//!   `external_ids:netprov-id`, as for OVS ports).
//! - [`chassis`]: the local Open_vSwitch row (`system-id`, `ovn-remote`), which OVS
//!   interfaces carry an `iface-id`, the wait for `ovn-installed`.
//!
//! The OVS Interface side (`iface-id`, `iface-id-ver`, `attached_mac`) is written by the
//! OVS port logic: [`bind_specs`] adds those keys to the container's `PortSpec`s.

pub mod chassis;
pub mod client;
pub mod lsp;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

pub use chassis::Chassis;
pub use client::{OvnClient, OvnEndpoint};
pub use lsp::{LspSpec, NbObserved, OvnChange};

use crate::error::OpError;
use crate::model::Desired;
use crate::ovsdb::{Client, PortSpec};

/// A Northbound connection shared by observe and execute.
pub type NbConn = Arc<Mutex<OvnClient>>;

/// What the engine observed for a container's OVN ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Observed {
    pub nb: NbObserved,
    pub chassis: Chassis,
}

/// Observes NB and the local chassis for `d`'s OVN ports (`ovs` may be `None` when the
/// container has no OVS interface left: only owned NB ports are looked up then).
pub fn observe(
    nb: &mut OvnClient,
    ovs: Option<&mut Client>,
    d: &Desired,
) -> Result<Observed, OpError> {
    let specs = LspSpec::all(&d.id, &d.interfaces);
    let nbo = lsp::observe(nb, d.id.as_str(), &specs)?;
    let chassis = match ovs {
        Some(c) => chassis::observe(c, &specs.iter().map(|s| s.name.clone()).collect::<Vec<_>>())?,
        None => Chassis::default(),
    };
    Ok(Observed { nb: nbo, chassis })
}

/// The OVN changes for `d` (pure): NB changes, then a wait for every port ovn-controller
/// has not installed yet.
pub fn plan(d: &Desired, o: &Observed) -> Result<Vec<OvnChange>, OpError> {
    let specs = LspSpec::all(&d.id, &d.interfaces);
    let owner = d.id.as_str();
    let mut chassis_id = "";
    if let Some(s) = specs.first() {
        let Some(id) = &o.chassis.system_id else {
            return Err(OpError::new(
                format!("bind OVN port {} to this chassis", s.name),
                "this host's Open vSwitch has no external_ids:system-id (the chassis is not set up for OVN: set system-id, ovn-remote, ovn-encap-type and ovn-encap-ip)",
            ));
        };
        chassis_id = id;
    }
    for s in &specs {
        if let Some(m) = chassis::foreign_binding(&o.chassis, owner, &s.name) {
            return Err(OpError::new(
                format!("bind OVN port {} to OVS interface {}", s.name, s.ovs_port),
                m,
            ));
        }
    }
    let mut out = lsp::plan(owner, &specs, &o.nb, chassis_id)?;
    for s in &specs {
        if !o.chassis.installed(&s.name, s.ovs_port.as_str()) {
            out.push(OvnChange::WaitInstalled {
                name: s.name.clone(),
                ovs_port: s.ovs_port.clone(),
            });
        }
    }
    Ok(out)
}

/// `d`'s OVS port specs with the OVN binding keys added to the Interface `external_ids`
/// of every port with `ovs.ovn` (when the chassis is known).
pub fn port_specs(d: &Desired, o: Option<&Observed>) -> Vec<PortSpec> {
    let mut specs = PortSpec::all(&d.id, &d.interfaces);
    let Some(chassis) = o.and_then(|o| o.chassis.system_id.as_deref()) else {
        return specs;
    };
    for l in LspSpec::all(&d.id, &d.interfaces) {
        if let Some(p) = specs.iter_mut().find(|p| p.iface == l.iface) {
            p.external_ids.extend(l.ovs_ids(chassis));
        }
    }
    specs
}

/// Whether `d` has any OVN port.
pub fn wanted(d: &Desired) -> bool {
    !LspSpec::all(&d.id, &d.interfaces).is_empty()
}

/// Runs one change: NB changes through `nb`, waits through the local OVS client.
pub fn execute(
    change: &OvnChange,
    owner: &str,
    nb: Option<&NbConn>,
    ovs: Option<&crate::ovsdb::OvsConn>,
    timeout: Duration,
) -> Result<(), OpError> {
    let poisoned =
        |what: &str| OpError::new(format!("{change}"), format!("{what} connection poisoned"));
    match change {
        OvnChange::WaitInstalled { name, ovs_port } => {
            let ovs =
                ovs.ok_or_else(|| OpError::new(change.to_string(), "no OVS database connection"))?;
            let mut c = ovs.lock().map_err(|_| poisoned("OVS"))?;
            chassis::wait_installed(&mut c, name, ovs_port.as_str(), timeout)
        }
        _ => {
            let nb =
                nb.ok_or_else(|| OpError::new(change.to_string(), "no OVN Northbound connection"))?;
            let mut c = nb.lock().map_err(|_| poisoned("OVN Northbound"))?;
            lsp::apply(&mut c, owner, std::slice::from_ref(change))
        }
    }
}

/// The engine's OVN settings (`--ovn-nb`, `NETPROV_OVN_NB`).
#[derive(Debug, Clone)]
pub struct OvnOptions {
    /// The Northbound database; `None`: [`client::DEFAULT_NB`], used only when it exists
    /// or a container has OVN ports.
    pub nb: Option<OvnEndpoint>,
    /// How long apply waits for `ovn-installed`.
    pub install_timeout: Duration,
}

impl Default for OvnOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl OvnOptions {
    pub const DEFAULT: Self = Self {
        nb: None,
        install_timeout: chassis::INSTALL_TIMEOUT,
    };

    pub fn endpoint(&self) -> OvnEndpoint {
        self.nb
            .clone()
            .unwrap_or_else(|| OvnEndpoint::resolve_nb(None).expect("the default endpoint parses"))
    }

    /// Whether to look for owned NB ports of a container that wants none: an explicit
    /// endpoint, or the default socket exists.
    pub fn look_anyway(&self) -> bool {
        self.nb.is_some() || !self.endpoint().absent()
    }
}
