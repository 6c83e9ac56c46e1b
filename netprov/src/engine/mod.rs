//! The engine facade: plan, apply, check and destroy containers' networks.
//!
//! Sync API over a private single-threaded tokio runtime. One host-netns netlink
//! connection is shared by all containers; each container gets its own connection,
//! opened on a thread inside its netns. `apply_many` runs containers concurrently on
//! that runtime.

pub mod blocking;
pub mod destroy;
pub mod diff;
pub mod execute;
pub mod lock;
pub mod observe;
pub mod plan;

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tracing::Instrument;

use crate::engine::blocking::blocking;
use crate::engine::execute::Exec;
use crate::engine::observe::Observed;
use crate::engine::plan::{Drift, Plan};
use crate::error::OpError;
use crate::kernel::netlink::{MutationCount, Netlink};
use crate::kernel::netns;
use crate::model::Desired;
use crate::ovsdb::{self, Client, Endpoint, PortSpec};

pub use crate::engine::destroy::{DestroyFailed, DestroyReport, DestroyTarget};

/// Engine options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The netns treated as "the host" (veth host ends, bridges); `None` = this
    /// process's own netns.
    pub host_netns: Option<PathBuf>,
    /// Fault injection: stop dead after this many executed steps, without rollback,
    /// like a SIGKILL.
    pub fail_after: Option<usize>,
    /// The OVSDB socket; `None` = the system's (`/run/openvswitch/db.sock`). Only
    /// connected to when a container has OVS interfaces (or on destroy, if it exists).
    pub ovsdb: Option<PathBuf>,
}

/// An OVSDB connection shared between the observe and execute phases of one container
/// (the client is blocking: it is only used from blocking-pool threads).
pub type OvsConn = Arc<Mutex<Client>>;

/// What an apply did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// The plan that was executed (empty: already in sync).
    pub plan: Plan,
    /// Mutating netlink messages (and nftables transactions) sent (0 when nothing
    /// changed).
    pub messages: usize,
    /// Mutating OVSDB transactions sent (0 when nothing changed).
    pub ovsdb_transactions: u64,
    /// Plans executed (0: already in sync; 1: the first plan converged, as it should).
    pub passes: usize,
    /// The plans of the passes after the first, each computed from a fresh observe of
    /// what the previous pass left (the verify loop; see docs/engine.md).
    pub repairs: Vec<Plan>,
}

/// Plans an apply executes at most before it gives up: the first plan, then repairs of
/// whatever a fresh observe still finds different. Each pass only sends what is still
/// different, so a pass that changes nothing cannot repeat.
pub const MAX_PASSES: usize = 3;

/// Containers applied at once by [`Engine::apply_many`]. Each in-flight container holds
/// a netlink socket (with its receive buffers) and its observed state; a bound keeps
/// the memory of `netprov apply` over a thousand files flat, while still overlapping
/// the kernel round trips of many containers.
pub const MAX_IN_FLIGHT: usize = 16;

pub struct Engine {
    rt: tokio::runtime::Runtime,
    host: Netlink,
    /// The host netns, for moving links back on destroy.
    host_ns: File,
    /// Its path, for threads that enter it (nftables).
    host_path: PathBuf,
    opts: Options,
    /// Test hook (see [`Engine::drop_step_for_tests`]); `usize::MAX`: off.
    drop_step: std::sync::atomic::AtomicUsize,
    /// OVN Northbound endpoint and install timeout (see [`Engine::with_ovn`]).
    ovn: crate::ovn::OvnOptions,
    /// Whether destroy waits for the kernel's netns cleanup to delete the host ends
    /// (see [`Engine::set_destroy_wait`]).
    destroy_wait: std::sync::atomic::AtomicBool,
}

impl Engine {
    pub fn new(opts: Options) -> Result<Self, OpError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OpError::io("start async runtime", &e))?;
        let host = Netlink::open(opts.host_netns.as_deref(), rt.handle(), "host netns".into())?;
        // /proc/self is the main thread: its netns is the process's.
        let opened = opts
            .host_netns
            .clone()
            .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
        let host_ns = File::open(&opened)
            .map_err(|e| OpError::io(format!("open host netns {}", opened.display()), &e))?;
        // Threads enter the host netns by this path. Not /proc/self/ns/net: that is
        // whatever netns the main thread is in at the moment, and the main thread enters
        // container netns briefly (see netns::in_netns). The open handle is stable.
        let host_path = match &opts.host_netns {
            Some(p) => p.clone(),
            None => PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&host_ns)
            )),
        };
        Ok(Self {
            rt,
            host,
            host_ns,
            host_path,
            opts,
            drop_step: std::sync::atomic::AtomicUsize::new(usize::MAX),
            ovn: Default::default(),
            destroy_wait: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// `false`: destroy returns once the container's netns is released, without
    /// waiting for the kernel's asynchronous netns cleanup to delete the veths' host
    /// ends (10–20 ms after, see `netns_release`); the report lists them in
    /// `host_ends_left_to_kernel`. The next apply of the same id is correct either
    /// way. Default `true`: destroy returning means nothing is left.
    pub fn set_destroy_wait(&self, wait: bool) {
        self.destroy_wait
            .store(wait, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets the OVN Northbound endpoint and install timeout (docs/ovn.md).
    pub fn with_ovn(mut self, ovn: crate::ovn::OvnOptions) -> Self {
        self.ovn = ovn;
        self
    }

    /// Fault injection for tests: in every pass of every apply, step `n` of the plan is
    /// not sent — a change the kernel silently lost. The verify loop must then repair
    /// it (when the next pass has fewer steps) or report the drift (`n = 0`: never
    /// converges).
    #[doc(hidden)]
    pub fn drop_step_for_tests(&self, n: Option<usize>) {
        self.drop_step.store(
            n.unwrap_or(usize::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn container_conn(&self, d: &Desired) -> Result<Option<Netlink>, OpError> {
        let path = d.netns.path();
        // Never the host netns (also checked at validation, against this process's).
        crate::kernel::netns_owner::refuse_host(&d.id, path, &self.host_path)?;
        if let crate::model::NetnsSpec::Owned { .. } = d.netns {
            // /run/netns/<id> is checked without following a symlink; whether a netns
            // there is netprov's (its owner mark) is decided by the diff.
            if crate::kernel::netns_owner::handle(path)?
                != crate::kernel::netns_owner::Handle::Netns
            {
                return Ok(None);
            }
        }
        if !netns::is_handle(path) {
            return Ok(None);
        }
        Netlink::open(Some(path), self.rt.handle(), format!("netns {}", d.id)).map(Some)
    }

    fn endpoint(&self) -> Endpoint {
        match &self.opts.ovsdb {
            Some(p) => Endpoint::unix(p),
            None => Endpoint::system(),
        }
    }

    /// Observes everything; OVSDB first, so an unreachable ovsdb-server fails the run
    /// before anything is read or changed. Returns the OVSDB connection (if any was
    /// needed) for the execute phase.
    async fn observe(
        &self,
        d: &Desired,
        c: Option<&Netlink>,
    ) -> Result<(Observed, Option<OvsConn>), OpError> {
        self.observe_with(d, c, None).await
    }

    /// [`Self::observe`], reusing the OVSDB connection of an earlier pass if any.
    async fn observe_with(
        &self,
        d: &Desired,
        c: Option<&Netlink>,
        conn: Option<OvsConn>,
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
        let mut o = observe::observe(d, &self.host, &self.host_path, c).await?;
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

    /// What apply would change, changing nothing.
    pub fn plan(&self, d: &Desired) -> Result<Plan, OpError> {
        self.plan_locked(d, lock::Op::Plan)
    }

    /// [`Engine::plan`] under the container's lock, taken for `op`.
    fn plan_locked(&self, d: &Desired, op: lock::Op) -> Result<Plan, OpError> {
        self.rt.block_on(async {
            let _lock = lock::acquire(&d.id, op).await?;
            let c = self.container_conn(d)?;
            let (o, _) = self.observe(d, c.as_ref()).await?;
            crate::engine::diff::diff(d, &o)
        })
    }

    /// One container's apply, under its lock: each container of an `apply_many` holds
    /// only its own lock and never waits for another while holding it, so two
    /// multi-file applies cannot deadlock, whatever their order.
    async fn apply_one(&self, d: &Desired) -> Result<ApplyReport, ApplyError> {
        let _lock = lock::acquire(&d.id, lock::Op::Apply).await?;
        self.apply_traced(d)
            .instrument(tracing::info_span!("apply", id = %d.id))
            .await
    }

    /// Observe, plan, execute; then observe again (read only) and, while something
    /// still differs, plan and execute only that, at most [`MAX_PASSES`] plans in all.
    /// `Ok` means the last observe found nothing to change: the next `check` is clean.
    ///
    /// A ruleset the kernel refuses (see [`ApplyError::Refused`]) ends the apply at
    /// once: its pass is undone as far as it created the netns, and nothing repeats.
    async fn apply_traced(&self, d: &Desired) -> Result<ApplyReport, ApplyError> {
        let mut c = self.container_conn(d)?;
        let count = MutationCount::default();
        let mut ovs: Option<OvsConn> = None;
        let mut ovs_sent = 0;
        let mut plans: Vec<Plan> = Vec::new();
        loop {
            let (o, conn) = self
                .observe_with(d, c.as_ref(), ovs.clone())
                .instrument(tracing::info_span!("observe", id = %d.id, pass = plans.len()))
                .await?;
            ovs = conn;
            let p = tracing::info_span!("plan", id = %d.id)
                .in_scope(|| crate::engine::diff::diff(d, &o))?;
            if p.steps.is_empty() {
                break;
            }
            if plans.len() == MAX_PASSES {
                return Err(not_converged(d, &p).into());
            }
            if let Some(e) = precheck_ruleset(d, &p).await? {
                return Err(e);
            }
            if !plans.is_empty() {
                tracing::warn!(id = %d.id, pass = plans.len() + 1, steps = p.steps.len(),
                    "the kernel still differs after applying; repairing: {}",
                    p.steps.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("; "));
            }
            let before = ovs.as_ref().map_or(0, mutating);
            let mut ex = Exec {
                host: &self.host,
                container: c.take(),
                netns_path: d.netns.path().clone(),
                adopted: matches!(d.netns, crate::model::NetnsSpec::Adopted { .. }),
                host_netns: self.host_path.clone(),
                id: d.id.clone(),
                label: format!("netns {}", d.id),
                rt: self.rt.handle().clone(),
                count: &count,
                ovs: ovs.clone(),
                ovs_specs: crate::ovn::port_specs(d, o.ovn.as_ref()),
                ovn: self.ovn.clone(),
                refused: None,
            };
            // Fault injection (a simulated SIGKILL) applies to the first pass only.
            let fail_after = if plans.is_empty() {
                self.opts.fail_after
            } else {
                None
            };
            let drop = self.drop_step.load(std::sync::atomic::Ordering::Relaxed);
            let r = if drop < p.steps.len() {
                let mut lossy = p.clone();
                lossy.steps.remove(drop);
                execute::run(&mut ex, &lossy, fail_after).await
            } else {
                execute::run(&mut ex, &p, fail_after).await
            };
            c = ex.container.take();
            let refused = ex.refused.take();
            ovs_sent += ovs.as_ref().map_or(0, mutating) - before;
            if let Err(e) = r {
                return Err(match refused {
                    Some(error) => {
                        // Netprov's own socket in the netns goes before the undo: it
                        // is a reference the bulk release of the netns would wait out.
                        std::mem::drop(c.take());
                        self.refused(d, &p, error, e).await
                    }
                    None => ApplyError::Op(e),
                });
            }
            plans.push(p);
        }
        let passes = plans.len();
        let mut plans = plans.into_iter();
        let plan = plans.next().unwrap_or_else(|| Plan {
            id: d.id.to_string(),
            steps: Vec::new(),
        });
        Ok(ApplyReport {
            plan,
            messages: count.get(),
            ovsdb_transactions: ovs_sent,
            passes,
            repairs: plans.collect(),
        })
    }

    /// The kernel refused the ruleset of `d` (nothing of it was committed). When this
    /// apply created the netns, everything it made goes again (a destroy of this
    /// container), so an invalid ruleset leaves nothing behind, as if it had been
    /// rejected before anything was touched.
    async fn refused(
        &self,
        d: &Desired,
        p: &Plan,
        error: crate::nft::NftSyntaxError,
        op: OpError,
    ) -> ApplyError {
        let created = p
            .steps
            .iter()
            .any(|s| matches!(s, crate::engine::plan::Step::CreateNetns { .. }));
        if created {
            if let Err(e) = self.destroy_async(&DestroyTarget::Props(d.clone())).await {
                return ApplyError::Op(OpError::new(
                    format!(
                        "undo the apply of {} after its ruleset was refused ({op})",
                        d.id
                    ),
                    e.to_string(),
                ));
            }
        }
        ApplyError::Refused { error, op }
    }

    /// Makes the kernel match `d`.
    pub fn apply(&self, d: &Desired) -> Result<ApplyReport, OpError> {
        self.rt
            .block_on(self.apply_one(d))
            .map_err(ApplyError::into_op)
    }

    /// Applies several containers concurrently in this process, at most
    /// [`MAX_IN_FLIGHT`] at a time; results come back in the order of `ds`.
    pub fn apply_many(&self, ds: &[Desired]) -> Vec<Result<ApplyReport, OpError>> {
        let mut out = Vec::with_capacity(ds.len());
        self.apply_each(ds, |_, r| out.push(r.map_err(ApplyError::into_op)));
        out
    }

    /// Like [`Engine::apply_many`], but hands each container's result to `f` (with its
    /// index in `ds`, in order) as soon as it is known, keeping none: the memory of
    /// `netprov apply` over a thousand files stays flat.
    pub fn apply_each(
        &self,
        ds: &[Desired],
        f: impl FnMut(usize, Result<ApplyReport, ApplyError>),
    ) {
        self.each(ds, |d| self.apply_one(d), f)
    }

    /// Runs `op` on every item, at most [`MAX_IN_FLIGHT`] at once, and hands each
    /// result to `f` in the order of `items` as soon as it is known.
    fn each<'a, T, R, Fut>(
        &self,
        items: &'a [T],
        op: impl Fn(&'a T) -> Fut,
        mut f: impl FnMut(usize, R),
    ) where
        Fut: std::future::Future<Output = R>,
    {
        use futures::stream::{self, StreamExt};
        self.rt.block_on(
            stream::iter(items.iter().map(op))
                .buffered(MAX_IN_FLIGHT)
                .enumerate()
                .for_each(|(i, r)| {
                    f(i, r);
                    std::future::ready(())
                }),
        )
    }

    /// Applies the containers for which `keep` (asked under each container's lock, so
    /// a concurrent destroy or apply is seen) returns true, concurrently as
    /// [`Engine::apply_many`]; `None` for a container `keep` skipped. Used by
    /// `reconcile`, which heals only networks that exist: deciding before the lock
    /// would let it re-create a network that a container's stop destroyed meanwhile.
    pub fn apply_many_if(
        &self,
        ds: &[Desired],
        keep: impl Fn(&Desired) -> bool,
    ) -> Vec<Option<Result<ApplyReport, OpError>>> {
        use futures::stream::{self, StreamExt};
        let keep = &keep;
        self.rt.block_on(
            stream::iter(ds.iter().map(|d| async move {
                let _lock = match lock::acquire(&d.id, lock::Op::Apply).await {
                    Ok(l) => l,
                    Err(e) => return Some(Err(e)),
                };
                if !keep(d) {
                    return None;
                }
                Some(
                    self.apply_traced(d)
                        .instrument(tracing::info_span!("apply", id = %d.id))
                        .await
                        .map_err(ApplyError::into_op),
                )
            }))
            .buffered(MAX_IN_FLIGHT)
            .collect(),
        )
    }

    /// The differences between the kernel and `d`; empty when in sync.
    pub fn check(&self, d: &Desired) -> Result<Vec<Drift>, OpError> {
        Ok(self
            .plan_locked(d, lock::Op::Check)?
            .steps
            .iter()
            .map(|s| s.as_drift())
            .collect())
    }

    /// Netlink requests (reads and writes) sent in the host netns so far.
    pub fn host_requests(&self) -> usize {
        self.host.requests()
    }

    /// Destroys `t` when `still` (asked under its lock) returns true; `Ok(None)` when
    /// it did not. `gc` uses it so that a container started between its scan and the
    /// removal (props file installed, machine registered) is left alone. `host_links`
    /// (found by a host-wide scan) are deleted too if they are left and still carry the
    /// container's alias: destroy by id finds host ends only through the container's
    /// netns, which may be gone from `/run/netns` while a process keeps it alive.
    pub fn destroy_if(
        &self,
        t: &DestroyTarget,
        still: impl FnOnce() -> bool,
        host_links: &[String],
    ) -> Result<Option<DestroyReport>, DestroyFailed> {
        self.rt.block_on(async {
            let _lock = lock::acquire(t.id(), lock::Op::Destroy)
                .await
                .map_err(|e| DestroyFailed::new(t.id(), e))?;
            if !still() {
                return Ok(None);
            }
            // The same destroy as `destroy` (OVN ports included), then the host ends.
            let r = self.destroy_async(t).await;
            let (mut rep, mut fails) = match r {
                Ok(rep) => (rep, Vec::new()),
                Err(DestroyFailed { report, failures }) => (*report, failures),
            };
            fails.extend(
                crate::inventory::delete_host_links(&self.host, t.id(), host_links, &mut rep).await,
            );
            if fails.is_empty() {
                Ok(Some(rep))
            } else {
                Err(DestroyFailed {
                    report: Box::new(rep),
                    failures: fails,
                })
            }
        })
    }

    /// The host netns connection, its path, the runtime and the OVSDB endpoint, for
    /// the host-wide commands (`inventory.rs`).
    pub(crate) fn parts(
        &self,
    ) -> (
        &Netlink,
        &std::path::Path,
        &tokio::runtime::Runtime,
        Endpoint,
    ) {
        (&self.host, &self.host_path, &self.rt, self.endpoint())
    }

    /// Removes everything netprov owns for the target, under its lock. Best effort:
    /// a failing part does not stop the others; the error lists every failure.
    pub fn destroy(&self, t: &DestroyTarget) -> Result<DestroyReport, DestroyFailed> {
        self.rt.block_on(self.destroy_locked(t))
    }

    /// Destroys several targets concurrently (at most [`MAX_IN_FLIGHT`] at once),
    /// handing each result to `f` in the order of `ts`: most of a destroy is waiting for
    /// the kernel's netns cleanup (see `netns_release`), which then overlaps — the
    /// kernel even cleans up namespaces released together in one batch.
    /// Each target is destroyed under its lock, as [`Engine::destroy`].
    pub fn destroy_each(
        &self,
        ts: &[DestroyTarget],
        f: impl FnMut(usize, Result<DestroyReport, DestroyFailed>),
    ) {
        self.each(ts, |t| self.destroy_locked(t), f)
    }

    async fn destroy_locked(&self, t: &DestroyTarget) -> Result<DestroyReport, DestroyFailed> {
        let _lock = lock::acquire(t.id(), lock::Op::Destroy)
            .await
            .map_err(|e| DestroyFailed::new(t.id(), e))?;
        self.destroy_async(t).await
    }

    /// The destroy itself, without the lock (an apply undoing itself holds it).
    /// OVN's logical ports first, then everything else (see `destroy::destroy`).
    async fn destroy_async(&self, t: &DestroyTarget) -> Result<DestroyReport, DestroyFailed> {
        let ovn = self.destroy_ovn(t).await;
        let r = crate::engine::destroy::destroy(
            t,
            &self.host,
            &self.host_ns,
            &self.host_path,
            &self.endpoint(),
            self.rt.handle(),
            self.destroy_wait.load(std::sync::atomic::Ordering::Relaxed),
        )
        .await;
        match (r, ovn) {
            (Ok(mut rep), Ok(names)) => {
                rep.ovn_ports_removed = names;
                Ok(rep)
            }
            (Ok(rep), Err(e)) => Err(DestroyFailed {
                report: Box::new(rep),
                failures: vec![e],
            }),
            (Err(mut f), Ok(names)) => {
                f.report.ovn_ports_removed = names;
                Err(f)
            }
            (Err(mut f), Err(e)) => {
                f.failures.insert(0, e);
                Err(f)
            }
        }
    }
}

impl Engine {
    /// Removes the container's logical switch ports from Northbound: when its props
    /// name OVN ports (an unreachable database is then an error), or when a Northbound
    /// database is configured or present here.
    async fn destroy_ovn(&self, t: &DestroyTarget) -> Result<Vec<String>, OpError> {
        let wanted = matches!(t, DestroyTarget::Props(d) if crate::ovn::wanted(d));
        if !wanted && !self.ovn.look_anyway() {
            return Ok(Vec::new());
        }
        let (ep, id) = (self.ovn.endpoint(), t.id().to_string());
        blocking("remove OVN logical ports", move || {
            let mut nb = match crate::ovn::OvnClient::connect(&ep, crate::ovn::client::NB_DB) {
                Ok(nb) => nb,
                Err(_) if !wanted => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            crate::ovn::lsp::destroy(&mut nb, &id)
        })
        .await
    }
}

/// The error of an apply whose plans did not converge: the remaining differences, in
/// the words of `check`, one per line.
fn not_converged(d: &Desired, p: &Plan) -> OpError {
    let drift: Vec<String> = p
        .steps
        .iter()
        .map(|s| format!("{}: {}", d.id, s.as_drift()))
        .collect();
    OpError::new(
        format!("apply {}", d.id),
        format!(
            "the kernel still differs from the props after {MAX_PASSES} passes:\n{}",
            drift.join("\n")
        ),
    )
}

fn mutating(c: &OvsConn) -> u64 {
    c.lock()
        .map(|c| c.mutating_transactions())
        .unwrap_or_default()
}

/// Why an apply failed.
#[derive(Debug, Clone)]
pub enum ApplyError {
    /// An operation failed (exit 1).
    Op(OpError),
    /// The kernel refused the container's nftables ruleset: invalid input (exit 2).
    /// Nothing of the ruleset was committed, and a netns this apply created was removed
    /// again with everything in it.
    Refused {
        error: crate::nft::NftSyntaxError,
        op: OpError,
    },
}

impl ApplyError {
    pub fn into_op(self) -> OpError {
        match self {
            ApplyError::Op(e) | ApplyError::Refused { op: e, .. } => e,
        }
    }
}

impl From<OpError> for ApplyError {
    fn from(e: OpError) -> Self {
        ApplyError::Op(e)
    }
}

/// A ruleset about to be loaded into a netns that exists already (a reload, or an
/// adopted netns) is dry-run first, in a scratch netns, so an invalid one changes
/// nothing at all — neither the ruleset nor the other steps of the plan. Into a netns
/// the plan creates, the load itself is the check (see [`Engine::refused`]).
async fn precheck_ruleset(d: &Desired, p: &Plan) -> Result<Option<ApplyError>, OpError> {
    use crate::engine::plan::Step;
    let loads = p
        .steps
        .iter()
        .any(|s| matches!(s, Step::LoadRuleset { .. }));
    let creates = p
        .steps
        .iter()
        .any(|s| matches!(s, Step::CreateNetns { .. }));
    let Some(r) = d.nft.clone().filter(|_| loads && !creates) else {
        return Ok(None);
    };
    let names = crate::nft::ruleset::placeholder_names(d, &r);
    let op = format!("check nftables ruleset of {}", d.id);
    let res = blocking(&op, move || {
        Ok(crate::nft::ruleset::check_syntax_with_interfaces(
            &r.text, &names,
        ))
    })
    .await?;
    match res {
        Ok(()) => Ok(None),
        Err(crate::nft::CheckError::Op(e)) => Err(e),
        Err(crate::nft::CheckError::Syntax(error)) => Ok(Some(ApplyError::Refused {
            op: OpError::new(
                format!("load nftables ruleset in netns {}", d.id),
                error.to_string(),
            ),
            error,
        })),
    }
}
