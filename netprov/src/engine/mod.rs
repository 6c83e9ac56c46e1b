//! The engine facade: plan, apply, check and destroy containers' networks.
//!
//! Sync API over a private single-threaded tokio runtime. One host-netns netlink
//! connection is shared by all containers; each container gets its own connection,
//! opened on a thread inside its netns. `apply_many` runs containers concurrently on
//! that runtime.

mod apply;
pub mod destroy;
pub mod diff;
pub mod drift;
pub mod execute;
pub mod lock;
pub mod observe;
mod observe_pass;
pub mod plan;
mod runtime;
mod stream;

use crate::engine::drift::Drift;
use crate::engine::plan::Plan;
use crate::error::OpError;
use crate::model::Desired;
use crate::nft::host::{HostExpected, HostSpec};

pub use crate::engine::apply::{ApplyError, ApplyReport, MAX_PASSES};
pub use crate::engine::destroy::{DestroyFailed, DestroyReport, DestroyTarget};
pub use crate::engine::runtime::{Engine, Options};
pub use crate::engine::stream::MAX_IN_FLIGHT;
pub use crate::ovsdb::OvsConn;

impl Engine {
    /// What apply would change, changing nothing.
    pub fn plan(&self, d: &Desired) -> Result<Plan, OpError> {
        self.plan_locked(d, lock::Op::Plan)
    }

    /// [`Engine::plan`] under the container's lock, taken for `op`.
    fn plan_locked(&self, d: &Desired, op: lock::Op) -> Result<Plan, OpError> {
        self.block_on(async {
            let _lock = lock::acquire(&d.id, op).await?;
            let c = self.container_conn(d)?;
            let expected = HostExpected::new(HostSpec::from_desired(d));
            let (o, _) = self.observe(d, c.as_ref(), &expected).await?;
            crate::engine::diff::diff_with(d, &o, &expected)
        })
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
}
