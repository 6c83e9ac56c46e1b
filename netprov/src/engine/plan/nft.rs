//! nftables steps: the container's ruleset and its host rules table.

use std::fmt;

use serde::Serialize;

use crate::engine::drift::{Drift, Object};
use crate::engine::plan::Phase;
use crate::model::{ContainerId, Ruleset};
use crate::nft::HostSpec;

/// Why the container ruleset is (re)loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RulesetReason {
    /// netprov has not loaded a ruleset in this netns yet.
    Missing,
    /// The props carry a different ruleset than the one loaded.
    Changed,
    /// The live ruleset was modified behind netprov's back (or a load was interrupted).
    Drifted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NftStep {
    /// Replace the container netns's whole ruleset with the props' text, atomically.
    LoadRuleset {
        #[serde(serialize_with = "crate::ser::display")]
        netns: ContainerId,
        /// SHA-256 (first 128 bits) of the text, as recorded in netprov's marker table.
        digest: String,
        reason: RulesetReason,
        #[serde(skip)]
        ruleset: Ruleset,
    },
    /// `nft` left the props: flush the ruleset netprov loaded.
    RemoveRuleset {
        #[serde(serialize_with = "crate::ser::display")]
        netns: ContainerId,
    },
    /// Create or atomically replace the container's host table `inet netprov-<id>`.
    InstallHostRules {
        table: String,
        /// The table exists with other rules (replace, not create).
        replace: bool,
        /// How the existing table differs from what the props generate.
        #[serde(skip_serializing_if = "Option::is_none")]
        differs: Option<String>,
        #[serde(skip)]
        spec: HostSpec,
    },
    /// No host rule is wanted any more: delete the container's host table.
    RemoveHostRules { table: String },
}

impl NftStep {
    pub fn phase(&self) -> Phase {
        Phase::Nft
    }

    pub fn as_drift(&self) -> Drift {
        match self {
            NftStep::LoadRuleset { netns, reason, .. } => {
                let label = format!("nftables ruleset in netns {netns}");
                match reason {
                    RulesetReason::Missing => Drift::missing(Object::Ruleset, label),
                    RulesetReason::Changed => {
                        Drift::differs(Object::Ruleset, label, "differs from the props")
                    }
                    RulesetReason::Drifted => {
                        Drift::differs(Object::Ruleset, label, "modified behind netprov's back")
                    }
                }
            }
            NftStep::RemoveRuleset { netns } => Drift::extra(
                Object::Ruleset,
                format!("nftables ruleset in netns {netns}"),
                "is loaded but the props have none",
            ),
            NftStep::InstallHostRules {
                table,
                replace,
                differs,
                ..
            } => {
                let label = format!("host rules table inet {table}");
                match (replace, differs) {
                    (true, Some(d)) => Drift::differs(
                        Object::HostRules,
                        label,
                        format!("differs from the props: {d}"),
                    ),
                    (true, None) => {
                        Drift::differs(Object::HostRules, label, "differs from the props")
                    }
                    (false, _) => Drift::missing(Object::HostRules, label),
                }
            }
            NftStep::RemoveHostRules { table } => Drift::extra(
                Object::HostRules,
                format!("host rules table inet {table}"),
                "exists but no host rule is wanted",
            ),
        }
    }
}

impl fmt::Display for NftStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NftStep::LoadRuleset {
                netns,
                digest,
                reason,
                ..
            } => match reason {
                RulesetReason::Drifted => write!(
                    f,
                    "reload nftables ruleset in netns {netns} (sha256 {digest}; modified behind netprov's back)"
                ),
                _ => write!(f, "load nftables ruleset in netns {netns} (sha256 {digest})"),
            },
            NftStep::RemoveRuleset { netns } => {
                write!(f, "remove nftables ruleset netprov loaded in netns {netns}")
            }
            NftStep::InstallHostRules { table, replace, .. } => {
                let verb = if *replace { "replace" } else { "install" };
                write!(f, "{verb} host rules table inet {table} in host netns")
            }
            NftStep::RemoveHostRules { table } => {
                write!(f, "remove host rules table inet {table} in host netns")
            }
        }
    }
}
