//! The compiled-ruleset cache (`nft::ruleset::compiled`) through the `netprov` binary:
//! a cold apply stores the batch libnftables built, the next cold apply of the same
//! text sends it without libnftables, and the kernel ends up with the same ruleset
//! either way — for generated rulesets, checked by listing and by traffic. A batch
//! bound to its netns or host is never stored; a damaged or refused entry falls back
//! to libnftables.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use testkit::{ns_ok, ping_from, text, HostNetns, PropsDir};

const HIT: &str = "loaded the cached batch";
const REFUSED: &str = "refused the cached batch";

struct T {
    host: HostNetns,
    dir: PropsDir,
    cache: PathBuf,
}

impl T {
    fn new() -> Self {
        let dir = PropsDir::new();
        let cache = dir.0.join("nft-batches");
        T {
            host: HostNetns::new(),
            dir,
            cache,
        }
    }

    /// Applies `network` to a new container with `-vv` and the private cache; returns
    /// the container id and netprov's output.
    fn apply(&mut self, network: Value) -> (String, Output) {
        let id = self.host.new_id("bc");
        self.host.destroy_on_drop(&id);
        let p = self.dir.write_network(&id, network);
        let o = self.netprov(&["-vv", "apply", &p]);
        assert!(o.status.success(), "apply: {}", text(&o));
        (id, o)
    }

    fn netprov(&self, args: &[&str]) -> Output {
        let bin = testkit::netprov_bin();
        let mut c = self.host.cmd(bin.to_str().unwrap(), args);
        c.env("NETPROV_NFT_CACHE", &self.cache);
        c.output().unwrap()
    }

    /// The cache's entries (not the temporary files a store writes first).
    fn entries(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(&self.cache) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = rd
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        v.sort();
        v
    }
}

fn ruleset(id: &str) -> String {
    ns_ok(id, "nft", &["list", "ruleset"])
}

fn hit(o: &Output) -> bool {
    String::from_utf8_lossy(&o.stderr).contains(HIT)
}

/// A small deterministic generator (no dependency on the test's order or the clock).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Rule fragments whose batch is the same in every netns (strings, not indexes).
const RULES: &[&str] = &[
    "ct state established,related accept",
    "ct state invalid drop",
    "iif lo accept",
    "oif lo accept",
    "iifname \"eth0\" tcp dport 8080 accept",
    "meta l4proto { icmp, ipv6-icmp } accept",
    "tcp dport { 22, 80, 443 } accept",
    "udp dport 53 counter accept",
    "ip saddr 10.0.0.0/8 tcp dport ssh accept",
    "ip6 saddr fd00::/8 counter drop",
    "ip saddr @allowed4 accept",
    "ip saddr . tcp dport @pairs accept",
    "tcp dport vmap { 2222 : accept, 2323 : drop }",
    "meta mark set 0x10",
    "limit rate 10/second accept",
    "log prefix \"np \" level info",
    "jump sub",
    "counter name c1",
    "quota 10 mbytes",
    "ip protocol tcp tcp flags syn counter",
    "icmpv6 type { nd-neighbor-solicit, nd-router-advert } accept",
    "meta nfproto ipv4 ip ttl 1 drop",
];

fn generated(rng: &mut Rng) -> String {
    let mut rules = Vec::new();
    for _ in 0..2 + rng.below(7) {
        let r = RULES[rng.below(RULES.len())];
        if !rules.contains(&r) {
            rules.push(r);
        }
    }
    let policy = ["accept", "drop"][rng.below(2)];
    let mut t = format!(
        "table inet filter {{\n  set allowed4 {{\n    type ipv4_addr; flags interval\n    elements = {{ 10.1.0.0/16, 192.168.0.1 }}\n  }}\n  set pairs {{\n    type ipv4_addr . inet_service\n    elements = {{ 10.0.0.1 . 22 }}\n  }}\n  counter c1 {{\n  }}\n  chain sub {{\n    counter\n    return\n  }}\n  chain input {{\n    type filter hook input priority 0; policy {policy};\n    {}\n  }}\n",
        rules.join("\n    ")
    );
    if rng.below(2) == 0 {
        t.push_str("  chain post {\n    type nat hook postrouting priority 100;\n    oifname \"eth0\" masquerade\n  }\n");
    }
    t.push_str("}\n");
    if rng.below(3) == 0 {
        t.push_str("table ip raw {\n  chain pre {\n    type filter hook prerouting priority -300;\n    notrack\n  }\n}\n");
    }
    t
}

#[test]
fn a_cached_batch_loads_what_libnftables_loaded_for_generated_rulesets() {
    let mut t = T::new();
    let mut rng = Rng(0x6e70_6361_6368_6531);
    for case in 0..12 {
        let nft = generated(&mut rng);
        let (a, oa) = t.apply(json!({ "nft": nft }));
        assert!(!hit(&oa), "case {case}: the first load compiles\n{nft}");
        let (b, ob) = t.apply(json!({ "nft": nft }));
        assert!(
            hit(&ob),
            "case {case}: the second load replays\n{nft}\n{}",
            text(&ob)
        );
        assert_eq!(ruleset(&a), ruleset(&b), "case {case}\n{nft}");
        // The replayed load is intact for the next apply: nothing to do.
        let p = t.dir.path(&format!("{b}.json"));
        let again = t.netprov(&["apply", &p]);
        assert!(
            text(&again).contains("in sync"),
            "case {case}: {}",
            text(&again)
        );
    }
    assert_eq!(t.entries().len(), 12, "one entry per ruleset");
}

#[test]
fn a_replayed_ruleset_filters_traffic() {
    let mut t = T::new();
    let drop_icmp = "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    meta l4proto icmp drop\n  }\n}\n";
    let net = |n: u8, nft: &str| {
        json!({
            "interfaces": { "eth0": {
                "ip4": format!("10.79.{n}.2/24"), "hostIp4": format!("10.79.{n}.1/24") } },
            "nft": nft,
        })
    };
    let (_, first) = t.apply(net(1, drop_icmp));
    assert!(!hit(&first));
    let (b, ob) = t.apply(net(2, drop_icmp));
    assert!(hit(&ob), "{}", text(&ob));
    assert!(
        !ping_from(&t.host.name, "10.79.2.1", "10.79.2.2"),
        "the cached ruleset drops ICMP"
    );
    // The same container without the rule answers: the drop was the ruleset's doing.
    let p = t.dir.write_network(&b, net(2, "table inet filter {\n}\n"));
    let o = t.netprov(&["apply", &p]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(ping_from(&t.host.name, "10.79.2.1", "10.79.2.2"));
}

#[test]
fn batches_bound_to_their_netns_or_host_are_not_stored() {
    let mut t = T::new();
    let iface = |nft: &str| {
        json!({
            "interfaces": { "eth0": { "ip4": "10.79.9.2/24", "hostIp4": "10.79.9.1/24" } },
            "nft": nft,
        })
    };
    let chain = |rule: &str| {
        format!("table inet f {{\n  chain c {{\n    type filter hook input priority 0;\n    {rule}\n  }}\n}}\n")
    };
    for (what, network) in [
        ("an interface index", iface(&chain("iif eth0 accept"))),
        (
            "an interface index set",
            iface(&chain("iif { lo, eth0 } accept")),
        ),
        ("a uid", json!({ "nft": chain("meta skuid 0 accept") })),
        (
            "a host name",
            json!({ "nft": chain("ip saddr localhost accept") }),
        ),
        (
            "fib oif",
            json!({ "nft": chain("fib saddr oif lo accept") }),
        ),
    ] {
        let (id, o) = t.apply(network);
        assert!(!hit(&o), "{what}");
        assert!(t.entries().is_empty(), "{what}: nothing stored");
        assert!(
            ruleset(&id).contains("table inet f"),
            "{what}: loaded all the same"
        );
    }
}

/// Replaces the batch of the cache entry at `path` (keeping its library line) and
/// writes a matching checksum, as a valid entry with that batch would have.
fn rewrite_batch(path: &Path, batch: &[u8]) {
    let b = std::fs::read(path).unwrap();
    let mut lines = b.splitn(4, |c| *c == b'\n');
    let (magic, lib) = (lines.next().unwrap(), lines.next().unwrap());
    let sum: String = Sha256::digest(batch)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    let mut out = [magic, b"\n", lib, b"\n", sum.as_bytes(), b"\n"].concat();
    out.extend_from_slice(batch);
    std::fs::write(path, out).unwrap();
}

/// begin, NEWCHAIN `c` in a table that does not exist, end: the kernel answers ENOENT.
fn refused_batch() -> Vec<u8> {
    let msg = |kind: u16, attrs: &[u8]| {
        let mut m = ((20 + attrs.len()) as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&[1, 0, 0, 10]);
        m.extend_from_slice(attrs);
        m
    };
    let attr = |kind: u16, v: &[u8]| {
        let mut a = ((4 + v.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(v);
        a.resize(a.len().div_ceil(4) * 4, 0);
        a
    };
    let chain = [attr(1, b"nope\0"), attr(3, b"c\0")].concat();
    [msg(16, &[]), msg(10 << 8 | 3, &chain), msg(17, &[])].concat()
}

#[test]
fn a_damaged_or_refused_entry_falls_back_to_libnftables() {
    let mut t = T::new();
    let nft = "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    tcp dport 22 accept\n  }\n}\n";
    let (a, _) = t.apply(json!({ "nft": nft }));
    let [entry] = &t.entries()[..] else {
        panic!("one entry: {:?}", t.entries());
    };
    let good = std::fs::read(entry).unwrap();

    // A flipped byte: the checksum fails, the entry is ignored and written again.
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 0x40;
    std::fs::write(entry, &bad).unwrap();
    let (b, o) = t.apply(json!({ "nft": nft }));
    assert!(!hit(&o), "{}", text(&o));
    assert_eq!(ruleset(&a), ruleset(&b));
    assert_eq!(std::fs::read(entry).unwrap(), good, "stored again");

    // A well-formed entry whose batch the kernel refuses: dropped, libnftables loads.
    rewrite_batch(entry, &refused_batch());
    let (c, o) = t.apply(json!({ "nft": nft }));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(REFUSED),
        "{}",
        text(&o)
    );
    assert_eq!(ruleset(&a), ruleset(&c));
    assert_eq!(std::fs::read(entry).unwrap(), good, "stored again");

    // And with the cache off nothing is read or written.
    std::fs::remove_file(entry).unwrap();
    let id = t.host.new_id("bc");
    t.host.destroy_on_drop(&id);
    let p = t.dir.write_network(&id, json!({ "nft": nft }));
    let bin = testkit::netprov_bin();
    let mut cmd = t.host.cmd(bin.to_str().unwrap(), &["apply", &p]);
    cmd.env("NETPROV_NFT_CACHE", "off");
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(t.entries().is_empty());
    assert_eq!(ruleset(&a), ruleset(&id));
}

#[test]
fn concurrent_first_loads_agree_and_leave_one_entry() {
    let mut t = T::new();
    let nft = "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    udp dport 5353 drop\n  }\n}\n";
    let ids: Vec<String> = (0..8)
        .map(|_| {
            let id = t.host.new_id("bc");
            t.host.destroy_on_drop(&id);
            id
        })
        .collect();
    let bin = testkit::netprov_bin();
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            let p = t.dir.write_network(id, json!({ "nft": nft }));
            let mut c = t.host.cmd(bin.to_str().unwrap(), &["apply", &p]);
            c.env("NETPROV_NFT_CACHE", &t.cache);
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    let first = ruleset(&ids[0]);
    for id in &ids[1..] {
        assert_eq!(ruleset(id), first, "{id}");
    }
    assert_eq!(t.entries().len(), 1);
    let all = std::fs::read_dir(&t.cache).unwrap().count();
    assert_eq!(all, 1, "no temporary file left behind");
}

#[test]
fn a_large_ruleset_replays_as_one_transaction() {
    let mut t = T::new();
    // ~3000 rules: a batch of several hundred KiB, far past the default socket buffers.
    let rules: String = (0..3000)
        .map(|p| format!("    tcp dport {} counter accept\n", 10000 + p))
        .collect();
    let nft = format!(
        "table inet big {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n{rules}  }}\n}}\n"
    );
    let (a, _) = t.apply(json!({ "nft": nft }));
    let (b, o) = t.apply(json!({ "nft": nft }));
    assert!(hit(&o), "{}", text(&o));
    let (la, lb) = (ruleset(&a), ruleset(&b));
    assert_eq!(
        lb.matches("accept").count(),
        3000 + 1,
        "every rule, and the policy"
    );
    assert_eq!(la, lb);
}
