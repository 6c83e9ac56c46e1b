//! The measurement behind "Why two nftables paths" (docs/nftables.md): the host table
//! loaded and read back through libnftables (nft text, JSON listing) against the nftnl
//! batch and netlink dump netprov uses. Not a test: run it by hand, as root (it
//! unshares a scratch netns on its own thread; the host's ruleset is never touched):
//!
//! `cargo test -p netprov --lib stack_bench -- --ignored --nocapture`

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::read::{observe_here, table_exists};
use super::spec::tests::numbered_links;
use super::{build, HostSpec, HostState};
use crate::model::{ContainerId, HostRules, L4Proto, PortForward};
use crate::nft::ffi;
use crate::nft::netlink::NfSocket;

/// `NFT_CTX_OUTPUT_JSON`.
const OUTPUT_JSON: u32 = 1 << 4;

fn spec(n: usize) -> HostSpec {
    let links = numbered_links(n);
    let rules = HostRules {
        anti_spoof: true,
        masquerade: true,
        forwards: vec![PortForward {
            proto: L4Proto::Tcp,
            host_port: 8080,
            host_addr: None,
            to_addr: "10.0.0.2".parse().unwrap(),
            to_port: 80,
        }],
    };
    HostSpec::new(ContainerId::new("bench").unwrap(), &rules, links)
}

/// The same table as nft text (what a libnftables host path would send).
fn nft_text(s: &HostSpec) -> String {
    let elems = |v: Vec<String>| {
        if v.is_empty() {
            String::new()
        } else {
            format!(" elements = {{ {} }};", v.join(", "))
        }
    };
    let pairs = |v6: bool| {
        let mut v = Vec::new();
        for l in &s.links {
            for a in l.container_addrs.iter().filter(|a| a.is_ipv6() == v6) {
                v.push(format!("\"{}\" . {a}", l.host_if));
            }
        }
        v
    };
    let addrs = |v6: bool| {
        let all = s.links.iter().flat_map(|l| l.container_addrs.iter());
        all.filter(|a| a.is_ipv6() == v6)
            .map(IpAddr::to_string)
            .collect()
    };
    let ifs = s
        .links
        .iter()
        .map(|l| format!("\"{}\"", l.host_if))
        .collect();
    let mut t = ["table inet ", &s.table_name(), " {\n"].concat();
    let _ = writeln!(
        t,
        "set links-v4 {{ type ifname . ipv4_addr;{} }}\nset links-v6 {{ type ifname . ipv6_addr;{} }}\nset links {{ type ifname;{} }}",
        elems(pairs(false)),
        elems(pairs(true)),
        elems(ifs)
    );
    t.push_str(
        "chain spoof { type filter hook prerouting priority raw; policy accept;\n\
         meta nfproto ipv4 iifname . ip saddr @links-v4 accept\n\
         meta nfproto ipv6 iifname . ip6 saddr @links-v6 accept\n\
         iifname @links meta nfproto ipv6 ip6 saddr fe80::/10 accept\n\
         iifname @links meta nfproto ipv6 ip6 saddr :: accept\n\
         iifname @links meta nfproto ipv4 drop\n\
         iifname @links meta nfproto ipv6 drop\n}\n",
    );
    // nft 1.0.6 cannot parse a chain named `dnat` or `snat` (keywords, quoted or not), nor
    // `priority dstnat` on the inet output hook: other names, the number.
    for (name, hook) in [("pfwd", "prerouting"), ("pfwd-local", "output")] {
        let _ = writeln!(
            t,
            "chain {name} {{ type nat hook {hook} priority -100; policy accept;\n\
             meta nfproto ipv4 fib daddr type local meta l4proto tcp tcp dport 8080 dnat ip to 10.0.0.2:80\n}}"
        );
    }
    let _ = writeln!(
        t,
        "set addrs-v4 {{ type ipv4_addr;{} }}\nset addrs-v6 {{ type ipv6_addr;{} }}",
        elems(addrs(false)),
        elems(addrs(true))
    );
    t.push_str(
        "chain postnat { type nat hook postrouting priority srcnat; policy accept;\n\
         meta nfproto ipv4 oifname . ip saddr @links-v4 return\n\
         meta nfproto ipv6 oifname . ip6 saddr @links-v6 return\n\
         meta nfproto ipv4 ip saddr @addrs-v4 masquerade\n\
         meta nfproto ipv6 ip6 saddr @addrs-v6 masquerade\n}\n}\n",
    );
    t
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(runs: usize, mut setup: impl FnMut(), mut f: impl FnMut()) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                setup();
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn nft_run(cmds: &str, flags: u32) -> String {
    let res = ffi::with_ctx(|ctx| {
        ctx.set_output_flags(flags);
        ctx.run(cmds)
    })
    .unwrap();
    assert_eq!(res.rc, 0, "{}", res.error);
    res.output
}

/// The current path: [`super::apply_host`]'s body without `in_netns`.
fn nftnl_load(s: &HostSpec) {
    let sock = NfSocket::open().unwrap();
    let table = s.table_name();
    let mut msgs = build::messages(s);
    if table_exists(&sock, &table).unwrap() {
        let mut replace = build::delete_table(&table);
        replace.append(&mut msgs);
        msgs = replace;
    } else {
        build::set_exclusive(&mut msgs[0], true);
    }
    sock.run_batch(&build::batch(&msgs)).unwrap();
}

fn remove(s: &HostSpec) {
    let t = s.table_name();
    nft_run(&format!("add table inet {t}; delete table inet {t}"), 0);
}

fn bench(n: usize, runs: usize) {
    let s = spec(n);
    let text = nft_text(&s);
    let table = s.table_name();
    let replace = format!("add table inet {table}; delete table inet {table}\n{text}");
    let want = s.expected();
    let nothing = || {};
    let create_nftnl = time(runs, || remove(&s), || nftnl_load(&s));
    let create_text = time(runs, || remove(&s), || drop(nft_run(&text, 0)));
    let replace_nftnl = time(runs, nothing, || nftnl_load(&s));
    let replace_text = time(runs, nothing, || drop(nft_run(&replace, 0)));
    // Read back what libnftables loaded: does it compare equal to what netprov builds?
    let loaded_by_text = match observe_here(&table).unwrap() {
        HostState::Present(have) if *have == want => "equal".to_owned(),
        HostState::Present(have) => {
            if n == 1 {
                eprintln!(
                    "sets from text: {:?}\nsets netprov builds: {:?}",
                    have.sets, want.sets
                );
                eprintln!(
                    "table from text: flags {} objects {}",
                    have.flags, have.objects
                );
            }
            have.describe_difference(&want)
        }
        HostState::Absent => "absent".to_owned(),
    };
    nftnl_load(&s);
    let read_nftnl = time(runs, nothing, || {
        let st = observe_here(&table).unwrap();
        assert!(matches!(st, HostState::Present(h) if *h == want));
    });
    let list = format!("list table inet {table}");
    let mut json_len = 0;
    let read_json = time(runs, nothing, || {
        let out = nft_run(&list, OUTPUT_JSON);
        json_len = out.len();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v["nftables"].as_array().unwrap().len() > 5);
    });
    let read_text = time(runs, nothing, || drop(nft_run(&list, 0)));
    // JSON input has no keywords: netprov's own chain names load. The listing of the
    // table as libnftables loaded it from text, renamed, is the JSON to load.
    let (create_json, loaded_by_json) = load_json(&s, &text, runs);
    let batch_len = build::batch(&build::messages(&s)).len();
    eprintln!(
        "{n} veths (median of {runs}): create nftnl {create_nftnl:?} / text {create_text:?}; \
         replace nftnl {replace_nftnl:?} / text {replace_text:?}; \
         read nftnl dump+parse {read_nftnl:?} / JSON list+serde {read_json:?} / text list {read_text:?}; \
         batch {batch_len} B, nft text {} B, JSON {json_len} B; \
         create from JSON {create_json:?}; \
         table loaded from text vs netprov's content: {loaded_by_text}; \
         from JSON: {loaded_by_json}",
        text.len()
    );
    remove(&s);
}

/// Loads the table as libnftables JSON (netprov's chain names); the median creation
/// time and how the loaded table compares with netprov's content.
fn load_json(s: &HostSpec, text: &str, runs: usize) -> (Duration, String) {
    let table = s.table_name();
    remove(s);
    nft_run(text, 0);
    let mut json = nft_run(&format!("list table inet {table}"), OUTPUT_JSON);
    for (from, to) in [
        ("\"pfwd-local\"", "\"dnat-local\""),
        ("\"pfwd\"", "\"dnat\""),
        ("\"postnat\"", "\"snat\""),
    ] {
        json = json.replace(from, to);
    }
    let took = time(runs, || remove(s), || drop(nft_run(&json, OUTPUT_JSON)));
    let want = s.expected();
    let cmp = match observe_here(&table).unwrap() {
        HostState::Present(have) if *have == want => "equal".to_owned(),
        HostState::Present(have) => have.describe_difference(&want),
        HostState::Absent => "absent".to_owned(),
    };
    (took, cmp)
}

#[test]
#[ignore = "a measurement, not a test: run by hand as root (see the module doc)"]
fn stack_bench() {
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
        bench(1, 41);
        bench(500, 21);
    })
    .join()
    .unwrap();
}
