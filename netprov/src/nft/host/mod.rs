//! Host-side rules netprov generates for one container, built as nf_tables messages.
//!
//! Layout: one table per container, `inet netprov-<id>`, that netprov alone owns (the
//! name is the ownership mark). Creating, replacing and removing it are each ONE
//! netfilter batch, so the kernel swaps the container's whole rule set atomically, and
//! every operation costs O(this container): no other table — netprov's for other
//! containers or anyone else's — is read or written. Chains (all created only when
//! needed), see [`build`] for the sets they use:
//!
//! * `spoof`  — filter, prerouting, priority raw (-300): on each veth host end, accept
//!   the container's own addresses on that link, IPv6 link-local and `::` (NDP, DAD),
//!   drop the rest of IPv4/IPv6;
//! * `dnat`   — nat, prerouting, dstnat (-100): port forwards for traffic arriving
//!   from outside;
//! * `dnat-local` — nat, output, dstnat (-100): the same forwards for connections the
//!   host itself opens to one of its local addresses;
//! * `snat`   — nat, postrouting, srcnat (100): masquerade of the container's addresses
//!   leaving through any interface other than their host end.
//!
//! Drift: [`observe_host`] reads the table's whole content (a few requests about this
//! one table) and [`plan_host`] compares it with the content the spec generates
//! ([`content::HostTable`]), so any edit of the table — a flushed chain, a deleted or
//! added rule, a changed set element — is seen. Nothing is recorded in the table.
//!
//! Replacing uses the nft idiom "add table; delete table; add table …" inside one batch:
//! the add makes the delete valid whether or not the table existed.
//!
//! The parts: `spec` (what the rules depend on), `build` (the messages), `content`
//! (the canonical content both sides are compared in), `read` (observe the table) and
//! `write` (apply, remove).

mod build;
mod content;
mod obj;
mod read;
mod spec;
#[cfg(test)]
mod stack_bench;
mod write;

pub use self::content::HostTable;
pub use self::read::{list_host_tables, observe_host, observe_host_for};
pub use self::spec::{table_name, HostExpected, HostSpec, VethLink};
pub use self::write::{apply_host, remove_host};

/// What exists in the host netns for one container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    Absent,
    /// The table exists, with this content.
    Present(Box<HostTable>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostChange {
    /// Create or atomically replace the container's table; `differs` says how the
    /// existing table differs from the spec (`None`: there is no table).
    Apply { differs: Option<String> },
    /// Delete the container's table.
    Remove,
}

/// `None` when the host table holds exactly what the spec generates.
pub fn plan_host(expected: &HostExpected, observed: &HostState) -> Option<HostChange> {
    match (expected.spec().is_empty(), observed) {
        (true, HostState::Absent) => None,
        (true, HostState::Present(_)) => Some(HostChange::Remove),
        (false, HostState::Absent) => Some(HostChange::Apply { differs: None }),
        (false, HostState::Present(have)) => {
            let want = expected.table();
            (**have != *want).then(|| HostChange::Apply {
                differs: Some(have.describe_difference(want)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerId, HostRules, IfName, L4Proto, PortForward};

    fn spec(rules: HostRules) -> HostSpec {
        HostSpec::new(
            ContainerId::new("web1").unwrap(),
            &rules,
            vec![VethLink {
                host_if: IfName::new("ve-web1").unwrap(),
                container_addrs: vec!["10.0.0.2".parse().unwrap()],
            }],
        )
    }

    #[test]
    fn empty_spec_means_no_table() {
        let s = spec(HostRules::default());
        assert!(s.is_empty());
        assert_eq!(
            plan_host(&HostExpected::new(s.clone()), &HostState::Absent),
            None
        );
        assert_eq!(
            plan_host(
                &HostExpected::new(s.clone()),
                &HostState::Present(Box::default())
            ),
            Some(HostChange::Remove)
        );
    }

    fn present(t: HostTable) -> HostState {
        HostState::Present(Box::new(t))
    }

    #[test]
    fn same_content_is_a_noop_and_any_difference_is_named() {
        let s = spec(HostRules {
            anti_spoof: true,
            ..Default::default()
        });
        let want = s.expected();
        assert_eq!(
            plan_host(&HostExpected::new(s.clone()), &present(want.clone())),
            None
        );
        assert_eq!(
            plan_host(&HostExpected::new(s.clone()), &HostState::Absent),
            Some(HostChange::Apply { differs: None })
        );
        let differs = |t: HostTable| match plan_host(&HostExpected::new(s.clone()), &present(t)) {
            Some(HostChange::Apply { differs: Some(d) }) => d,
            other => panic!("expected a difference, got {other:?}"),
        };
        // A flushed chain, a deleted rule, an added chain, a changed element, a
        // deleted set, a dormant table.
        let mut t = want.clone();
        t.rules.get_mut("spoof").unwrap().clear();
        assert_eq!(differs(t), "chain spoof has 0 rules, want 6");
        let mut t = want.clone();
        t.rules.get_mut("spoof").unwrap().remove(4);
        assert_eq!(differs(t), "chain spoof has 5 rules, want 6");
        let mut t = want.clone();
        t.rules.insert("evil".into(), vec!["x".into()]);
        t.objects += 1;
        assert_eq!(differs(t), "chain evil is not netprov's (1 rules)");
        let mut t = want.clone();
        t.objects += 1;
        assert!(differs(t).contains("holds 5 chains/sets/objects, netprov generates 4"));
        let mut t = want.clone();
        let e = t.elems.get_mut("links-v4").unwrap();
        e.clear();
        e.insert("\"ve-web1\" . 10.0.0.9".into());
        assert_eq!(
            differs(t),
            "set links-v4: 1 elements missing (e.g. \"ve-web1\" . 10.0.0.2) \
             1 elements not netprov's (e.g. \"ve-web1\" . 10.0.0.9)"
        );
        let mut t = want.clone();
        t.sets.remove("links");
        t.elems.remove("links");
        assert_eq!(differs(t), "set links missing");
        let mut t = want.clone();
        t.flags = 1;
        assert_eq!(differs(t), "table flags are 0x1 (dormant), want 0x0");
        // Another spec's content differs.
        let other = spec(HostRules {
            anti_spoof: true,
            masquerade: true,
            ..Default::default()
        });
        assert!(plan_host(&HostExpected::new(other.clone()), &present(want)).is_some());
    }

    #[test]
    fn messages_describe_themselves_for_errors() {
        let s = spec(HostRules {
            anti_spoof: true,
            ..Default::default()
        });
        let mut msgs = build::delete_table(&s.table_name());
        msgs.extend(build::messages(&s));
        let what: Vec<String> = msgs
            .iter()
            .map(|m| content::describe(m.kind, &m.bytes))
            .collect();
        assert_eq!(
            what[..4],
            ["add table", "delete table", "add table", "set links-v4"]
        );
        assert!(
            what.contains(&"elements of set links".to_owned()),
            "{what:?}"
        );
        assert!(what.contains(&"chain spoof".to_owned()), "{what:?}");
        assert_eq!(what.last().unwrap(), "a rule of chain spoof");
    }

    #[test]
    fn mixed_family_forward_is_rejected() {
        let s = spec(HostRules {
            forwards: vec![PortForward {
                proto: L4Proto::Udp,
                host_port: 53,
                host_addr: Some("2001:db8::1".parse().unwrap()),
                to_addr: "10.0.0.2".parse().unwrap(),
                to_port: 53,
            }],
            ..Default::default()
        });
        assert!(s.check().unwrap_err().contains("mixes IPv4 and IPv6"));
        assert!(spec(HostRules::default()).check().is_ok());
    }
}
