//! The nftables part of the diff: the container ruleset and the container's host table.
//!
//! The ruleset is compared by digest (recorded by the nft module when it loads it), the
//! host table by content (what the spec generates vs what the kernel holds), so an
//! unchanged ruleset or table yields no step and sends nothing.

use crate::engine::observe::Observed;
use crate::engine::plan::{NftStep, RulesetReason, Step};
use crate::model::Desired;
use crate::nft::host::{self, HostChange, HostExpected, HostState};
use crate::nft::ruleset::{self, RulesetChange, RulesetState};

pub fn steps(d: &Desired, o: &Observed, expected: &HostExpected) -> Vec<Step> {
    let mut out = Vec::new();
    let id = d.id.clone();
    // A netns this plan creates has no ruleset yet.
    let rs = o.ruleset.clone().unwrap_or(RulesetState::Absent);
    match ruleset::plan(d.nft.as_ref(), &rs) {
        None => {}
        Some(RulesetChange::Remove) => out.push(Step::Nft(NftStep::RemoveRuleset { netns: id })),
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
            out.push(Step::Nft(NftStep::LoadRuleset {
                netns: id,
                digest: ruleset::digest(&r),
                reason,
                ruleset: r,
            }));
        }
    }
    let spec = expected.spec();
    let hs = o.host_rules.clone().unwrap_or(HostState::Absent);
    match host::plan_host(expected, &hs) {
        None => {}
        Some(HostChange::Remove) => out.push(Step::Nft(NftStep::RemoveHostRules {
            table: spec.table_name(),
        })),
        Some(HostChange::Apply { differs }) => out.push(Step::Nft(NftStep::InstallHostRules {
            table: spec.table_name(),
            replace: matches!(hs, HostState::Present(_)),
            differs,
            spec: spec.clone(),
        })),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::host::HostSpec;

    fn steps(d: &Desired, o: &Observed) -> Vec<Step> {
        super::steps(d, o, &HostExpected::new(HostSpec::from_desired(d)))
    }
    use crate::engine::diff::testkit;
    use crate::engine::plan::Phase;
    use crate::model::*;

    fn desired(nft: Option<&str>, masquerade: bool) -> Desired {
        let wan = testkit::veth("wan", "ve-web-wan", "70.0.0.1/31", "70.0.0.2/31");
        Desired {
            nft: nft.map(|t| Ruleset { text: t.into() }),
            host_rules: HostRules {
                masquerade,
                ..Default::default()
            },
            ..testkit::desired(vec![wan])
        }
    }

    const RS: &str = "table inet filter { }";

    #[test]
    fn fresh_container_loads_its_ruleset_and_installs_host_rules() {
        let d = desired(Some(RS), true);
        let s = steps(&d, &Observed::default());
        let text: Vec<String> = s.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                format!(
                    "load nftables ruleset in netns web (sha256 {})",
                    ruleset::digest(d.nft.as_ref().unwrap())
                ),
                "install host rules table inet netprov-web in host netns".to_owned(),
            ]
        );
        assert!(s.iter().all(|s| s.phase() == Phase::Nft));
        assert_eq!(
            s[0].as_drift().to_string(),
            "nftables ruleset in netns web: missing"
        );
    }

    #[test]
    fn unchanged_is_no_step_and_drift_reloads() {
        let d = desired(Some(RS), true);
        let dg = ruleset::digest(d.nft.as_ref().unwrap());
        let mut o = Observed {
            ruleset: Some(RulesetState::Loaded {
                source_digest: dg.clone(),
                recorded_live_digest: Some("x".into()),
                live_digest: "x".into(),
            }),
            host_rules: Some(HostState::Present(Box::new(
                HostSpec::from_desired(&d).expected(),
            ))),
            ..Default::default()
        };
        assert!(steps(&d, &o).is_empty());
        o.ruleset = Some(RulesetState::Loaded {
            source_digest: dg,
            recorded_live_digest: Some("x".into()),
            live_digest: "y".into(),
        });
        let s = steps(&d, &o);
        assert_eq!(s.len(), 1);
        assert!(s[0]
            .to_string()
            .starts_with("reload nftables ruleset in netns web"));
        assert_eq!(
            s[0].as_drift().to_string(),
            "nftables ruleset in netns web: modified behind netprov's back"
        );
    }

    #[test]
    fn an_edited_host_table_is_drift_that_names_the_edit() {
        let d = desired(None, true);
        let mut table = HostSpec::from_desired(&d).expected();
        table.rules.get_mut("snat").unwrap().clear();
        let o = Observed {
            host_rules: Some(HostState::Present(Box::new(table))),
            ..Default::default()
        };
        let s = steps(&d, &o);
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].to_string(),
            "replace host rules table inet netprov-web in host netns"
        );
        assert_eq!(
            s[0].as_drift().to_string(),
            "host rules table inet netprov-web: differs from the props: chain snat has 0 rules, want 4"
        );
    }

    #[test]
    fn dropped_from_the_props_is_removed() {
        let d = desired(None, false);
        let o = Observed {
            ruleset: Some(RulesetState::Loaded {
                source_digest: "a".into(),
                recorded_live_digest: Some("x".into()),
                live_digest: "x".into(),
            }),
            host_rules: Some(HostState::Present(Box::default())),
            ..Default::default()
        };
        let text: Vec<String> = steps(&d, &o).iter().map(ToString::to_string).collect();
        // Anti-spoofing is off in this Desired, masquerade too: no host rule wanted.
        assert_eq!(
            text,
            [
                "remove nftables ruleset netprov loaded in netns web",
                "remove host rules table inet netprov-web in host netns",
            ]
        );
    }
}
