//! Execute: run a [`Plan`]'s steps in order against the kernel.
//!
//! No rollback. Every step is idempotent in effect and every link is marked at birth
//! (see [`crate::kernel::link`]), so a run that stops part-way — an error, a SIGKILL, or the
//! `fail_after` fault-injection hook — leaves state from which the next apply
//! converges (it re-observes and plans only what is still missing) and from which
//! destroy removes everything by its marks.

mod address;
mod link;
mod nft;
mod ovs;
mod route;

use std::fs::File;
use std::path::PathBuf;

use netlink_packet_route::RouteNetlinkMessage;

use tracing::Instrument;

use crate::engine::plan::{At, NetnsStep, OvsStep, Plan, Step, SysctlStep};
use crate::error::OpError;
use crate::kernel::link::{get_by_name, LinkState};
use crate::kernel::netlink::{MutationCount, Netlink};
use crate::kernel::netns;
use crate::kernel::sysctl;
use crate::model::ContainerId;

/// The operation an error of a step names: the step itself ("add address 10.0.0.2/31 to
/// lan in netns web2"), formatted only when an error needs it. Formatting every step
/// up front was ~44,000 instructions, 4 % of a cold apply's own (callgrind,
/// docs/benchmarks.md round 9).
#[derive(Clone, Copy)]
pub(crate) struct Op<'a>(&'a Step);

impl std::fmt::Display for Op<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Everything a step needs.
pub struct Exec<'a> {
    pub host: &'a Netlink,
    /// Opened when the container netns exists (possibly by a step of this plan).
    pub container: Option<Netlink>,
    pub netns_path: PathBuf,
    /// The netns is adopted (`netns_path`): netprov replaces only the nftables tables it
    /// loaded there, never the whole ruleset.
    pub adopted: bool,
    /// The host netns (for the container's host nftables table).
    pub host_netns: PathBuf,
    /// "netns <id>".
    pub label: String,
    pub id: ContainerId,
    pub count: &'a MutationCount,
    /// The OVSDB connection, when the container has OVS interfaces.
    pub ovs: Option<crate::ovsdb::OvsConn>,
    /// The container's OVS ports (for re-converging after a lost race).
    pub ovs_specs: Vec<crate::ovsdb::PortSpec>,
    /// Set when the kernel refused the container's ruleset (the load is its syntax
    /// check, see `nft::ruleset::load_checked`): the input was invalid.
    pub refused: Option<crate::nft::NftSyntaxError>,
    /// OVN Northbound endpoint and install timeout.
    pub ovn: crate::ovn::OvnOptions,
    /// Interface indexes looked up by the address and route steps of this pass (or
    /// echoed by the kernel when a link is made), so a link with two addresses and two
    /// routes is asked for once, not four times. Any step that moves or deletes links,
    /// or makes or replaces a netns or OVS ports, empties it (those phases come first);
    /// making a link or changing its settings leaves other links' indexes as they were.
    pub indexes: std::cell::RefCell<Vec<(At, String, u32)>>,
}

impl Exec<'_> {
    fn nl(&self, at: &At) -> Result<&Netlink, OpError> {
        match at {
            At::Host => Ok(self.host),
            At::Netns(id) => self
                .container
                .as_ref()
                .ok_or_else(|| OpError::new(format!("open netns {id}"), "netns does not exist")),
        }
    }

    async fn link(&self, at: &At, name: &str, op: Op<'_>) -> Result<LinkState, OpError> {
        let nl = self.nl(at)?;
        match nl.get_link(get_by_name(name)).await {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(OpError::errno(op.to_string(), libc::ENODEV)),
            Err(e) => Err(OpError::errno(op.to_string(), e)),
        }
    }

    /// The index of link `name` (see [`Exec::indexes`]).
    async fn index(&self, at: &At, name: &str, op: Op<'_>) -> Result<u32, OpError> {
        let known = self
            .indexes
            .borrow()
            .iter()
            .find(|(a, n, _)| a == at && n == name)
            .map(|e| e.2);
        if let Some(i) = known {
            return Ok(i);
        }
        let i = self.link(at, name, op).await?.index;
        self.indexes
            .borrow_mut()
            .push((at.clone(), name.to_owned(), i));
        Ok(i)
    }

    async fn send(
        &self,
        at: &At,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: Op<'_>,
    ) -> Result<(), OpError> {
        self.nl(at)?
            .mutate(msg, flags, self.count)
            .await
            .map_err(|e| OpError::errno(op.to_string(), e))
    }

    fn open_ns(&self, op: Op<'_>) -> Result<std::rc::Rc<File>, OpError> {
        netns::handle_at(&self.netns_path).map_err(|e| OpError::io(op.to_string(), &e))
    }

    /// Runs one step; its Display is the operation named in any error.
    pub async fn step(&mut self, s: &Step) -> Result<(), OpError> {
        let op = Op(s);
        if match s {
            Step::Netns(_) | Step::Ovs(_) => true,
            Step::Link(l) => l.changes_indexes(),
            _ => false,
        } {
            self.indexes.borrow_mut().clear();
        }
        match s {
            Step::Netns(NetnsStep::CreateNetns { path, .. }) => {
                netns::create_handle(path, &self.id)?;
                self.open_container()
            }
            Step::Link(l) => self.link_step(l, op).await,
            Step::Address(a) => self.address_step(a, op).await,
            Step::Route(r) => self.route_step(r, op).await,
            Step::Sysctl(s) => self.write_sysctl(s).await,
            Step::Ovs(o) => self.ovs(vec![o.change().clone()]).await,
            Step::Ovn(o) => self.ovn(o.change(), op).await,
            Step::Nft(n) => self.nft_step(n, op).await,
        }
    }

    /// A sysctl of the container netns, written from a thread inside it.
    async fn write_sysctl(&self, s: &SysctlStep) -> Result<(), OpError> {
        let SysctlStep::WriteSysctl {
            netns: id,
            key,
            path,
            value,
            ..
        } = s;
        let (key, path, value, label) = (
            key.clone(),
            path.clone(),
            value.clone(),
            format!("netns {id}"),
        );
        let sys = crate::kernel::procsys::for_netns_path(&self.netns_path)?;
        netns::in_netns_async(&self.netns_path, move || {
            sysctl::ensure(&sys, &key, &path, &value, &label)
        })
        .await??;
        Ok(())
    }

    /// Opens the container connection (after the netns exists).
    pub fn open_container(&mut self) -> Result<(), OpError> {
        if self.container.is_none() {
            // The netns made ahead comes with a socket in it (kernel::netns_ahead).
            let nl = match crate::kernel::netns_ahead::conn_at(&self.netns_path) {
                Some(nl) => nl.labelled(self.label.clone()),
                None => Netlink::open(Some(&self.netns_path), self.label.clone())?,
            };
            self.container = Some(nl);
        }
        Ok(())
    }
}

/// Runs `plan` in order; stops at the first error. With `fail_after = Some(n)` it
/// stops dead after `n` steps, as if killed (fault injection for tests).
pub async fn run(ex: &mut Exec<'_>, plan: &Plan, fail_after: Option<usize>) -> Result<(), OpError> {
    let mut n = 0;
    // One tracing span per phase (`-v` prints each with its duration), so a run's time
    // can be read per phase: netns, host links, OVS ports, addresses, routes, nft...
    for steps in plan.steps.chunk_by(|a, b| a.phase() == b.phase()) {
        let span = tracing::info_span!("phase", id = %plan.id, phase = ?steps[0].phase());
        run_phase(ex, plan, steps, &mut n, fail_after)
            .instrument(span)
            .await?;
    }
    Ok(())
}

async fn run_phase(
    ex: &mut Exec<'_>,
    plan: &Plan,
    steps: &[Step],
    n: &mut usize,
    fail_after: Option<usize>,
) -> Result<(), OpError> {
    let mut ovs_done = false;
    for s in steps {
        if fail_after == Some(*n) {
            return Err(OpError::new(
                format!("apply {}", plan.id),
                format!("stopped after {n} steps (fault injection)"),
            ));
        }
        *n += 1;
        if let Step::Ovs(OvsStep::OvsPort { .. }) = s {
            // The OVS steps are adjacent (one phase) and go as one transaction.
            if !ovs_done {
                ovs_done = true;
                let all = steps
                    .iter()
                    .filter_map(|s| match s {
                        Step::Ovs(OvsStep::OvsPort { change }) => Some(change.clone()),
                        _ => None,
                    })
                    .collect();
                ex.ovs(all).await?;
            }
            continue;
        }
        ex.step(s).await?;
    }
    Ok(())
}
