//! Apply: observe, plan, execute, then verify by observing again and repairing what
//! still differs (at most [`MAX_PASSES`] plans), under the container's lock.

use serde::Serialize;
use tracing::Instrument;

use crate::blocking::blocking;
use crate::engine::destroy::DestroyTarget;
use crate::engine::execute::{self, Exec};
use crate::engine::lock;
use crate::engine::observe::{FreshHostRoutes, Observed};
use crate::engine::plan::{At, LinkStep, Plan, RouteStep, Step};
use crate::engine::runtime::Engine;
use crate::error::OpError;
use crate::kernel::netlink::{MutationCount, Netlink};
use crate::model::Desired;
use crate::nft::host::{HostExpected, HostSpec};
use crate::ovsdb::OvsConn;

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

/// Adds to `fresh` the host links `p` created and the routes it added through them (the
/// verifying observe looks those routes up one by one: see [`FreshHostRoutes`]). A link
/// a route was deleted from is left out: it is listed.
fn record_fresh(p: &Plan, fresh: &mut FreshHostRoutes) {
    for s in &p.steps {
        if let Step::Link(LinkStep::CreateVeth { host, .. }) = s {
            fresh.insert(host.to_string(), Vec::new());
        }
    }
    let mut listed = Vec::new();
    for s in &p.steps {
        let Step::Route(r) = s else { continue };
        match r {
            RouteStep::ReplaceRoute {
                at: At::Host,
                route,
                ..
            } => {
                if let Some(rs) = route.dev.as_ref().and_then(|l| fresh.get_mut(l)) {
                    rs.retain(|x| !x.same_key(route));
                    rs.push(route.clone());
                }
            }
            RouteStep::DelRoute {
                at: At::Host,
                route,
            } => listed.extend(route.dev.clone()),
            _ => {}
        }
    }
    for l in listed {
        fresh.remove(&l);
    }
}

/// Plans an apply executes at most before it gives up: the first plan, then repairs of
/// whatever a fresh observe still finds different. Each pass only sends what is still
/// different, so a pass that changes nothing cannot repeat.
pub const MAX_PASSES: usize = 3;

impl Engine {
    /// One container's apply, under its lock: each container of an `apply_many` holds
    /// only its own lock and never waits for another while holding it, so two
    /// multi-file applies cannot deadlock, whatever their order.
    pub(super) async fn apply_one(&self, d: &Desired) -> Result<ApplyReport, ApplyError> {
        let lock = lock::acquire(&d.id, lock::Op::Apply).await?;
        self.apply_holding(d, lock).await
    }

    /// [`Self::apply_traced`] under `lock`, whose file stays when the apply succeeded
    /// (the container exists; see engine/lock.rs).
    pub(super) async fn apply_holding(
        &self,
        d: &Desired,
        mut lock: lock::IdLock,
    ) -> Result<ApplyReport, ApplyError> {
        let r = self
            .apply_traced(d)
            .instrument(tracing::info_span!("apply", id = %d.id))
            .await;
        if r.is_ok() {
            lock.keep_file();
        }
        r
    }

    /// Observe, plan, execute; then observe again (read only) and, while something
    /// still differs, plan and execute only that, at most [`MAX_PASSES`] plans in all.
    /// `Ok` means the last observe found nothing to change: the next `check` is clean.
    ///
    /// A ruleset the kernel refuses (see [`ApplyError::Refused`]) ends the apply at
    /// once: its pass is undone as far as it created the netns, and nothing repeats.
    pub(super) async fn apply_traced(&self, d: &Desired) -> Result<ApplyReport, ApplyError> {
        let mut c = self.container_conn(d)?;
        let count = MutationCount::default();
        let mut ovs: Option<OvsConn> = None;
        let mut ovs_sent = 0;
        let mut plans: Vec<Plan> = Vec::new();
        let expected = HostExpected::new(HostSpec::from_desired(d));
        let mut fresh = FreshHostRoutes::new();
        loop {
            let (o, conn) = self
                .observe_with(d, c.as_ref(), ovs.clone(), &expected, &fresh)
                .instrument(tracing::info_span!("observe", id = %d.id, pass = plans.len()))
                .await?;
            ovs = conn;
            let p = tracing::info_span!("plan", id = %d.id)
                .in_scope(|| crate::engine::diff::diff_with(d, &o, &expected))?;
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
            let mut ex = self.exec(d, c.take(), &count, ovs.clone(), &o);
            let r = self.run_pass(&mut ex, &p, plans.is_empty()).await;
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
            record_fresh(&p, &mut fresh);
            plans.push(p);
        }
        let passes = plans.len();
        let mut plans = plans.into_iter();
        let plan = plans.next().unwrap_or_else(|| Plan {
            id: d.id.clone(),
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

    /// What the executor of one pass needs: the connections, the container's paths.
    fn exec<'a>(
        &'a self,
        d: &Desired,
        c: Option<Netlink>,
        count: &'a MutationCount,
        ovs: Option<OvsConn>,
        o: &Observed,
    ) -> Exec<'a> {
        Exec {
            host: &self.host,
            container: c,
            netns_path: d.netns.path().clone(),
            adopted: matches!(d.netns, crate::model::NetnsSpec::Adopted { .. }),
            host_netns: self.host_path.clone(),
            id: d.id.clone(),
            label: format!("netns {}", d.id),
            count,
            ovs,
            ovs_specs: crate::ovn::port_specs(d, o.ovn.as_ref()),
            ovn: self.ovn.clone(),
            refused: None,
            indexes: Default::default(),
        }
    }

    /// Executes one pass's plan, with the test hooks: fault injection (a simulated
    /// SIGKILL, first pass only) and a dropped step.
    async fn run_pass(&self, ex: &mut Exec<'_>, p: &Plan, first: bool) -> Result<(), OpError> {
        // Fault injection (a simulated SIGKILL) applies to the first pass only.
        let fail_after = if first { self.opts.fail_after } else { None };
        let drop = self.drop_step.load(std::sync::atomic::Ordering::Relaxed);
        if drop < p.steps.len() {
            let mut lossy = p.clone();
            lossy.steps.remove(drop);
            execute::run(ex, &lossy, fail_after).await
        } else {
            execute::run(ex, p, fail_after).await
        }
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
        let created = p.steps.iter().any(|s| {
            matches!(
                s,
                crate::engine::plan::Step::Netns(
                    crate::engine::plan::NetnsStep::CreateNetns { .. }
                )
            )
        });
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
        self.block_on(self.apply_one(d))
            .map_err(ApplyError::into_op)
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
    use crate::engine::plan::{NetnsStep, NftStep, Step};
    let loads = p
        .steps
        .iter()
        .any(|s| matches!(s, Step::Nft(NftStep::LoadRuleset { .. })));
    let creates = p
        .steps
        .iter()
        .any(|s| matches!(s, Step::Netns(NetnsStep::CreateNetns { .. })));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::route::RouteSpec;
    use crate::model::{ContainerId, IfName};

    fn route(dest: &str, dev: &str) -> RouteSpec {
        RouteSpec {
            dest: dest.parse().unwrap(),
            gateway: None,
            dev: Some(dev.into()),
            metric: 0,
        }
    }

    fn veth(host: &str) -> Step {
        Step::Link(LinkStep::CreateVeth {
            host: IfName::new(host).unwrap(),
            peer: IfName::new("eth0").unwrap(),
            netns: ContainerId::new("web").unwrap(),
            host_alias: "netprov:web:eth0".into(),
            peer_alias: "netprov:web".into(),
            mtu: None,
            mac: None,
        })
    }

    fn replace(at: At, r: &RouteSpec) -> Step {
        Step::Route(RouteStep::ReplaceRoute {
            at,
            route: r.clone(),
            was: None,
        })
    }

    #[test]
    fn only_links_the_plan_created_are_checked_route_by_route() {
        let web = At::Netns(ContainerId::new("web").unwrap());
        let (r1, r2) = (route("10.0.0.3/32", "ve-a"), route("10.0.1.3/32", "ve-old"));
        let c = route("10.0.0.2/32", "eth0");
        let p = Plan {
            id: ContainerId::new("web").unwrap(),
            steps: vec![
                veth("ve-a"),
                replace(At::Host, &r1),
                // A link that was there before: listed, whatever the plan adds to it.
                replace(At::Host, &r2),
                replace(web.clone(), &c),
            ],
        };
        let mut fresh = FreshHostRoutes::new();
        record_fresh(&p, &mut fresh);
        assert_eq!(
            fresh,
            FreshHostRoutes::from([("ve-a".into(), vec![r1.clone()])])
        );

        // A later pass that re-creates a link starts it afresh; one that deletes a
        // route through a created link sends it back to listing.
        let p2 = Plan {
            id: ContainerId::new("web").unwrap(),
            steps: vec![
                veth("ve-b"),
                Step::Route(RouteStep::DelRoute {
                    at: At::Host,
                    route: r1.clone(),
                }),
            ],
        };
        record_fresh(&p2, &mut fresh);
        assert_eq!(fresh, FreshHostRoutes::from([("ve-b".into(), vec![])]));
    }
}
