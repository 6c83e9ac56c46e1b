//! Builders of `Desired` values for the engine's end-to-end tests, and kernel-state
//! probes run with `ip` (verification only).
#![allow(dead_code)]

use std::path::PathBuf;

use netprov::engine::{Engine, Options};
use netprov::model::*;

use testkit::{nsenter, ok, output, succeeded, unique, HostNetns};

pub fn engine(host: &HostNetns, fail_after: Option<usize>) -> Engine {
    Engine::new(Options {
        host_netns: Some(host.path()),
        fail_after,
        ovsdb: None,
        ..Default::default()
    })
    .expect("engine")
}

pub fn n(s: &str) -> IfName {
    IfName::new(s).unwrap()
}

pub fn nets(v: &[&str]) -> Vec<ipnetwork::IpNetwork> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

/// An empty container (owned netns `/run/netns/<id>`), tracked for cleanup.
pub fn container(host: &mut HostNetns) -> Desired {
    let id = host.new_id("c");
    Desired {
        id: ContainerId::new(&id).unwrap(),
        netns: NetnsSpec::Owned {
            path: PathBuf::from("/run/netns").join(&id),
        },
        interfaces: Vec::new(),
        routes: Vec::new(),
        sysctls: Vec::new(),
        nft: None,
        host_rules: HostRules::default(),
    }
}

/// A veth interface `name` with a fresh host end name.
pub fn veth(name: &str, addrs: &[&str], host_addrs: &[&str]) -> Interface {
    Interface {
        name: n(name),
        kind: InterfaceKind::Veth(VethHost {
            name: n(&unique("v")),
            addrs: nets(host_addrs),
            bridge: None,
        }),
        addrs: nets(addrs),
        mtu: None,
        mac: None,
        macvlan: None,
    }
}

pub fn host_end(i: &Interface) -> String {
    match &i.kind {
        InterfaceKind::Veth(h) => h.name.to_string(),
        _ => panic!("not a veth"),
    }
}

pub fn route(dest: &str, gw: Option<&str>, dev: Option<&str>) -> Route {
    Route {
        dest: dest.parse().unwrap(),
        gateway: gw.map(|g| g.parse().unwrap()),
        dev: dev.map(n),
        metric: None,
    }
}

pub fn sysctl(key: &str, value: &str) -> Sysctl {
    Sysctl {
        key: key.into(),
        path: key.replace('.', "/"),
        value: value.into(),
    }
}

pub fn netns_path(d: &Desired) -> String {
    d.netns.path().display().to_string()
}

/// Runs a command inside the container netns.
pub fn in_ct(d: &Desired, cmd: &str, args: &[&str]) -> std::process::Output {
    output(&mut nsenter(d.netns.path(), cmd, args))
}

pub fn in_ct_ok(d: &Desired, cmd: &str, args: &[&str]) -> String {
    succeeded(&format!("[{}] {cmd} {args:?}", d.id), in_ct(d, cmd, args))
}

pub fn ping(from: impl Fn(&str, &[&str]) -> String, to: &str) {
    from("ping", &["-c1", "-W3", to]);
}

/// Links in the host netns other than `lo` (and the given extra ones).
pub fn host_links(host: &HostNetns) -> Vec<String> {
    host.ok("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|s| s.split('@').next().unwrap().to_owned())
        .filter(|s| s != "lo")
        .collect()
}

/// Routes with netprov's protocol in the host netns.
pub fn host_netprov_routes(host: &HostNetns) -> String {
    let mut s = host.ok("ip", &["-4", "route", "show", "proto", "77"]);
    s += &host.ok("ip", &["-6", "route", "show", "proto", "77"]);
    s
}

pub fn netns_exists(d: &Desired) -> bool {
    d.netns.path().exists()
}

pub fn wait_ok(f: impl Fn() -> bool) -> bool {
    for _ in 0..30 {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

pub fn ip_ok(args: &[&str]) -> String {
    ok("ip", args)
}
