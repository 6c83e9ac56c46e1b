//! Route steps: the peer routes of each interface, the props' routes, and the
//! routes that survive this plan's link steps.

use ipnetwork::IpNetwork;

use crate::engine::diff::Differ;
use crate::engine::plan::{At, RouteStep, Step};
use crate::kernel::route::{default_metric, RouteSpec};
use crate::model::{Desired, NetnsSpec};

/// The device route of a veth end duplicates the kernel's own prefix route when it is
/// exactly the network of one of that end's addresses.
fn is_kernel_prefix_route(r: &IpNetwork, own: &[IpNetwork]) -> bool {
    own.iter().any(|a| {
        a.prefix() == r.prefix()
            && a.network() == r.network()
            && a.prefix() < if a.is_ipv4() { 32 } else { 128 }
    })
}

impl Differ<'_> {
    /// Whether an observed route survives the link steps of this plan.
    pub(super) fn route_survives(&self, at: &At, r: &RouteSpec) -> bool {
        let Some(dev) = &r.dev else { return true };
        let key = (*at == At::Host, dev.clone());
        !(self.renewed.contains(&key) || r.dest.is_ipv4() && self.v4_flushed.contains(&key))
    }

    pub(super) fn peer_routes(
        own: &[IpNetwork],
        routes: Vec<IpNetwork>,
        dev: &str,
    ) -> Vec<RouteSpec> {
        routes
            .into_iter()
            .filter(|r| !is_kernel_prefix_route(r, own))
            .map(|r| RouteSpec {
                dest: r,
                gateway: None,
                dev: Some(dev.to_owned()),
                metric: default_metric(&r),
            })
            .collect()
    }

    pub(super) fn routes(&mut self, at: At, have: &[RouteSpec], want: &[RouteSpec]) {
        for h in have {
            if !want.iter().any(|w| w.same_key(h)) {
                self.steps.push(Step::Route(RouteStep::DelRoute {
                    at: at.clone(),
                    route: h.clone(),
                }));
            }
        }
        for w in want {
            if !have.iter().any(|h| w.satisfied_by(h)) {
                let was = have.iter().find(|h| w.same_key(h)).cloned();
                self.steps.push(Step::Route(RouteStep::ReplaceRoute {
                    at: at.clone(),
                    route: w.clone(),
                    was,
                }));
            }
        }
    }

    /// The route steps of both sides, once every link step is planned.
    pub(super) fn plan_routes(&mut self, d: &Desired) {
        let o = self.o;
        for r in &d.routes {
            self.container_routes.push(RouteSpec {
                dest: r.dest,
                gateway: r.gateway,
                dev: r.dev.as_ref().map(|x| x.to_string()),
                // IPv6 has no metric 0: the kernel stores 1024 for it, as for none.
                metric: r
                    .metric
                    .filter(|m| *m != 0 || r.dest.is_ipv4())
                    .unwrap_or_else(|| default_metric(&r.dest)),
            });
        }
        let host_want = std::mem::take(&mut self.host_routes);
        let cont_want = std::mem::take(&mut self.container_routes);
        let host_have = self.surviving(&At::Host, &o.host.routes);
        self.routes(At::Host, &host_have, &host_want);
        let cont_have = match d.netns {
            NetnsSpec::Owned { .. } => o.container.routes.clone(),
            // Another container's protocol-77 routes there are not this one's to delete.
            NetnsSpec::Adopted { .. } => {
                crate::kernel::owned::adopted_routes(d, &o.container, &cont_want)
            }
        };
        let cont_have = self.surviving(&self.ns(), &cont_have);
        self.routes(self.ns(), &cont_have, &cont_want);
    }

    /// Routes through links this plan renews or strips of IPv4 are gone by the routes
    /// phase: plan them from that state (replace, not "already there"; no delete).
    fn surviving(&self, at: &At, rs: &[RouteSpec]) -> Vec<RouteSpec> {
        rs.iter()
            .filter(|r| self.route_survives(at, r))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_prefix_route_is_skipped_only_for_real_prefixes() {
        let own: Vec<IpNetwork> = vec!["10.0.0.2/24".parse().unwrap()];
        assert!(is_kernel_prefix_route(
            &"10.0.0.0/24".parse().unwrap(),
            &own
        ));
        let own: Vec<IpNetwork> = vec!["10.0.2.2/32".parse().unwrap()];
        assert!(!is_kernel_prefix_route(
            &"10.0.1.1/32".parse().unwrap(),
            &own
        ));
    }
}
