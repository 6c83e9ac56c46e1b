//! Host rules judged by traffic: anti-spoofing, masquerade, port forwards, IPv6.

use super::*;

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

// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
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
