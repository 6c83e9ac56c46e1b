//! Execute: run a [`Plan`]'s steps in order against the kernel.
//!
//! No rollback. Every step is idempotent in effect and every link is marked at birth
//! (see [`crate::kernel::link`]), so a run that stops part-way — an error, a SIGKILL, or the
//! `fail_after` fault-injection hook — leaves state from which the next apply
//! converges (it re-observes and plans only what is still missing) and from which
//! destroy removes everything by its marks.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;

use tracing::Instrument;

use crate::engine::blocking::blocking;
use crate::engine::plan::{At, Plan, Step};
use crate::error::OpError;
use crate::kernel::address;
use crate::kernel::link::{self, LinkChange, LinkState};
use crate::kernel::netlink::{MutationCount, Netlink};
use crate::kernel::netns;
use crate::kernel::route;
use crate::kernel::sysctl;
use crate::model::ContainerId;
use crate::nft;

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
    pub rt: tokio::runtime::Handle,
    pub count: &'a MutationCount,
    /// The OVSDB connection, when the container has OVS interfaces.
    pub ovs: Option<crate::engine::OvsConn>,
    /// The container's OVS ports (for re-converging after a lost race).
    pub ovs_specs: Vec<crate::ovsdb::PortSpec>,
    /// Set when the kernel refused the container's ruleset (the load is its syntax
    /// check, see `nft::ruleset::load_checked`): the input was invalid.
    pub refused: Option<nft::NftSyntaxError>,
    /// OVN Northbound endpoint and install timeout.
    pub ovn: crate::ovn::OvnOptions,
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

    async fn link(&self, at: &At, name: &str, op: &str) -> Result<LinkState, OpError> {
        let nl = self.nl(at)?;
        match nl.get(link::get_by_name(name)).await {
            Ok(Some(RouteNetlinkMessage::NewLink(m))) => Ok(LinkState::parse(&m)),
            Ok(_) => Err(OpError::errno(op.to_owned(), libc::ENODEV)),
            Err(e) => Err(OpError::errno(op.to_owned(), e)),
        }
    }

    async fn send(
        &self,
        at: &At,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &str,
    ) -> Result<(), OpError> {
        self.nl(at)?
            .mutate(msg, flags, self.count)
            .await
            .map_err(|e| OpError::errno(op.to_owned(), e))
    }

    fn open_ns(&self, op: &str) -> Result<File, OpError> {
        File::open(&self.netns_path).map_err(|e| OpError::io(op.to_owned(), &e))
    }

    async fn set_alias(&self, at: &At, name: &str, alias: &str, op: &str) -> Result<(), OpError> {
        let l = self.link(at, name, op).await?;
        let c = LinkChange {
            alias: Some(alias.to_owned()),
            ..Default::default()
        };
        self.send(at, link::set(l.index, &c), 0, op).await
    }

    /// Deletes a link; one already gone (with its peer or parent) is success.
    async fn delete_link(&self, at: &At, name: &str, op: &str) -> Result<(), OpError> {
        let l = match self.link(at, name, op).await {
            Err(e) if e.errno == Some(libc::ENODEV) => return Ok(()),
            l => l?,
        };
        match self.send(at, link::delete(l.index), 0, op).await {
            Err(e) if e.errno == Some(libc::ENODEV) => Ok(()),
            // A kernel-datapath OVS internal device cannot be deleted over rtnetlink;
            // it goes with its port (removed or re-created by the OVS step).
            Err(e)
                if e.errno == Some(libc::EOPNOTSUPP)
                    && !matches!(l.kind, link::Kind::Veth | link::Kind::Macvlan) =>
            {
                Ok(())
            }
            r => r,
        }
    }

    /// Runs one step; its Display is the operation named in any error.
    pub async fn step(&mut self, s: &Step) -> Result<(), OpError> {
        let op = s.to_string();
        let op = op.as_str();
        match s {
            Step::CreateNetns { path, .. } => {
                netns::create_handle(path, &self.id)?;
                self.open_container()?;
            }
            Step::CreateVeth {
                host,
                peer,
                netns,
                host_alias,
                peer_alias,
                mtu,
                mac,
            } => {
                let ns = self.open_ns(op)?;
                let msg = link::new_veth(host, peer, ns.as_raw_fd(), *mtu, *mac);
                self.send(&At::Host, msg, NLM_F_CREATE | NLM_F_EXCL, op)
                    .await?;
                drop(ns);
                // The kernel ignores IFLA_IFALIAS at creation: mark both ends now. Until
                // then the netprov group marks them (see kernel/link.rs).
                self.set_alias(&At::Host, host, host_alias, op).await?;
                self.set_alias(&At::Netns(netns.clone()), peer, peer_alias, op)
                    .await?;
            }
            Step::DeleteLink { at, link: name } | Step::RemoveLink { at, link: name } => {
                self.delete_link(at, name, op).await?;
            }
            Step::DeleteDeadOvsDevice { netns, link: name } => {
                self.delete_link(&At::Netns(netns.clone()), name, op)
                    .await?;
            }
            Step::Release { link: name } => {
                let l = self.link(&At::Host, name, op).await?;
                // IFLA_MASTER 0: leave whatever bridge it is a port of.
                let c = LinkChange {
                    controller: Some(0),
                    ..Default::default()
                };
                self.send(&At::Host, link::set(l.index, &c), 0, op).await?;
            }
            Step::MarkLink {
                at,
                link: name,
                alias,
            } => {
                self.set_alias(at, name, alias, op).await?;
            }
            Step::MoveLinkIn {
                link: name, alias, ..
            } => {
                let l = self.link(&At::Host, name, op).await?;
                let ns = self.open_ns(op)?;
                // One message: the kernel moves the link first, then applies the alias
                // in its new netns, so a moved OVS port is never unmarked.
                let c = LinkChange {
                    netns_fd: Some(ns.as_raw_fd()),
                    alias: alias.clone(),
                    ..Default::default()
                };
                self.send(&At::Host, link::set(l.index, &c), 0, op).await?;
            }
            Step::CreateMacvlan {
                link: name,
                parent,
                netns,
                alias,
                mac,
            } => {
                let at = At::Netns(netns.clone());
                let p = self.link(&at, parent, op).await?;
                self.send(
                    &at,
                    link::new_macvlan(name, p.index, *mac),
                    NLM_F_CREATE | NLM_F_EXCL,
                    op,
                )
                .await?;
                // addrgenmode and alias are rejected/ignored at creation; set both before
                // the link goes up, so it never gets an EUI-64 link-local address.
                let l = self.link(&at, name, op).await?;
                let c = LinkChange {
                    alias: Some(alias.clone()),
                    addrgen_random: true,
                    ..Default::default()
                };
                self.send(&at, link::set(l.index, &c), 0, op).await?;
            }
            Step::SetLink {
                at,
                link: name,
                mtu,
                mac,
            } => {
                let l = self.link(at, name, op).await?;
                let c = LinkChange {
                    mtu: *mtu,
                    mac: *mac,
                    ..Default::default()
                };
                self.send(at, link::set(l.index, &c), 0, op).await?;
            }
            Step::Enslave { link: name, bridge } => {
                let br = self.link(&At::Host, bridge, op).await?;
                let l = self.link(&At::Host, name, op).await?;
                let c = LinkChange {
                    controller: Some(br.index),
                    ..Default::default()
                };
                self.send(&At::Host, link::set(l.index, &c), 0, op).await?;
            }
            Step::LinkUp { at, link: name } => {
                let l = self.link(at, name, op).await?;
                let c = LinkChange {
                    up: true,
                    ..Default::default()
                };
                self.send(at, link::set(l.index, &c), 0, op).await?;
            }
            Step::AddAddress {
                at,
                link: name,
                addr,
            } => {
                let l = self.link(at, name, op).await?;
                self.send(
                    at,
                    address::add(l.index, addr),
                    NLM_F_CREATE | NLM_F_EXCL,
                    op,
                )
                .await?;
            }
            Step::ReAddAddress {
                at,
                link: name,
                addr,
            } => {
                let l = self.link(at, name, op).await?;
                match self
                    .send(
                        at,
                        address::add(l.index, addr),
                        NLM_F_CREATE | NLM_F_EXCL,
                        op,
                    )
                    .await
                {
                    Err(e) if e.errno == Some(libc::EEXIST) => {}
                    r => r?,
                }
            }
            Step::DelAddress {
                at,
                link: name,
                addr,
            } => {
                // Already gone is success: the link went (ENODEV), or the kernel took
                // the address with another one (a primary takes its secondaries).
                let l = match self.link(at, name, op).await {
                    Err(e) if e.errno == Some(libc::ENODEV) => return Ok(()),
                    l => l?,
                };
                match self.send(at, address::delete(l.index, addr), 0, op).await {
                    Err(e) if e.errno == Some(libc::EADDRNOTAVAIL) => {}
                    r => r?,
                }
            }
            Step::ReplaceRoute { at, route: r, .. } => {
                let oif = match &r.dev {
                    Some(d) => Some(self.link(at, d, op).await?.index),
                    None => None,
                };
                self.send(at, route::replace(r, oif), NLM_F_CREATE | NLM_F_REPLACE, op)
                    .await?;
            }
            Step::DelRoute { at, route: r } => {
                let oif = match &r.dev {
                    Some(d) => self.link(at, d, op).await.ok().map(|l| l.index),
                    None => None,
                };
                // ESRCH: already gone — the kernel flushes a link's IPv4 routes with its
                // last IPv4 address, and all its routes with the link.
                match self.send(at, route::delete(r, oif), 0, op).await {
                    Err(e) if e.errno == Some(libc::ESRCH) => {}
                    r => r?,
                }
            }
            Step::WriteSysctl {
                netns: id,
                key,
                path,
                value,
                ..
            } => {
                let (key, path, value, label) = (
                    key.clone(),
                    path.clone(),
                    value.clone(),
                    format!("netns {id}"),
                );
                netns::in_netns_async(&self.netns_path, move || {
                    sysctl::ensure(&key, &path, &value, &label)
                })
                .await??;
            }
            Step::OvsPort { change } => self.ovs(vec![change.clone()]).await?,
            Step::OvnPort { change } => {
                let (c, id, ovn, ovs) = (
                    change.clone(),
                    self.id.to_string(),
                    self.ovn.clone(),
                    self.ovs.clone(),
                );
                blocking(op, move || {
                    let nb = match &c {
                        crate::ovn::OvnChange::WaitInstalled { .. } => None,
                        _ => Some(std::sync::Arc::new(std::sync::Mutex::new(
                            crate::ovn::OvnClient::connect(
                                &ovn.endpoint(),
                                crate::ovn::client::NB_DB,
                            )?,
                        ))),
                    };
                    crate::ovn::execute(&c, &id, nb.as_ref(), ovs.as_ref(), ovn.install_timeout)
                })
                .await?;
            }
            // nftables: one transaction each, counted as one mutating message.
            Step::LoadRuleset { ruleset, .. } => {
                let (ns, r) = (self.netns_path.clone(), ruleset.clone());
                self.count.bump();
                if self.adopted {
                    let id = self.id.to_string();
                    blocking(op, move || nft::ruleset::load_adopted(&ns, &r, &id)).await?;
                } else {
                    // Inline, not on the blocking pool: into a fresh netns one small
                    // transaction with nothing queued for destruction (see
                    // nft::ruleset::load_checked) costs less than a thread hand-off.
                    match nft::ruleset::load_checked(&ns, &r) {
                        Ok(()) => {}
                        Err(nft::CheckError::Op(e)) => return Err(e),
                        Err(nft::CheckError::Syntax(e)) => {
                            let err = OpError::new(op, e.to_string());
                            self.refused = Some(e);
                            return Err(err);
                        }
                    }
                }
            }
            Step::RemoveRuleset { .. } => {
                let ns = self.netns_path.clone();
                self.count.bump();
                if self.adopted {
                    let id = self.id.to_string();
                    let removed =
                        blocking(op, move || nft::ruleset::remove_adopted(&ns, &id)).await?;
                    if !removed {
                        return Err(OpError::new(
                            op,
                            "the ruleset netprov manages in this netns is another container's",
                        ));
                    }
                } else {
                    blocking(op, move || nft::ruleset::remove(&ns)).await?;
                }
            }
            Step::InstallHostRules { spec, .. } => {
                let (hp, spec) = (self.host_netns.clone(), spec.clone());
                self.count.bump();
                blocking(op, move || nft::host::apply_host(&hp, &spec)).await?;
            }
            Step::RemoveHostRules { .. } => {
                let hp = self.host_netns.clone();
                let id = self.id.clone();
                self.count.bump();
                blocking(op, move || nft::host::remove_host(&hp, &id)).await?;
            }
        }
        Ok(())
    }

    /// Runs all of a plan's OVS changes: one transaction (removals first, in their own),
    /// then waits until ovs-vswitchd applied them, so an internal port's device exists
    /// before the next phase moves it. When another writer changed the rows since they
    /// were observed (a failed `wait`), it re-observes and converges with retries.
    async fn ovs(&self, changes: Vec<crate::ovsdb::OvsChange>) -> Result<(), OpError> {
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

    /// Opens the container connection (after the netns exists).
    pub fn open_container(&mut self) -> Result<(), OpError> {
        if self.container.is_none() {
            let nl = Netlink::open(Some(&self.netns_path), &self.rt, self.label.clone())?;
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
        if let Step::OvsPort { .. } = s {
            // The OVS steps are adjacent (one phase) and go as one transaction.
            if !ovs_done {
                ovs_done = true;
                let all = steps
                    .iter()
                    .filter_map(|s| match s {
                        Step::OvsPort { change } => Some(change.clone()),
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
