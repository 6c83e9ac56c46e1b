//! Route operations.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};

use crate::engine::execute::{Exec, Op};
use crate::engine::plan::{At, RouteStep};
use crate::error::OpError;
use crate::kernel::route::{self, RouteSpec};

impl Exec<'_> {
    pub(super) async fn route_step(&self, s: &RouteStep, op: Op<'_>) -> Result<(), OpError> {
        match s {
            RouteStep::ReplaceRoute { at, route, .. } => self.replace_route(at, route, op).await,
            RouteStep::DelRoute { at, route } => self.delete_route(at, route, op).await,
        }
    }

    async fn replace_route(&self, at: &At, r: &RouteSpec, op: Op<'_>) -> Result<(), OpError> {
        let oif = match &r.dev {
            Some(d) => Some(self.index(at, d, op).await?),
            None => None,
        };
        self.send(at, route::replace(r, oif), NLM_F_CREATE | NLM_F_REPLACE, op)
            .await
    }

    async fn delete_route(&self, at: &At, r: &RouteSpec, op: Op<'_>) -> Result<(), OpError> {
        let oif = match &r.dev {
            Some(d) => self.index(at, d, op).await.ok(),
            None => None,
        };
        // ESRCH: already gone — the kernel flushes a link's IPv4 routes with its
        // last IPv4 address, and all its routes with the link.
        match self.send(at, route::delete(r, oif), 0, op).await {
            Err(e) if e.errno == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }
}
