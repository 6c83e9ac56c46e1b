//! The engine's destroys: under the container's lock, OVN's logical ports first, then
//! everything else (see [`crate::engine::destroy::destroy`]).

use crate::blocking::blocking;
use crate::engine::destroy::{DestroyFailed, DestroyReport, DestroyTarget};
use crate::engine::lock;
use crate::engine::runtime::Engine;
use crate::error::OpError;

impl Engine {
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
        self.block_on(async {
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
                crate::engine::destroy::host_links::delete_host_links(
                    &self.host,
                    t.id(),
                    host_links,
                    &mut rep,
                )
                .await,
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

    /// Removes everything netprov owns for the target, under its lock. Best effort:
    /// a failing part does not stop the others; the error lists every failure.
    pub fn destroy(&self, t: &DestroyTarget) -> Result<DestroyReport, DestroyFailed> {
        self.block_on(self.destroy_locked(t))
    }

    pub(in crate::engine) async fn destroy_locked(
        &self,
        t: &DestroyTarget,
    ) -> Result<DestroyReport, DestroyFailed> {
        let _lock = lock::acquire(t.id(), lock::Op::Destroy)
            .await
            .map_err(|e| DestroyFailed::new(t.id(), e))?;
        self.destroy_async(t).await
    }

    /// The destroy itself, without the lock (an apply undoing itself holds it).
    /// OVN's logical ports first, then everything else (see `destroy::destroy`).
    pub(in crate::engine) async fn destroy_async(
        &self,
        t: &DestroyTarget,
    ) -> Result<DestroyReport, DestroyFailed> {
        let ovn = self.destroy_ovn(t).await;
        let r = crate::engine::destroy::destroy(
            t,
            &self.host,
            &self.host_ns,
            &self.host_path,
            &self.endpoint(),
            !self.opts.destroy_no_wait,
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
