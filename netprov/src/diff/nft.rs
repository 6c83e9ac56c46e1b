//! The nftables part of the diff: the container ruleset and the container's host table.
//!
//! Both are compared by digest (recorded by the nft module when it loads them), so an
//! unchanged ruleset or table yields no step and sends nothing.

use crate::model::Desired;
use crate::nft::host::{self, HostChange, HostSpec, HostState};
use crate::nft::ruleset::{self, RulesetChange, RulesetState};
use crate::observe::Observed;
use crate::plan::{RulesetReason, Step};

pub fn steps(d: &Desired, o: &Observed) -> Vec<Step> {
    let mut out = Vec::new();
    let id = d.id.to_string();
    // A netns this plan creates has no ruleset yet.
    let rs = o.ruleset.clone().unwrap_or(RulesetState::Absent);
    match ruleset::plan(d.nft.as_ref(), &rs) {
        None => {}
        Some(RulesetChange::Remove) => out.push(Step::RemoveRuleset { netns: id }),
        Some(RulesetChange::Load { drifted }) => {
            let r = d
                .nft
                .clone()
                .expect("a load is planned only for a desired ruleset");
            let reason = match (&rs, drifted) {
                (_, true) => RulesetReason::Drifted,
                (RulesetState::Absent, false) => RulesetReason::Missing,
                (RulesetState::Loaded { .. }, false) => RulesetReason::Changed,
            };
            out.push(Step::LoadRuleset {
                netns: id,
                digest: ruleset::digest(&r),
                reason,
                ruleset: r,
            });
        }
    }
    let spec = HostSpec::from_desired(d);
    let hs = o.host_rules.clone().unwrap_or(HostState::Absent);
    match host::plan_host(&spec, &hs) {
        None => {}
        Some(HostChange::Remove) => out.push(Step::RemoveHostRules {
            table: spec.table_name(),
        }),
        Some(HostChange::Apply) => out.push(Step::InstallHostRules {
            table: spec.table_name(),
            replace: matches!(hs, HostState::Present { .. }),
            spec,
        }),
    }
    out
}
