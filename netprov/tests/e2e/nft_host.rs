//! End-to-end: host-side rules (nftnl batches) in a simulated host netns.
//!
//! Topology (made with `ip` as scaffolding):
//!   container netns ── veth ── host netns ── veth ── "outside" netns
//!   10.78.0.2/24          10.78.0.1/24  192.168.78.1/24        192.168.78.2/24
//! The outside netns has no route to 10.78.0.0/24, so it can only answer the
//! container when the host masquerades it.

// Pings send 3 echo requests: "passes" = at least one reply (tolerates slow neighbour
// discovery on a loaded machine), "dropped" = none of the three answered.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netprov::model::{ContainerId, HostRules, IfName, L4Proto, PortForward};
use netprov::nft::host::{
    self, apply_host, observe_host, observe_host_for, plan_host, remove_host, HostChange, HostSpec,
    HostState, VethLink,
};
use testkit::{ok, unique, HostNetns};

const CT_IP: &str = "10.78.0.2";
const HOST_IP: &str = "10.78.0.1";
const HOST_OUT_IP: &str = "192.168.78.1";
const OUT_IP: &str = "192.168.78.2";

struct Topo {
    host: HostNetns,
    ct: String,
    out: String,
    ve: String,
    id: ContainerId,
}

fn nsok(ns: &str, cmd: &str, args: &[&str]) -> String {
    let mut full = vec![format!("--net=/run/netns/{ns}"), "--".into(), cmd.into()];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ok("nsenter", &refs)
}

fn nscmd(ns: &str, cmd: &str, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(cmd)
        .args(args);
    c
}

impl Topo {
    fn new() -> Self {
        let mut host = HostNetns::new();
        let ct = unique("c");
        let out = unique("o");
        for ns in [&ct, &out] {
            ok("ip", &["netns", "add", ns]);
            host.track(ns);
            ok("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        let ve = unique("ve");
        let vo = unique("vo");
        host.ok(
            "ip",
            &[
                "link", "add", &ve, "type", "veth", "peer", "name", "eth0", "netns", &ct,
            ],
        );
        host.ok(
            "ip",
            &[
                "link", "add", &vo, "type", "veth", "peer", "name", "eth0", "netns", &out,
            ],
        );
        host.ok("ip", &["addr", "add", &format!("{HOST_IP}/24"), "dev", &ve]);
        host.ok(
            "ip",
            &["addr", "add", &format!("{HOST_OUT_IP}/24"), "dev", &vo],
        );
        host.ok("ip", &["link", "set", &ve, "up"]);
        host.ok("ip", &["link", "set", &vo, "up"]);
        host.ok("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        ok(
            "ip",
            &[
                "-n",
                &ct,
                "addr",
                "add",
                &format!("{CT_IP}/24"),
                "dev",
                "eth0",
            ],
        );
        ok("ip", &["-n", &ct, "link", "set", "eth0", "up"]);
        ok(
            "ip",
            &["-n", &ct, "route", "add", "default", "via", HOST_IP],
        );
        ok(
            "ip",
            &[
                "-n",
                &out,
                "addr",
                "add",
                &format!("{OUT_IP}/24"),
                "dev",
                "eth0",
            ],
        );
        ok("ip", &["-n", &out, "link", "set", "eth0", "up"]);
        let id = ContainerId::new(&ct).unwrap();
        Topo {
            host,
            ct,
            out,
            ve,
            id,
        }
    }

    fn hp(&self) -> PathBuf {
        self.host.path()
    }

    fn spec(&self, rules: HostRules) -> HostSpec {
        HostSpec::new(
            self.id.clone(),
            &rules,
            vec![VethLink {
                host_if: IfName::new(&self.ve).unwrap(),
                container_addrs: vec![CT_IP.parse().unwrap()],
            }],
        )
    }

    fn converge(&self, spec: &HostSpec) {
        let st = observe_host(&self.hp(), &spec.id).unwrap();
        match plan_host(spec, &st) {
            Some(HostChange::Apply { .. }) => apply_host(&self.hp(), spec).unwrap(),
            Some(HostChange::Remove) => remove_host(&self.hp(), &spec.id).unwrap(),
            None => {}
        }
        let st = observe_host(&self.hp(), &spec.id).unwrap();
        assert_eq!(plan_host(spec, &st), None, "converged: {st:?}");
    }

    fn ct_ping(&self, src: &str, dst: &str) -> bool {
        nscmd(
            &self.ct,
            "ping",
            &["-c", "3", "-i", "0.2", "-W", "1", "-I", src, dst],
        )
        .output()
        .unwrap()
        .status
        .success()
    }

    fn host_tables(&self) -> String {
        self.host.ok("nft", &["list", "tables"])
    }
}

struct Bg(Child);
impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn connect(cmd: Command) -> bool {
    let mut cmd = cmd;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if cmd.output().unwrap().status.success() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn add_foreign_table(t: &Topo) {
    t.host.ok(
        "nft",
        &["add table inet foreign { chain input { type filter hook input priority 0; policy accept; counter; }; }"],
    );
    t.host.ok("nft", &["add table ip netprov_other"]);
}

fn assert_foreign_table(t: &Topo) {
    let l = t.host.ok("nft", &["list", "table", "inet", "foreign"]);
    assert!(l.contains("chain input"), "{l}");
    assert!(t.host_tables().contains("table ip netprov_other"));
}

#[test]
fn anti_spoofing_drops_foreign_source() {
    let t = Topo::new();
    add_foreign_table(&t);
    nsok(
        &t.ct,
        "ip",
        &["addr", "add", "10.78.0.99/24", "dev", "eth0"],
    );
    assert!(
        t.ct_ping("10.78.0.99", HOST_IP),
        "spoofed source passes without rules"
    );

    let spec = t.spec(HostRules {
        anti_spoof: true,
        ..Default::default()
    });
    assert_eq!(observe_host(&t.hp(), &t.id).unwrap(), HostState::Absent);
    t.converge(&spec);
    assert!(t
        .host_tables()
        .contains(&format!("table inet {}", host::table_name(&t.id))));
    assert!(
        t.ct_ping(CT_IP, HOST_IP),
        "the container's own address passes"
    );
    assert!(
        !t.ct_ping("10.78.0.99", HOST_IP),
        "a spoofed source is dropped"
    );
    // IPv6 link-local (NDP) still passes.
    let ve_ll = t.host.ok(
        "ip",
        &["-6", "-o", "addr", "show", "dev", &t.ve, "scope", "link"],
    );
    let ve_ll = ve_ll
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.split('/').next())
        .expect("host end has an IPv6 link-local address")
        .to_owned();
    let ok6 = connect({
        let mut c = nscmd(
            &t.ct,
            "ping",
            &[
                "-6", "-c", "3", "-i", "0.2", "-W", "1", "-I", "eth0", &ve_ll,
            ],
        );
        c.stdout(Stdio::null());
        c
    });
    assert!(ok6, "link-local to {ve_ll} passes");
    assert_foreign_table(&t);

    remove_host(&t.hp(), &t.id).unwrap();
    remove_host(&t.hp(), &t.id).unwrap(); // idempotent
    assert_eq!(observe_host(&t.hp(), &t.id).unwrap(), HostState::Absent);
    assert!(t.ct_ping("10.78.0.99", HOST_IP));
    assert_foreign_table(&t);
}

#[test]
fn masquerade_shows_the_host_address_outside() {
    let t = Topo::new();
    add_foreign_table(&t);
    assert!(
        !t.ct_ping(CT_IP, OUT_IP),
        "no route back without masquerade"
    );
    let spec = t.spec(HostRules {
        anti_spoof: true,
        masquerade: true,
        ..Default::default()
    });
    t.converge(&spec);
    assert!(
        t.ct_ping(CT_IP, OUT_IP),
        "masqueraded egress reaches outside"
    );
    // The outside sees the host's address as the source of a TCP connection.
    let nc = Bg(nscmd(&t.out, "nc", &["-l", "-n", "-v", "9000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    assert!(connect(nscmd(
        &t.ct,
        "nc",
        &["-z", "-w", "1", OUT_IP, "9000"]
    )));
    let mut nc = nc;
    let _ = nc.0.wait();
    let mut err = String::new();
    use std::io::Read;
    nc.0.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains(HOST_OUT_IP), "outside saw: {err}");
    assert!(!err.contains(CT_IP), "outside saw: {err}");
    assert_foreign_table(&t);
}

#[test]
fn port_forward_reaches_the_container() {
    let t = Topo::new();
    add_foreign_table(&t);
    let _nc = Bg(nscmd(&t.ct, "nc", &["-lk", "8080"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap());
    let spec = t.spec(HostRules {
        anti_spoof: true,
        masquerade: false,
        forwards: vec![
            PortForward {
                proto: L4Proto::Tcp,
                host_port: 80,
                host_addr: None,
                to_addr: CT_IP.parse().unwrap(),
                to_port: 8080,
            },
            PortForward {
                proto: L4Proto::Tcp,
                host_port: 81,
                host_addr: Some(HOST_IP.parse().unwrap()),
                to_addr: CT_IP.parse().unwrap(),
                to_port: 8080,
            },
        ],
    });
    let outside =
        |port: &str, addr: &str| connect(nscmd(&t.out, "nc", &["-z", "-w", "1", addr, port]));
    assert!(!outside("80", HOST_OUT_IP), "nothing listens on the host");
    t.converge(&spec);
    let l = t
        .host
        .ok("nft", &["list", "table", "inet", &host::table_name(&t.id)]);
    for want in [
        "fib daddr type local tcp dport 80 dnat ip to 10.78.0.2:8080",
        "ip daddr 10.78.0.1 fib daddr type local tcp dport 81 dnat ip to 10.78.0.2:8080",
        "type nat hook output priority -100",
        "iifname . ip saddr @links-v4 accept",
    ] {
        assert!(l.contains(want), "missing {want:?} in:\n{l}");
    }
    // From a client netns routed via the host.
    assert!(outside("80", HOST_OUT_IP), "forward from outside");
    // host_addr restricts: port 81 only on HOST_IP.
    nsok(
        &t.out,
        "ip",
        &["route", "add", "10.78.0.0/24", "via", HOST_OUT_IP],
    );
    assert!(outside("81", HOST_IP), "forward to the given host address");
    assert!(
        !nscmd(&t.out, "nc", &["-z", "-w", "1", HOST_OUT_IP, "81"])
            .output()
            .unwrap()
            .status
            .success(),
        "port 81 is not forwarded on other host addresses"
    );
    // From the host itself (output hook).
    assert!(
        connect(t.host.cmd("nc", &["-z", "-w", "1", HOST_OUT_IP, "80"])),
        "forward from the host itself"
    );
    assert_foreign_table(&t);

    // Changed spec: replaced atomically; removing the forward stops it.
    let spec2 = t.spec(HostRules {
        anti_spoof: true,
        ..Default::default()
    });
    t.converge(&spec2);
    assert!(!outside("80", HOST_OUT_IP));
    // An empty spec removes the table.
    let none = t.spec(HostRules::default());
    t.converge(&none);
    assert_eq!(observe_host(&t.hp(), &t.id).unwrap(), HostState::Absent);
    assert_foreign_table(&t);
}

#[test]
fn unchanged_apply_is_a_noop_and_tables_are_per_container() {
    let t = Topo::new();
    let spec = t.spec(HostRules {
        anti_spoof: true,
        masquerade: true,
        ..Default::default()
    });
    t.converge(&spec);
    let before = t.host.ok(
        "nft",
        &["-a", "list", "table", "inet", &host::table_name(&t.id)],
    );
    let st = observe_host(&t.hp(), &t.id).unwrap();
    assert_eq!(st, HostState::Present(Box::new(spec.expected())));
    assert_eq!(plan_host(&spec, &st), None);
    // A second container's table is independent.
    let other = HostSpec::new(
        ContainerId::new("other-ct").unwrap(),
        &spec.rules,
        spec.links.clone(),
    );
    apply_host(&t.hp(), &other).unwrap();
    remove_host(&t.hp(), &other.id).unwrap();
    let after = t.host.ok(
        "nft",
        &["-a", "list", "table", "inet", &host::table_name(&t.id)],
    );
    assert_eq!(
        before, after,
        "other containers' operations leave this table alone"
    );
}

#[test]
fn ipv6_forward_and_masquerade() {
    let t = Topo::new();
    t.host
        .ok("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"]);
    let (ct6, host6, hostout6, out6) = ("fd78::2", "fd78::1", "fd79::1", "fd79::2");
    nsok(
        &t.ct,
        "ip",
        &["addr", "add", &format!("{ct6}/64"), "dev", "eth0", "nodad"],
    );
    nsok(
        &t.ct,
        "ip",
        &["-6", "route", "add", "default", "via", host6],
    );
    t.host.ok(
        "ip",
        &["addr", "add", &format!("{host6}/64"), "dev", &t.ve, "nodad"],
    );
    let vo = t.host.ok("ip", &["-o", "addr", "show", "to", HOST_OUT_IP]);
    let vo = vo.split_whitespace().nth(1).unwrap().to_owned();
    t.host.ok(
        "ip",
        &[
            "addr",
            "add",
            &format!("{hostout6}/64"),
            "dev",
            &vo,
            "nodad",
        ],
    );
    nsok(
        &t.out,
        "ip",
        &["addr", "add", &format!("{out6}/64"), "dev", "eth0", "nodad"],
    );

    let _nc = Bg(nscmd(&t.ct, "nc", &["-6", "-lk", "8080"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap());
    let spec = HostSpec::new(
        t.id.clone(),
        &HostRules {
            anti_spoof: true,
            masquerade: true,
            forwards: vec![PortForward {
                proto: L4Proto::Tcp,
                host_port: 80,
                host_addr: None,
                to_addr: ct6.parse().unwrap(),
                to_port: 8080,
            }],
        },
        vec![VethLink {
            host_if: IfName::new(&t.ve).unwrap(),
            container_addrs: vec![CT_IP.parse().unwrap(), ct6.parse().unwrap()],
        }],
    );
    let ping6 = || {
        nscmd(
            &t.ct,
            "ping",
            &["-6", "-c", "3", "-i", "0.2", "-W", "1", out6],
        )
        .output()
        .unwrap()
        .status
        .success()
    };
    assert!(!ping6(), "no route back without masquerade");
    t.converge(&spec);
    assert!(ping6(), "masqueraded IPv6 egress");
    assert!(
        connect(nscmd(
            &t.out,
            "nc",
            &["-6", "-z", "-w", "1", hostout6, "80"]
        )),
        "IPv6 forward from outside"
    );
    assert!(t.ct_ping(CT_IP, HOST_IP), "IPv4 still passes anti-spoofing");
}

/// Far more links than any container has (their host ends need not exist: the sets
/// match interface names): the batch is larger than the default socket buffer and
/// still ONE transaction; the content compares equal and an unchanged re-observe plans
/// nothing. Prints what it cost (no timed assertion).
#[test]
fn five_thousand_links_are_one_transaction_and_compare_equal() {
    let t = Topo::new();
    let links: Vec<VethLink> = (0..5000u32)
        .map(|i| VethLink {
            host_if: IfName::new(&format!("big{i}")).unwrap(),
            container_addrs: vec![
                std::net::Ipv4Addr::from(0x0a40_0000 + i).into(),
                format!("fd40::{i:x}").parse().unwrap(),
            ],
        })
        .collect();
    let spec = HostSpec::new(
        t.id.clone(),
        &HostRules {
            anti_spoof: true,
            masquerade: true,
            ..Default::default()
        },
        links,
    );
    let started = Instant::now();
    apply_host(&t.hp(), &spec).unwrap();
    let applied = started.elapsed();
    let started = Instant::now();
    let st = observe_host(&t.hp(), &t.id).unwrap();
    let observed = started.elapsed();
    let started = Instant::now();
    assert_eq!(plan_host(&spec, &st), None);
    let planned = started.elapsed();
    eprintln!("5000 links: apply {applied:?}, observe {observed:?}, compare {planned:?}");
    let l = t.host.ok(
        "nft",
        &["list", "set", "inet", &host::table_name(&t.id), "links-v6"],
    );
    assert!(
        l.contains("\"big4999\" . fd40::1387"),
        "{}",
        &l[..l.len().min(500)]
    );
    // The small container next to it: a no-op observe is a handful of small requests.
    let small = t.spec(HostRules {
        anti_spoof: true,
        ..Default::default()
    });
    let other = HostSpec::new(
        ContainerId::new("small-ct").unwrap(),
        &small.rules,
        small.links.clone(),
    );
    apply_host(&t.hp(), &other).unwrap();
    // The fastest of 200 (the machine is shared: the minimum is the cost).
    let (mut obs, mut cmp) = (Duration::MAX, Duration::MAX);
    for _ in 0..200 {
        let started = Instant::now();
        let st = observe_host(&t.hp(), &other.id).unwrap();
        obs = obs.min(started.elapsed());
        let started = Instant::now();
        assert_eq!(plan_host(&other, &st), None);
        cmp = cmp.min(started.elapsed());
    }
    eprintln!("1 link: observe {obs:?} (a thread in the netns, 6 requests), compare {cmp:?}");
    remove_host(&t.hp(), &other.id).unwrap();
    remove_host(&t.hp(), &t.id).unwrap();
    assert_eq!(observe_host(&t.hp(), &t.id).unwrap(), HostState::Absent);
}

/// A writer replaces the table back and forth between two specs while a reader
/// observes: no read ever shows a third content that happens to equal a spec (a race
/// can only show a difference, never hide one), reads that overlap a commit differ only
/// transiently (counted, see `observe_host_for`), and once the writer stops one read is
/// exact.
#[test]
fn reads_overlapping_a_replace_never_hide_drift() {
    let t = Topo::new();
    let a = t.spec(HostRules {
        anti_spoof: true,
        ..Default::default()
    });
    let b = t.spec(HostRules {
        anti_spoof: true,
        masquerade: true,
        forwards: vec![PortForward {
            proto: L4Proto::Udp,
            host_port: 53,
            host_addr: None,
            to_addr: CT_IP.parse().unwrap(),
            to_port: 53,
        }],
    });
    let (want_a, want_b) = (a.expected(), b.expected());
    apply_host(&t.hp(), &a).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (hp, a, b, stop) = (t.hp(), a.clone(), b.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                apply_host(&hp, if n % 2 == 0 { &b } else { &a }).unwrap();
                n += 1;
            }
            n
        })
    };
    let mut seen = [0usize; 3];
    for _ in 0..300 {
        match observe_host_for(&t.hp(), &a).unwrap() {
            HostState::Present(c) if *c == want_a => seen[0] += 1,
            HostState::Present(c) if *c == want_b => seen[1] += 1,
            HostState::Present(c) => {
                assert!(plan_host(&a, &HostState::Present(c.clone())).is_some());
                assert!(plan_host(&b, &HostState::Present(c)).is_some());
                seen[2] += 1
            }
            HostState::Absent => panic!("a replace is atomic: never absent"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    eprintln!(
        "{writes} replaces; reads: {} a, {} b, {} transient",
        seen[0], seen[1], seen[2]
    );
    let last = if writes % 2 == 0 { &a } else { &b };
    assert_eq!(
        plan_host(last, &observe_host_for(&t.hp(), last).unwrap()),
        None
    );
}

/// Install, replace and remove, 20 times, each converging; prints the fastest of
/// each (no timed assertion). A first install deletes nothing, so it does not pay the
/// RCU grace period a replace or a removal pays when its socket closes.
#[test]
fn install_replace_remove_cycle() {
    let t = Topo::new();
    let s = t.spec(HostRules {
        anti_spoof: true,
        ..Default::default()
    });
    let want = HostState::Present(Box::new(s.expected()));
    let (mut fresh, mut repl, mut rm) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..20 {
        let st = Instant::now();
        apply_host(&t.hp(), &s).unwrap();
        fresh = fresh.min(st.elapsed());
        assert_eq!(observe_host(&t.hp(), &t.id).unwrap(), want);
        let st = Instant::now();
        apply_host(&t.hp(), &s).unwrap();
        repl = repl.min(st.elapsed());
        assert_eq!(observe_host(&t.hp(), &t.id).unwrap(), want);
        let st = Instant::now();
        remove_host(&t.hp(), &s.id).unwrap();
        rm = rm.min(st.elapsed());
        assert_eq!(observe_host(&t.hp(), &t.id).unwrap(), HostState::Absent);
    }
    // A table someone else created under netprov's name is replaced, not merged.
    t.host.ok(
        "nft",
        &[&format!(
            "add table inet {0}; add chain inet {0} spoof; add rule inet {0} spoof accept",
            host::table_name(&t.id)
        )],
    );
    apply_host(&t.hp(), &s).unwrap();
    assert_eq!(observe_host(&t.hp(), &t.id).unwrap(), want);
    eprintln!("install {fresh:?}, replace {repl:?}, remove {rm:?} (fastest of 20)");
}
