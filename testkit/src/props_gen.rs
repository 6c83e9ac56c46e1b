//! A seeded generator of valid properties files for one container id, for the
//! convergence property test: every field the engine acts on (except OVS ports, which
//! need a private Open vSwitch per run), drawn from small pools so that successive
//! draws for one id change addresses, prefixes, host-end names, bridges, MTUs, MACs,
//! kinds (veth ↔ existing link) and the presence of macvlans, routes, forwards, nft,
//! sysctls and the whole network.
//!
//! Draws are JSON (what users write); a draw the validator refuses is redrawn, so the
//! grammar may be loose while the test only ever applies valid props.

use serde_json::{json, Map, Value};

use crate::HostNetns;

/// A small deterministic generator (splitmix64): a seed replays a run exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// Container interface names. Each also exists in the host netns as one end of a
/// fixture veth pair (peer `<name>-p`), so any of them can be an `Existing` interface.
pub const NAMES: [&str; 3] = ["eth0", "lan", "wan"];
/// Linux bridges in the host netns, for `hostBridge`.
pub const BRIDGES: [&str; 2] = ["brA", "brB"];
/// OVS bridges (userspace datapath), when the grammar includes OVS ports.
pub const OVS_BRIDGES: [&str; 2] = ["ovsA", "ovsB"];

/// Which kinds the grammar draws besides veths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinds {
    /// Existing links (the host fixtures named like the interfaces).
    Existing,
    /// OVS ports, internal and veth style, on [`OVS_BRIDGES`]. No existing links: an
    /// internal port is a host device named like its interface.
    Ovs,
    /// Veths only, in an adopted netns (`netns_path`): existing links lent to an
    /// adopted netns stay there after destroy, so none are drawn.
    Adopted,
}
/// `hostName` values.
const HOST_NAMES: [&str; 2] = ["hv-a", "hv-b"];
const MTUS: [u32; 4] = [1280, 1400, 1500, 9000];
const RULESETS: [&str; 2] = [
    "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n",
    "table ip nat {\n  chain post {\n    type nat hook postrouting priority 100; policy accept;\n  }\n}\ntable inet filter {\n  chain pass {\n    type filter hook forward priority 0; policy accept;\n  }\n}\n",
];
const SYSCTLS: [&str; 3] = [
    "net.ipv4.ip_forward=1",
    "net.ipv4.ip_forward=0\nnet.ipv6.conf.all.forwarding=1",
    "net.ipv4.conf.all.rp_filter = 2",
];

/// Creates the host fixtures the grammar names: the Linux bridges and, with
/// [`Kinds::Existing`], for every interface name a veth pair `<name>` / `<name>-p`
/// standing for an existing host link. (OVS bridges are made by the caller.)
pub fn host_fixtures(host: &HostNetns, kinds: Kinds) {
    for b in BRIDGES {
        host.ok("ip", &["link", "add", b, "type", "bridge"]);
        host.ok("ip", &["link", "set", b, "up"]);
    }
    if kinds == Kinds::Existing {
        for n in NAMES {
            let p = format!("{n}-p");
            host.ok(
                "ip",
                &["link", "add", n, "type", "veth", "peer", "name", &p],
            );
        }
    }
}

/// What a drawn interface contributes to the container's routes and to the checks.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// (container interface, host-end IPv4 address) of veths that should answer a ping
    /// from the container (both ends have IPv4, the host end is not a bridge port).
    pub pings: Vec<(String, String)>,
}

// Long on purpose: the grammar's draws for one interface in order; the sequence of `rng`
// calls is what a seed replays, so it stays one readable sequence.
fn iface(
    rng: &mut Rng,
    k: usize,
    kinds: Kinds,
    used_host_names: &mut Vec<&'static str>,
) -> (Value, Vec<String>, Vec<String>, Facts) {
    let name = NAMES[k];
    let mut o = Map::new();
    let mut gw4 = Vec::new();
    let mut gw6 = Vec::new();
    let mut facts = Facts::default();
    let v = 1 + rng.below(3);
    let existing = kinds == Kinds::Existing && rng.chance(1, 5);
    let ovs = kinds == Kinds::Ovs && rng.chance(2, 5);
    if ovs {
        if rng.chance(3, 4) {
            o.insert("ip4".into(), json!(format!("10.{}.{v}.2/24", 250 + k)));
        }
        if rng.chance(1, 3) {
            o.insert("ip6".into(), json!(format!("fd{k}4:{v}::2/64")));
        }
        let mut port = Map::new();
        port.insert("bridge".into(), json!(rng.pick(&OVS_BRIDGES)));
        port.insert("vlan".into(), json!(rng.pick(&[0, 10, 20])));
        if rng.chance(1, 2) {
            port.insert("style".into(), json!("internal"));
        } else {
            port.insert("style".into(), json!("veth"));
            if rng.chance(1, 3) {
                free_host_name(rng, used_host_names, &mut o);
            }
        }
        o.insert("ovs".into(), Value::Object(port));
    } else if existing {
        if rng.chance(3, 4) {
            o.insert("ip4".into(), json!(format!("10.{}.{v}.2/24", 230 + k)));
            gw4.push(format!("10.{}.{v}.1", 230 + k));
        }
        if rng.chance(1, 3) {
            o.insert("ip6".into(), json!(format!("fd{k}2:{v}::2/64")));
        }
    } else {
        let (c4, h4, gw) = match rng.below(3) {
            // /31 pair (renumbering within one /24 is the classic failure).
            0 => (
                format!("10.{}.0.{}/31", 200 + k, 2 * v + 1),
                format!("10.{}.0.{}/31", 200 + k, 2 * v),
                format!("10.{}.0.{}", 200 + k, 2 * v),
            ),
            // Prefix-less, different subnets, joined by /32 device routes.
            1 => (
                format!("10.{}.{v}.2", 210 + k),
                format!("10.{}.100.1", 210 + k),
                format!("10.{}.100.1", 210 + k),
            ),
            _ => (
                format!("10.{}.{v}.2/24", 220 + k),
                format!("10.{}.{v}.1/24", 220 + k),
                format!("10.{}.{v}.1", 220 + k),
            ),
        };
        let has4 = rng.chance(4, 5);
        let hhas4 = rng.chance(4, 5);
        if has4 {
            o.insert("ip4".into(), json!(c4));
        }
        if hhas4 {
            o.insert("hostIp4".into(), json!(h4));
        }
        if has4 && hhas4 {
            gw4.push(gw.clone());
        }
        if rng.chance(1, 2) {
            let (c6, h6, g6) = if rng.chance(1, 2) {
                (
                    format!("fd{k}0::{:x}/127", 2 * v + 1),
                    format!("fd{k}0::{:x}/127", 2 * v),
                    format!("fd{k}0::{:x}", 2 * v),
                )
            } else {
                (
                    format!("fd{k}1:{v}::2/64"),
                    format!("fd{k}1:{v}::1/64"),
                    format!("fd{k}1:{v}::1"),
                )
            };
            o.insert("ip6".into(), json!(c6));
            if rng.chance(3, 4) {
                o.insert("hostIp6".into(), json!(h6));
                gw6.push(g6);
            }
        }
        if rng.chance(1, 4) {
            free_host_name(rng, used_host_names, &mut o);
        }
        let bridged = rng.chance(1, 5);
        if bridged {
            o.insert("hostBridge".into(), json!(rng.pick(&BRIDGES)));
        }
        if !["hostIp4", "hostIp6", "hostName", "hostBridge"]
            .iter()
            .any(|f| o.contains_key(*f))
        {
            o.insert("hostIp4".into(), json!(h4));
        }
        if has4 && o.contains_key("hostIp4") && !bridged {
            facts.pings.push((name.to_owned(), gw));
        }
    }
    if rng.chance(1, 4) {
        o.insert("mtu".into(), json!(rng.pick(&MTUS)));
    }
    if rng.chance(1, 5) {
        o.insert(
            "mac".into(),
            json!(format!("02:00:00:00:0{k}:0{}", 1 + rng.below(2))),
        );
    }
    if rng.chance(1, 3) {
        let mut m = Map::new();
        if rng.chance(3, 4) {
            m.insert("ip4".into(), json!(format!("10.{}.{v}.10/24", 240 + k)));
        }
        if rng.chance(1, 4) {
            m.insert("ip6".into(), json!(format!("fd{k}3:{v}::10/64")));
        }
        if rng.chance(1, 2) {
            m.insert("vrid".into(), json!(rng.pick(&["12", "13"])));
        }
        if rng.chance(1, 6) {
            m.insert("mac".into(), json!(format!("02:00:00:00:1{k}:01")));
        }
        o.insert("macvlan".into(), Value::Object(m));
    }
    (Value::Object(o), gw4, gw6, facts)
}

/// One draw of props for `id` (possibly invalid; see [`valid_props`]).
// Long on purpose: the grammar's draws for one container in order; the sequence of `rng`
// calls is what a seed replays, so it stays one readable sequence.
pub fn draw(rng: &mut Rng, id: &str, kinds: Kinds) -> (Value, Facts) {
    let mut top = Map::new();
    top.insert("id".into(), json!(id));
    if rng.chance(1, 2) {
        top.insert("sysctl".into(), json!(rng.pick(&SYSCTLS)));
    }
    if rng.chance(1, 12) {
        top.insert("network".into(), Value::Null);
        return (Value::Object(top), Facts::default());
    }
    let mut net = Map::new();
    let mut ifaces = Map::new();
    let mut gw4 = Vec::new();
    let mut gw6 = Vec::new();
    let mut facts = Facts::default();
    let mut used = Vec::new();
    let mut names = Vec::new();
    for (k, name) in NAMES.iter().enumerate() {
        if rng.chance(1, 2) {
            let (v, g4, g6, f) = iface(rng, k, kinds, &mut used);
            ifaces.insert((*name).into(), v);
            gw4.extend(g4);
            gw6.extend(g6);
            facts.pings.extend(f.pings);
            names.push(*name);
        }
    }
    if !gw4.is_empty() && rng.chance(1, 2) {
        net.insert("ip4route".into(), json!(rng.pick(&gw4)));
    }
    if !names.is_empty() && rng.chance(1, 3) {
        if !gw6.is_empty() && rng.chance(1, 2) {
            net.insert("ip6route".into(), json!(rng.pick(&gw6)));
        } else {
            net.insert(
                "ip6route".into(),
                json!(format!("fe80::1%{}", rng.pick(&names))),
            );
        }
    }
    if !names.is_empty() && rng.chance(1, 3) {
        let mut routes = Vec::new();
        for j in 0..1 + rng.below(2) {
            if !gw4.is_empty() && rng.chance(1, 2) {
                routes.push(json!({ "to": format!("10.99.{j}.0/24"), "via": rng.pick(&gw4) }));
            } else if rng.chance(1, 3) {
                let mut r = json!({ "to": format!("fd98:{j}::/64"), "dev": rng.pick(&names) });
                if rng.chance(2, 3) {
                    r["metric"] = json!(rng.pick(&[0, 100]));
                }
                routes.push(r);
            } else {
                let mut r = json!({ "to": format!("10.98.{j}.0/24"), "dev": rng.pick(&names) });
                if rng.chance(1, 2) {
                    r["metric"] = json!(100);
                }
                routes.push(r);
            }
        }
        net.insert("routes".into(), Value::Array(routes));
    }
    if rng.chance(1, 3) {
        net.insert("nft".into(), json!(rng.pick(&RULESETS)));
    }
    if rng.chance(1, 4) {
        net.insert("masquerade".into(), json!(true));
    }
    if rng.chance(1, 4) {
        let proto = *rng.pick(&["tcp", "udp"]);
        net.insert(
            "forwards".into(),
            json!([{ "proto": proto, "hostPort": 8000 + rng.below(3), "port": 80 }]),
        );
    }
    if rng.chance(1, 4) {
        net.insert("antiSpoof".into(), json!(false));
    }
    net.insert("interfaces".into(), Value::Object(ifaces));
    top.insert("network".into(), Value::Object(net));
    (Value::Object(top), facts)
}

/// Draws until the validator accepts and `keep` agrees; returns the props, their
/// model and the facts.
pub fn valid_props(
    rng: &mut Rng,
    id: &str,
    kinds: Kinds,
    netns_path: Option<&str>,
    keep: impl Fn(&netprov::model::Desired) -> bool,
) -> (Value, netprov::model::Desired, Facts) {
    for _ in 0..500 {
        let (mut v, f) = draw(rng, id, kinds);
        if let Some(p) = netns_path {
            if v["network"].is_null() {
                v["network"] = json!({});
            }
            v["network"]["netns_path"] = json!(p);
        }
        if let Ok(d) = netprov::props::parse_str(&v.to_string(), None) {
            if keep(&d) {
                return (v, d, f);
            }
        }
    }
    panic!("the generator made no valid props in 500 draws");
}

/// Names of `Existing` interfaces in `d`.
pub fn existing_names(d: &netprov::model::Desired) -> Vec<String> {
    d.interfaces
        .iter()
        .filter(|i| matches!(i.kind, netprov::model::InterfaceKind::Existing))
        .map(|i| i.name.to_string())
        .collect()
}

/// Whether `d` wants a link netprov makes under a name in `lent`: an `Existing` link
/// moved in earlier stays in the container until destroy (apply never moves an
/// unmarked link out; see docs/engine.md), so that name is taken.
pub fn reuses_lent_name(d: &netprov::model::Desired, lent: &[String]) -> bool {
    d.interfaces.iter().any(|i| {
        !matches!(i.kind, netprov::model::InterfaceKind::Existing)
            && lent.iter().any(|l| l == i.name.as_str())
    })
}

/// Gives interface `o` a `hostName` no other interface of this draw has, if one is
/// left (one draw from `rng` when one is).
fn free_host_name(
    rng: &mut Rng,
    used_host_names: &mut Vec<&'static str>,
    o: &mut Map<String, Value>,
) {
    let free: Vec<&'static str> = HOST_NAMES
        .iter()
        .copied()
        .filter(|h| !used_host_names.contains(h))
        .collect();
    if !free.is_empty() {
        let h = *rng.pick(&free);
        used_host_names.push(h);
        o.insert("hostName".into(), json!(h));
    }
}
