//! [`raw::Props`] → [`Desired`]: every value checked, every problem collected.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Component, PathBuf};

use ipnetwork::IpNetwork;

use super::addr::{self, Family};
use super::errors::{key_path, Errors};
use super::raw::{self, given};
use super::{iface, names, sysctl};
use crate::error::Invalid;
use crate::marks::NETNS_DIR;
use crate::model::{
    ContainerId, Desired, HostRules, IfName, InterfaceKind, L4Proto, NetnsSpec, PortForward, Route,
    Ruleset,
};

/// Largest `nft` ruleset text accepted.
pub const NFT_MAX: usize = 1 << 20;

/// Validates one parsed file; sysctl keys are checked with `probe` (one for all the
/// files of a load, see `sysctl::with_host_probe`).
pub(super) fn validate_probed(
    raw: &raw::Props,
    probe: &sysctl::Probe<'_>,
) -> Result<Desired, Vec<Invalid>> {
    let mut e = Errors::default();
    let id = e.check(
        "id",
        ContainerId::new(&raw.id).map_err(|m| format!("{:?} {m}", raw.id)),
    );
    // Derived names need an id; with an invalid one, a stand-in keeps the other checks going.
    let name_id = id
        .clone()
        .unwrap_or_else(|| ContainerId::new("invalid").expect("valid id"));
    let net = raw.network.clone().unwrap_or_default();

    let netns = match given(&net.netns_path) {
        None => Some(NetnsSpec::Owned {
            path: crate::marks::netns_path(&name_id),
        }),
        Some(p) => e
            .check("network.netns_path", netns_path(p))
            .map(|path| NetnsSpec::Adopted { path }),
    };

    let mut interfaces: Vec<_> = net
        .interfaces
        .iter()
        .flatten()
        .filter_map(|(name, i)| iface::interface(&mut e, &name_id, name, i))
        .collect();
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    unique_names(&mut e, &interfaces);

    let (links, addrs) = links_and_addrs(&mut e, &interfaces);
    let routes = routes(&mut e, &net, &links);
    let nft = given(&net.nft).and_then(|t| e.check("network.nft", ruleset(t)));
    let has_veth = interfaces
        .iter()
        .any(|i| matches!(i.kind, InterfaceKind::Veth(_)));
    let host_rules = HostRules {
        anti_spoof: has_veth && net.anti_spoof != Some(false),
        masquerade: net.masquerade.unwrap_or(false),
        forwards: forwards(&mut e, &net, &addrs),
    };
    let sysctls = sysctls(&mut e, raw, &net, &links, probe);

    match (e.0.is_empty(), id, netns) {
        (true, Some(id), Some(netns)) => Ok(Desired {
            id,
            netns,
            interfaces,
            routes,
            sysctls,
            nft,
            host_rules,
        }),
        _ => Err(e.0),
    }
}

/// Container-side links (interfaces and macvlans) by name, and their addresses; an
/// address is used once per container.
fn links_and_addrs<'a>(
    e: &mut Errors,
    interfaces: &'a [crate::model::Interface],
) -> (Vec<&'a IfName>, Vec<(IpNetwork, String)>) {
    let mut links: Vec<&IfName> = Vec::new();
    let mut addrs: Vec<(IpNetwork, String)> = Vec::new();
    for i in interfaces {
        links.push(&i.name);
        addrs.extend(i.addrs.iter().map(|a| (*a, i.name.to_string())));
        if let Some(m) = &i.macvlan {
            links.push(&m.name);
            addrs.extend(m.addrs.iter().map(|a| (*a, m.name.to_string())));
        }
    }
    let mut seen = BTreeMap::new();
    for (a, on) in &addrs {
        if let Some(first) = seen.insert(a.ip(), on) {
            e.err(
                "network.interfaces",
                format!(
                    "address {} is on both {first} and {on}; an address is used once per container",
                    a.ip()
                ),
            );
        }
    }
    (links, addrs)
}

/// `network.nft`: bounded, no NUL, no `include` (it would read host files).
fn ruleset(t: &str) -> Result<Ruleset, String> {
    if t.len() > NFT_MAX {
        Err(format!(
            "ruleset is {} bytes, at most {NFT_MAX} (1 MiB)",
            t.len()
        ))
    } else if t.contains('\0') {
        Err("ruleset contains a NUL byte".into())
    } else if let Some((line, col)) = crate::nft::include::find(t) {
        Err(crate::nft::include::message(line, col))
    } else {
        Ok(Ruleset { text: t.to_owned() })
    }
}

/// `sysctl`: checked against the container's link names (and whether its netns is
/// adopted).
fn sysctls(
    e: &mut Errors,
    raw: &raw::Props,
    net: &raw::Network,
    links: &[&IfName],
    probe: &sysctl::Probe<'_>,
) -> Vec<crate::model::Sysctl> {
    match &raw.sysctl {
        Some(raw::Sysctls::Text(t)) if t.trim().is_empty() => Vec::new(),
        Some(s) => sysctl::validate_with(
            s,
            &sysctl::Container {
                ifnames: links.iter().map(|l| l.as_str()).collect(),
                adopted: given(&net.netns_path).is_some(),
            },
            probe,
        )
        .unwrap_or_else(|errs| {
            e.0.extend(errs);
            Vec::new()
        }),
        None => Vec::new(),
    }
}

fn netns_path(p: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(p);
    if !path.is_absolute() {
        return Err(format!(
            "{p:?} is not an absolute path; use \"\" to let netprov create {NETNS_DIR}/<id>"
        ));
    }
    if p.contains('\0') || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{p:?} must not contain \"..\" or NUL"));
    }
    Ok(path)
}

/// Container-side names (interfaces and macvlans) and host-side names are unique.
fn unique_names(e: &mut Errors, interfaces: &[crate::model::Interface]) {
    let mut inside = BTreeSet::new();
    let mut host = BTreeMap::new();
    for i in interfaces {
        inside.insert(&i.name);
    }
    for i in interfaces {
        if let Some(m) = &i.macvlan {
            if !inside.insert(&m.name) {
                e.err(
                    format!("{}.macvlan", key_path("network.interfaces", i.name.as_str())),
                    format!("the macvlan name {} is already used in this container; rename the interface", m.name),
                );
            }
        }
        if let Some(h) = names::host_name(i) {
            if let Some(other) = host.insert(h.clone(), &i.name) {
                e.err(
                    key_path("network.interfaces", i.name.as_str()),
                    format!("host-side name {h} is also used by interface {other}; set hostName to tell them apart"),
                );
            }
        }
    }
}

fn routes(e: &mut Errors, net: &raw::Network, links: &[&IfName]) -> Vec<Route> {
    let mut out = Vec::new();
    let defaults = [
        ("network.ip4route", &net.ip4route, Family::V4, "0.0.0.0/0"),
        ("network.ip6route", &net.ip6route, Family::V6, "::/0"),
    ];
    for (at, gw, family, dest) in defaults {
        let Some(s) = given(gw) else { continue };
        let Some((ip, dev)) = e.check(at, addr::gateway(s, family)) else {
            continue;
        };
        if let Some(dev) = e.check(at, output_dev(s, ip, dev, links)) {
            out.push(Route {
                dest: dest.parse().expect("valid default"),
                gateway: Some(ip),
                dev,
                metric: None,
            });
        }
    }
    for (i, r) in net.routes.iter().flatten().enumerate() {
        out.extend(route(e, &format!("network.routes[{i}]"), r, links));
    }
    let mut seen = BTreeSet::new();
    for r in &out {
        if !seen.insert((r.dest, r.metric)) {
            e.err(
                "network.routes",
                format!(
                    "two routes to {} with the same metric; give one a different metric",
                    r.dest
                ),
            );
        }
    }
    out
}

/// One `network.routes` entry at `at`; `None` when invalid (errors recorded).
fn route(e: &mut Errors, at: &str, r: &raw::Route, links: &[&IfName]) -> Option<Route> {
    let dest = e.check(format!("{at}.to"), destination(&r.to))?;
    let family = if dest.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    let via = match given(&r.via) {
        Some(s) => Some(e.check(format!("{at}.via"), addr::gateway(s, family))?),
        None => None,
    };
    let dev = given(&r.dev);
    if let Some(d) = dev {
        if !links.iter().any(|l| l.as_str() == d) {
            e.err(
                format!("{at}.dev"),
                format!(
                    "{d:?} is not an interface of this container (have: {})",
                    join(links)
                ),
            );
            return None;
        }
    }
    let route = match (via, dev) {
        (None, None) => {
            Err("a route needs \"via\" (a gateway) or \"dev\" (an interface), or both".to_owned())
        }
        (None, Some(d)) => Ok(Route {
            dest,
            gateway: None,
            dev: IfName::new(d).ok(),
            metric: r.metric,
        }),
        (Some((ip, zone)), _) => {
            if let (Some(z), Some(d)) = (zone, dev) {
                if z != d {
                    e.err(
                        format!("{at}.via"),
                        format!("zone %{z} contradicts dev {d:?}"),
                    );
                    return None;
                }
            }
            output_dev(
                r.via.as_deref().unwrap_or_default(),
                ip,
                zone.or(dev),
                links,
            )
            .map(|dev| Route {
                dest,
                gateway: Some(ip),
                dev,
                metric: r.metric,
            })
        }
    };
    e.check(at, route)
}

fn destination(s: &str) -> Result<IpNetwork, String> {
    let n: IpNetwork = s
        .parse()
        .map_err(|_| format!("{s:?} is not a destination network (e.g. 10.1.0.0/16)"))?;
    let canonical = IpNetwork::new(n.network(), n.prefix()).expect("same prefix");
    if canonical.ip() != n.ip() {
        return Err(format!("{s:?} has host bits set; write {canonical}"));
    }
    Ok(n)
}

/// The output interface of a gateway: the `%zone`, or for a link-local IPv6 gateway
/// the container's only link.
fn output_dev(
    s: &str,
    ip: IpAddr,
    zone: Option<&str>,
    links: &[&IfName],
) -> Result<Option<IfName>, String> {
    if let Some(z) = zone {
        return match links.iter().find(|l| l.as_str() == z) {
            Some(l) => Ok(Some((*l).clone())),
            None => Err(format!(
                "{s:?} names interface {z:?}, which this container does not have (have: {})",
                join(links)
            )),
        };
    }
    if !(ip.is_ipv6() && addr::is_link_local(&ip)) {
        return Ok(None);
    }
    match links {
        [only] => Ok(Some((*only).clone())),
        [] => Err(format!("{s:?} is link-local and needs an output interface, but the container has none")),
        [first, ..] => Err(format!(
            "{s:?} is link-local, so the output interface must be named: there are {} interfaces ({}); write \"{ip}%{first}\"",
            links.len(),
            join(links)
        )),
    }
}

fn join(links: &[&IfName]) -> String {
    links
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn forwards(e: &mut Errors, net: &raw::Network, addrs: &[(IpNetwork, String)]) -> Vec<PortForward> {
    let mut out: Vec<PortForward> = Vec::new();
    // JSON index of each entry of `out`.
    let mut at_index = Vec::new();
    let first_v4 = addrs.iter().map(|(a, _)| a.ip()).find(IpAddr::is_ipv4);
    for (i, f) in net.forwards.iter().flatten().enumerate() {
        let at = format!("network.forwards[{i}]");
        let port = |field: &str, p: u32, e: &mut Errors| {
            e.check(
                format!("{at}.{field}"),
                u16::try_from(p)
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(format!("{p} is not a port: use 1–65535")),
            )
        };
        let host_port = port("hostPort", f.host_port, e);
        let to_port = port("port", f.port, e);
        let to = match given(&f.to) {
            Some(s) => e.check(format!("{at}.to"), s.parse::<IpAddr>().map_err(|_| format!("{s:?} is not an address")).and_then(|ip| {
                if addrs.iter().any(|(a, _)| a.ip() == ip) {
                    Ok(ip)
                } else {
                    Err(format!("{ip} is not an address of this container; forwards go to one of its own addresses"))
                }
            })),
            None => e.check(format!("{at}.to"), first_v4.ok_or("the container has no IPv4 address to forward to; set \"to\"".to_owned())),
        };
        let host_addr = given(&f.host_ip).and_then(|s| {
            e.check(
                format!("{at}.hostIp"),
                s.parse::<IpAddr>()
                    .map_err(|_| format!("{s:?} is not an address"))
                    .and_then(|ip| {
                        addr::usable(&ip).map(|()| ip).map_err(|why| {
                            format!("{s:?} is {why}, not a host address to forward from")
                        })
                    })
                    .and_then(|ip| match to {
                        Some(t) if t.is_ipv4() != ip.is_ipv4() => {
                            Err(format!("{ip} and the target {t} are of different families"))
                        }
                        _ => Ok(ip),
                    }),
            )
        });
        let proto = match f.proto {
            raw::Proto::Tcp => L4Proto::Tcp,
            raw::Proto::Udp => L4Proto::Udp,
        };
        let (Some(host_port), Some(to_port), Some(to_addr)) = (host_port, to_port, to) else {
            continue;
        };
        if given(&f.host_ip).is_some() && host_addr.is_none() {
            continue;
        }
        // The same rule as between files (cross.rs): a forward without hostIp takes the
        // port on every host address, so it overlaps any other forward of that port.
        let clash = out.iter().position(|o: &PortForward| {
            o.proto == proto
                && o.host_port == host_port
                && (o.host_addr.is_none() || host_addr.is_none() || o.host_addr == host_addr)
        });
        if let Some(k) = clash.map(|c| at_index[c]) {
            e.err(
                at.clone(),
                format!("host port {host_port} is already forwarded by network.forwards[{k}]; two forwards of one port overlap unless both name different hostIp addresses"),
            );
        }
        at_index.push(i);
        out.push(PortForward {
            proto,
            host_port,
            host_addr,
            to_addr,
            to_port,
        });
    }
    out
}
