//! Conflicts between containers: what two properties files may not both claim.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::path::PathBuf;

use super::errors::{key_path, problem};
use super::names::host_name;
use crate::error::Invalid;
use crate::model::{Desired, IfName, InterfaceKind, L4Proto, NetnsSpec};

/// Checks `ds` (loaded from `files`, same order) against each other: the same id,
/// netns path, host-side name, container address or host port forward in two
/// containers is an error reported on the later file.
pub fn check_conflicts(ds: &[Desired], files: &[PathBuf]) -> Vec<Invalid> {
    let mut errs = Vec::new();
    let name = |i: usize| match files.get(i) {
        Some(f) => format!(" ({})", f.display()),
        None => String::new(),
    };
    let mut ids = Claims::default();
    let mut netns = Claims::default();
    let mut hosts = Claims::default();
    let mut addrs = Claims::default();
    let mut ports = Claims::default();
    for (n, d) in ds.iter().enumerate() {
        let mut report = |path: String, what: String, first: usize| {
            let mut e = problem(
                path,
                format!("{what} is also claimed by {}{}", ds[first].id, name(first)),
            );
            e.file = files.get(n).cloned();
            errs.push(e);
        };
        if let Some(f) = ids.claim(d.id.clone(), n) {
            report("id".into(), format!("id {}", d.id), f);
        }
        let path = d.netns.path().clone();
        if let Some(f) = netns.claim(path.clone(), n) {
            // Two owned handles share a path only when the ids are equal: said above.
            let both_owned = [&d.netns, &ds[f].netns]
                .iter()
                .all(|s| matches!(s, NetnsSpec::Owned { .. }));
            if !both_owned {
                report(
                    "network.netns_path".into(),
                    format!("netns {}", path.display()),
                    f,
                );
            }
        }
        interfaces(d, n, &mut hosts, &mut addrs, &mut report);
        forwards(d, n, &mut ports, &mut report);
    }
    errs
}

/// Reports a clash: (JSON path, what is claimed, the index of the first claimant).
type Report<'a> = dyn FnMut(String, String, usize) + 'a;

/// Claims the host-side names and the container addresses of `d` (the `n`th file).
fn interfaces(
    d: &Desired,
    n: usize,
    hosts: &mut Claims<IfName>,
    addrs: &mut Claims<IpAddr>,
    report: &mut Report,
) {
    for i in &d.interfaces {
        let at = key_path("network.interfaces", i.name.as_str());
        let host = match (&i.kind, &d.netns) {
            // An existing host link moved into a netns netprov creates.
            (InterfaceKind::Existing, NetnsSpec::Owned { .. }) => Some(&i.name),
            _ => host_name(i),
        };
        if let Some(h) = host {
            if let Some(f) = hosts.claim(h.clone(), n) {
                report(at.clone(), format!("host-side interface {h}"), f);
            }
        }
        let fields = i.addrs.iter().map(|a| (a, ""));
        let mv = i
            .macvlan
            .iter()
            .flat_map(|m| m.addrs.iter().map(|a| (a, ".macvlan")));
        for (a, sub) in fields.chain(mv) {
            let field = if a.is_ipv4() { "ip4" } else { "ip6" };
            if let Some(f) = addrs.claim(a.ip(), n) {
                report(
                    format!("{at}{sub}.{field}"),
                    format!("address {}", a.ip()),
                    f,
                );
            }
        }
    }
}

/// Claims the host ports `d` (the `n`th file) forwards: a port on all addresses
/// clashes with the same port on any one.
fn forwards(
    d: &Desired,
    n: usize,
    ports: &mut Claims<(L4Proto, u16), (Option<IpAddr>, usize)>,
    report: &mut Report,
) {
    for (k, fw) in d.host_rules.forwards.iter().enumerate() {
        let key = (fw.proto, fw.host_port);
        let clash = ports.all(&key).find(|(addr, f)| {
            *f != n && (fw.host_addr.is_none() || addr.is_none() || *addr == fw.host_addr)
        });
        if let Some(&(_, f)) = clash {
            report(
                format!("network.forwards[{k}]"),
                format!("{:?} host port {}", fw.proto, fw.host_port).to_lowercase(),
                f,
            );
        }
        ports.add(key, (fw.host_addr, n));
    }
}

/// Which container claimed each key first.
struct Claims<K, V = usize>(HashMap<K, Vec<V>>);

impl<K, V> Default for Claims<K, V> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: Hash + Eq> Claims<K, usize> {
    /// Records `n`'s claim; returns an earlier *other* container's claim.
    fn claim(&mut self, k: K, n: usize) -> Option<usize> {
        let v = self.0.entry(k).or_default();
        let first = v.iter().copied().find(|&f| f != n);
        v.push(n);
        first
    }
}

impl<K: Hash + Eq> Claims<K, (Option<IpAddr>, usize)> {
    fn all(&self, k: &K) -> impl Iterator<Item = &(Option<IpAddr>, usize)> {
        self.0.get(k).into_iter().flatten()
    }
    fn add(&mut self, k: K, v: (Option<IpAddr>, usize)) {
        self.0.entry(k).or_default().push(v);
    }
}
