//! Many containers at once: applies and destroys run concurrently on the engine's
//! runtime, at most [`MAX_IN_FLIGHT`] at a time, each result handed on in order as soon
//! as it is known.

use crate::engine::apply::ApplyError;

use crate::engine::apply::ApplyReport;
use crate::engine::destroy::{DestroyFailed, DestroyReport, DestroyTarget};
use crate::engine::lock;
use crate::engine::runtime::Engine;
use crate::error::OpError;
use crate::model::Desired;

/// Containers applied at once by [`Engine::apply_many`]. Each in-flight container holds
/// a netlink socket (with its receive buffers) and its observed state; a bound keeps
/// the memory of `netprov apply` over a thousand files flat, while still overlapping
/// the kernel round trips of many containers.
pub const MAX_IN_FLIGHT: usize = 16;

impl Engine {
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
        let _interleaving = (items.len() > 1).then(crate::kernel::netlink::interleaving);
        self.block_on(
            stream::iter(items.iter().map(op))
                .buffered(MAX_IN_FLIGHT)
                .enumerate()
                .for_each(|(i, r)| {
                    f(i, r);
                    std::future::ready(())
                }),
        )
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
        let _interleaving = (ds.len() > 1).then(crate::kernel::netlink::interleaving);
        self.block_on(
            stream::iter(ds.iter().map(|d| async move {
                let lock = match lock::acquire(&d.id, lock::Op::Apply).await {
                    Ok(l) => l,
                    Err(e) => return Some(Err(e)),
                };
                if !keep(d) {
                    return None;
                }
                Some(
                    self.apply_holding(d, lock)
                        .await
                        .map_err(ApplyError::into_op),
                )
            }))
            .buffered(MAX_IN_FLIGHT)
            .collect(),
        )
    }
}
