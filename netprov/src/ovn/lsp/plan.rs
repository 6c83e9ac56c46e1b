//! What must change in NB for a container's logical switch ports (pure).

use std::collections::{BTreeMap, BTreeSet};

use super::{LspRow, LspSpec, NbObserved, OvnChange};
use crate::error::OpError;
use crate::ovsdb::port::OWNER_KEY;

/// What must change in NB for `specs` (pure). `chassis` is this host's `system-id`.
pub fn plan(
    owner: &str,
    specs: &[LspSpec],
    nb: &NbObserved,
    chassis: &str,
) -> Result<Vec<OvnChange>, OpError> {
    let mut out = Vec::new();
    for s in specs {
        out.extend(plan_port(owner, s, nb, chassis)?);
    }
    let wanted: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    for row in nb.ports.values() {
        if row.owner() == Some(owner) && !wanted.contains(row.name.as_str()) {
            out.push(OvnChange::Remove {
                name: row.name.clone(),
                uuid: row.uuid.clone(),
            });
        }
    }
    Ok(out)
}

/// The changes for one wanted port.
fn plan_port(
    owner: &str,
    s: &LspSpec,
    nb: &NbObserved,
    chassis: &str,
) -> Result<Vec<OvnChange>, OpError> {
    if !nb.switches.contains_key(&s.switch) {
        return Err(OpError::new(
            s.label(),
            format!(
                "logical switch {} does not exist in the OVN Northbound database (netprov does not create switches)",
                s.switch
            ),
        ));
    }
    let options = s.options(chassis);
    let create = |options| OvnChange::Create {
        spec: s.clone(),
        options,
    };
    let Some(row) = nb.ports.get(&s.name) else {
        return Ok(vec![create(options)]);
    };
    check_owner(owner, s, row)?;
    if row.switch.as_deref() != Some(s.switch.as_str()) {
        let remove = OvnChange::Remove {
            name: row.name.clone(),
            uuid: row.uuid.clone(),
        };
        return Ok(vec![remove, create(options)]);
    }
    Ok(update(s, row, options).into_iter().collect())
}

/// A port with a wanted name must carry this container's mark.
fn check_owner(owner: &str, s: &LspSpec, row: &LspRow) -> Result<(), OpError> {
    let cause = match row.owner() {
        Some(o) if o == owner => return Ok(()),
        Some(o) => format!("logical switch port {} belongs to netprov container {o} (external_ids:{OWNER_KEY}={o})", s.name),
        None => format!("logical switch port {} exists and is not netprov's (no external_ids:{OWNER_KEY}={owner})", s.name),
    };
    Err(OpError::new(s.label(), cause))
}

/// An in-place update of an owned port on the right switch, if anything differs.
fn update(s: &LspSpec, row: &LspRow, options: BTreeMap<String, String>) -> Option<OvnChange> {
    // Options set by others (e.g. an operator's `qos_burst`) are kept.
    let mut want_opts = row.options.clone();
    want_opts.extend(options);
    let mut what = Vec::new();
    if row.addresses != s.addresses {
        what.push(format!(
            "addresses {:?}, want {:?}",
            row.addresses, s.addresses
        ));
    }
    if row.port_security != s.port_security {
        what.push(format!(
            "port_security {:?}, want {:?}",
            row.port_security, s.port_security
        ));
    }
    if row.options != want_opts {
        what.push(format!("options {:?}, want {:?}", row.options, want_opts));
    }
    (!what.is_empty()).then(|| OvnChange::Update {
        name: row.name.clone(),
        uuid: row.uuid.clone(),
        what: what.join("; "),
        addresses: s.addresses.clone(),
        port_security: s.port_security.clone(),
        options: want_opts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerId, IfName};

    fn spec(name: &str, switch: &str) -> LspSpec {
        LspSpec {
            owner: ContainerId::new("web").unwrap(),
            iface: IfName::new("lan").unwrap(),
            ovs_port: IfName::new("ve-web-lan").unwrap(),
            name: name.into(),
            switch: switch.into(),
            mac: "0a:00:00:00:00:01".into(),
            addresses: vec!["0a:00:00:00:00:01 10.0.0.2".into()],
            port_security: vec!["0a:00:00:00:00:01 10.0.0.2".into()],
        }
    }

    fn row(s: &LspSpec, owner: Option<&str>, switch: &str) -> LspRow {
        let mut external_ids = BTreeMap::new();
        if let Some(o) = owner {
            external_ids.insert(OWNER_KEY.to_owned(), o.to_owned());
        }
        LspRow {
            uuid: "u1".into(),
            name: s.name.clone(),
            addresses: s.addresses.clone(),
            port_security: s.port_security.clone(),
            options: s.options("ch1"),
            external_ids,
            switch: Some(switch.into()),
        }
    }

    fn nb(rows: Vec<LspRow>) -> NbObserved {
        NbObserved {
            switches: BTreeMap::from([("A".into(), "s1".into()), ("B".into(), "s2".into())]),
            ports: rows.into_iter().map(|r| (r.name.clone(), r)).collect(),
        }
    }

    /// `plan` of container web for the one spec `s`, NB holding `rows`.
    fn plan_one(s: &LspSpec, rows: Vec<LspRow>, chassis: &str) -> Result<Vec<OvnChange>, OpError> {
        plan("web", std::slice::from_ref(s), &nb(rows), chassis)
    }

    #[test]
    fn plan_matrix() {
        let s = spec("web:lan", "A");
        // Missing → create; in sync → nothing; foreign → refused; other switch → move.
        assert!(matches!(
            plan_one(&s, vec![], "ch1").unwrap()[..],
            [OvnChange::Create { .. }]
        ));
        assert!(plan_one(&s, vec![row(&s, Some("web"), "A")], "ch1")
            .unwrap()
            .is_empty());
        for owner in [None, Some("db")] {
            let e = plan_one(&s, vec![row(&s, owner, "A")], "ch1").unwrap_err();
            assert!(e.to_string().contains("web:lan"), "{e}");
        }
        let moved = plan_one(&s, vec![row(&s, Some("web"), "B")], "ch1").unwrap();
        assert!(matches!(
            moved[..],
            [OvnChange::Remove { .. }, OvnChange::Create { .. }]
        ));
        // Another chassis: options follow (requested-chassis, iface-id-ver).
        let other = plan_one(&s, vec![row(&s, Some("web"), "A")], "ch2").unwrap();
        assert!(
            matches!(&other[..], [OvnChange::Update { what, .. }] if what.contains("requested-chassis"))
        );
        // A switch that does not exist.
        let e = plan_one(&spec("web:lan", "C"), vec![], "ch1").unwrap_err();
        assert!(
            e.to_string().contains("logical switch C does not exist"),
            "{e}"
        );
        // Owned but unwanted → removed.
        let gone = plan("web", &[], &nb(vec![row(&s, Some("web"), "A")]), "ch1").unwrap();
        assert!(matches!(gone[..], [OvnChange::Remove { .. }]));
    }

    /// What `apply` does to NB, done to an `NbObserved`.
    fn simulate(nb: &mut NbObserved, changes: &[OvnChange]) {
        for c in changes {
            match c {
                OvnChange::Create { spec, options } => {
                    let mut r = row(spec, Some("web"), &spec.switch);
                    r.uuid = format!("new-{}", spec.name);
                    r.options = options.clone();
                    nb.ports.insert(r.name.clone(), r);
                }
                OvnChange::Update {
                    name,
                    addresses,
                    port_security,
                    options,
                    ..
                } => {
                    let r = nb.ports.get_mut(name).unwrap();
                    r.addresses = addresses.clone();
                    r.port_security = port_security.clone();
                    r.options = options.clone();
                }
                OvnChange::Remove { name, .. } => {
                    nb.ports.remove(name);
                }
                OvnChange::WaitInstalled { .. } => {}
            }
        }
    }

    mod generated {
        use proptest::prelude::*;

        use super::*;

        const NAMES: [&str; 3] = ["web:lan", "web:wan", "web:dmz"];

        /// A port as props want it: switch, addresses, port_security.
        fn wanted() -> impl Strategy<Value = (&'static str, Vec<String>, Vec<String>)> {
            let addrs = prop::collection::vec("0a:00:00:00:00:0[1-3]( 10\\.0\\.0\\.[1-3])?", 0..2);
            (prop::sample::select(vec!["A", "B"]), addrs.clone(), addrs)
        }

        fn make_spec(
            name: &str,
            (switch, addresses, port_security): (&str, Vec<String>, Vec<String>),
        ) -> LspSpec {
            LspSpec {
                addresses,
                port_security,
                ..spec(name, switch)
            }
        }

        proptest! {
            /// Whatever this container's ports looked like (other switch, other
            /// addresses, other chassis' options, an operator's extra option), doing
            /// what `plan` says leaves nothing to do, and an operator's option stays.
            #[test]
            fn applying_the_plan_converges(
                want in prop::collection::vec(prop::option::of(wanted()), 3),
                have in prop::collection::vec(prop::option::of((wanted(), any::<bool>(), any::<bool>())), 3),
                chassis in prop::sample::select(vec!["ch1", "ch2"]),
            ) {
                let specs: Vec<LspSpec> = NAMES.iter().zip(&want)
                    .filter_map(|(n, w)| w.clone().map(|w| make_spec(n, w)))
                    .collect();
                let mut o = nb(vec![]);
                for (n, h) in NAMES.iter().zip(have) {
                    let Some((w, other_chassis, extra)) = h else { continue };
                    let s = make_spec(n, w);
                    let mut r = row(&s, Some("web"), &s.switch);
                    if other_chassis {
                        r.options = s.options("ch-old");
                    }
                    if extra {
                        r.options.insert("qos_burst".into(), "1000".into());
                    }
                    o.ports.insert(r.name.clone(), r);
                }
                let extras: Vec<String> = o.ports.values()
                    .filter(|r| r.options.contains_key("qos_burst"))
                    .map(|r| r.name.clone())
                    .collect();
                let changes = plan("web", &specs, &o, chassis).unwrap();
                simulate(&mut o, &changes);
                let again = plan("web", &specs, &o, chassis).unwrap();
                prop_assert!(again.is_empty(), "after {changes:?}: {again:?}");
                prop_assert_eq!(o.ports.len(), specs.len());
                for s in &specs {
                    let r = &o.ports[&s.name];
                    prop_assert_eq!(r.switch.as_deref(), Some(s.switch.as_str()));
                    prop_assert_eq!((&r.addresses, &r.port_security), (&s.addresses, &s.port_security));
                    for (k, v) in s.options(chassis) {
                        prop_assert_eq!(r.options.get(&k), Some(&v));
                    }
                    // An update keeps an operator's option (a re-creation may not).
                    let moved = changes.iter().any(|c| matches!(c, OvnChange::Create { spec, .. } if spec.name == s.name));
                    if extras.contains(&s.name) && !moved {
                        prop_assert!(r.options.contains_key("qos_burst"));
                    }
                }
            }
        }
    }
}
