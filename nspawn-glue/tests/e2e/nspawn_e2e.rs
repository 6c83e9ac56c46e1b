//! End to end with real systemd-nspawn containers: inside a simulated host netns, run the
//! command lines of the systemd-nspawn@ drop-in (units/systemd-nspawn@.service.d, read
//! through the generator's renderer) for two containers — ExecStartPre (`setpriv ...
//! netprov apply`), ExecStart (`systemd-nspawn --network-namespace-path`), stop,
//! ExecStopPost (`setpriv ... netprov destroy`) — and check from inside the containers
//! that their network was complete when they started.
//!
//! Needs root, systemd-nspawn (systemd-container), debootstrap and network access to
//! the apt mirror for the first run (the root filesystem is cached, see support/rootfs).

use std::fs;
use std::path::Path;

use crate::support::container::Container;
use crate::support::netstate::NetState;
use crate::support::unit::UnitCommands;
use crate::support::{netprov_bin, ok, output, rootfs, unique};
use testkit::ovs::OvsDaemons as Ovs;
use testkit::HostNetns as Host;

/// One container: a veth to the host (/31 and /127 on both ends) and default routes via
/// the host. The host takes the lower /127 address: as a router it also holds the
/// prefix's subnet-router anycast address (the lower one), which would otherwise swallow
/// traffic forwarded to the container.
fn props(id: &str, subnet: u8) -> String {
    let mut props = serde_json::json!({
        "id": id,
        "network": {
            "interfaces": {
                "eth0": {
                    "ip4": format!("10.77.{subnet}.2/31"),
                    "hostIp4": format!("10.77.{subnet}.3/31"),
                    "ip6": format!("fd77:{subnet}::3/127"),
                    "hostIp6": format!("fd77:{subnet}::2/127"),
                }
            },
            "ip4route": format!("10.77.{subnet}.3"),
            "ip6route": format!("fd77:{subnet}::2"),
        }
    });
    // A per-netns sysctl, in place before the container starts (default 0).
    if subnet == 1 {
        props["sysctl"] = "net.ipv4.ip_forward=1".into();
    }
    // A ruleset in the container's netns, loaded before it starts: counts pings from
    // the other container.
    if subnet == 2 {
        props["network"]["nft"] = "table inet glue {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    ip saddr 10.77.1.2 icmp type echo-request counter\n  }\n}\n"
            .into();
    }
    props.to_string()
}

/// Starts container `id` as the unit does: ExecStartPre, then ExecStart (the netns is
/// complete before nspawn runs).
fn start(host: &Host, unit: &UnitCommands, rootfs: &Path, id: &str) -> Container {
    host.run_argv_ok(&unit.start_pre(id));
    Container::start(host, &unit.start(id, rootfs), id)
}

/// Stops a container as the unit does: nspawn, then ExecStopPost; returns its id.
fn stop(host: &Host, unit: &UnitCommands, c: Container) -> String {
    let id = c.id.clone();
    c.stop();
    host.run_argv_ok(&unit.stop_post(&id));
    id
}

fn host_state(host: &Host) -> NetState {
    NetState::collect(|args| host.cmd("ip", args))
}

fn container_state(c: &Container) -> NetState {
    NetState::collect(|args| c.cmd("ip", args))
}

fn ping(c: &Container, addr: &str) {
    c.ok("ping", &["-c", "1", "-W", "2", addr]);
}

/// IPv6 *forwarded* by the host right after its links were created: the host resolves
/// the next container's address with a neighbour solicitation sourced from its
/// link-local address, which is unusable until its own DAD finishes (about a second).
/// A kernel property of the simulated host's new veth, not of the container's network;
/// netprov's own addresses skip DAD.
fn ping_forwarded_v6(c: &Container, addr: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !c
        .cmd("ping", &["-c", "1", "-W", "1", addr])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no IPv6 route from {} to {addr}",
            c.id
        );
    }
}

// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn two_containers_join_the_netns_netprov_prepared() {
    let rootfs = rootfs::cached();
    let mut host = Host::new();
    // The host routes between the two containers (its own netns only).
    ok(host.cmd(
        "sysctl",
        &[
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ],
    ));
    let empty_host = host_state(&host);

    let props_dir = tempfile::tempdir().unwrap();
    let (a, b) = (unique("npa"), unique("npb"));
    let file = |id: &str| {
        props_dir
            .path()
            .join(format!("{id}.json"))
            .display()
            .to_string()
    };
    fs::write(file(&a), props(&a, 1)).unwrap();
    fs::write(file(&b), props(&b, 2)).unwrap();
    host.destroy_on_drop(&a);
    host.destroy_on_drop(&b);
    let unit = UnitCommands::nspawn(&netprov_bin(), props_dir.path());
    let start = |id: &str| start(&host, &unit, &rootfs, id);
    let stop = |c: Container| {
        let id = stop(&host, &unit, c);
        assert!(
            !Path::new("/run/netns").join(&id).exists(),
            "ExecStopPost left /run/netns/{id}"
        );
    };

    let ca = start(&a);
    let cb = start(&b);

    for (c, subnet) in [(&ca, 1), (&cb, 2)] {
        let state = container_state(c);
        assert_eq!(
            state.addrs_of("eth0"),
            [
                format!("10.77.{subnet}.2/31"),
                format!("fd77:{subnet}::3/127")
            ],
            "{state:#?}"
        );
        for gw in [format!("10.77.{subnet}.3"), format!("fd77:{subnet}::2")] {
            let default = format!("default via {gw} dev eth0");
            assert!(state.routes.contains(&default), "{state:#?}");
        }
        let forward = c.ok("cat", &["/proc/sys/net/ipv4/ip_forward"]);
        assert_eq!(forward.trim(), if subnet == 1 { "1" } else { "0" });
        let names: Vec<&str> = state
            .links
            .iter()
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(names, ["eth0", "lo"], "{state:#?}");
    }
    // The first packet works: no readiness wait.
    for addr in ["10.77.1.3", "fd77:1::2", "10.77.2.2"] {
        ping(&ca, addr);
    }
    for addr in ["10.77.2.3", "fd77:2::2", "10.77.1.2"] {
        ping(&cb, addr);
    }
    ping_forwarded_v6(&ca, "fd77:2::3");
    ping_forwarded_v6(&cb, "fd77:1::3");
    // The container's ruleset saw the ping from the other container (host's nft, in the
    // container's netns: the minimal rootfs has no nft).
    let mut nft = std::process::Command::new("nsenter");
    nft.arg(format!("--net=/run/netns/{b}"))
        .args(["nft", "list", "table", "inet", "glue"]);
    let ruleset = ok(nft);
    assert!(ruleset.contains("counter packets 1 "), "{ruleset}");

    let host_running = host_state(&host);
    let a_running = container_state(&ca);
    assert_ne!(host_running, empty_host);

    // Re-applying while the container runs changes nothing.
    host.run_argv_ok(&unit.start_pre(&a));
    assert_eq!(host_state(&host), host_running);
    assert_eq!(container_state(&ca), a_running);

    // A restart as systemd does it (RestartForceExitStatus=133): stop, ExecStopPost,
    // ExecStartPre, ExecStart. Nothing is duplicated.
    stop(ca);
    let ca = start(&a);
    assert_eq!(container_state(&ca), a_running);
    assert_eq!(host_state(&host), host_running);
    ping(&ca, "10.77.2.2");
    ping_forwarded_v6(&ca, "fd77:2::3");

    // Stop both, ExecStopPost for both: the host is as before.
    stop(ca);
    stop(cb);
    assert_eq!(host_state(&host), empty_host);
}

/// A container on an OVS access port. The port is the host end of a veth (the default
/// style), named after the container and the interface.
fn ovs_props(id: &str, ifname: &str, addr: &str, vlan: u16) -> String {
    serde_json::json!({
        "id": id,
        "network": {
            "interfaces": {
                ifname: { "ip4": addr, "ovs": { "bridge": "br0", "vlan": vlan } }
            }
        }
    })
    .to_string()
}

/// Three containers on one OVS bridge (private ovsdb-server/ovs-vswitchd, userspace
/// datapath): two on VLAN 356 reach each other, the one on VLAN 357 in the same subnet
/// reaches neither. Restarting one leaves exactly one port per container.
#[test]
fn ovs_vlan_containers() {
    let rootfs = rootfs::cached();
    let mut host = Host::new();
    let ovs = Ovs::start(&host);
    ovs.add_bridge("br0");
    host.env.push(("NETPROV_OVSDB".into(), ovs.endpoint()));
    let empty_host = host_state(&host);

    let props_dir = tempfile::tempdir().unwrap();
    let members = [
        (unique("npv"), unique("ov"), "10.78.0.2/24", 356),
        (unique("npv"), unique("ov"), "10.78.0.3/24", 356),
        (unique("npv"), unique("ov"), "10.78.0.4/24", 357),
    ];
    for (id, ifname, addr, vlan) in &members {
        let file = props_dir.path().join(format!("{id}.json"));
        fs::write(file, ovs_props(id, ifname, addr, *vlan)).unwrap();
        host.destroy_on_drop(id);
    }
    let unit = UnitCommands::nspawn(&netprov_bin(), props_dir.path());
    let start = |id: &str| start(&host, &unit, &rootfs, id);
    let stop = |c: Container| {
        stop(&host, &unit, c);
    };

    let mut cs: Vec<Container> = members.iter().map(|(id, ..)| start(id)).collect();
    for (c, (_, ifname, addr, _)) in cs.iter().zip(&members) {
        assert_eq!(container_state(c).addrs_of(ifname), [*addr]);
    }
    let mut ifnames: Vec<String> = members
        .iter()
        .map(|(id, ifname, ..)| {
            let (id, ifname) = (
                netprov::model::ContainerId::new(id).unwrap(),
                netprov::model::IfName::new(ifname).unwrap(),
            );
            netprov::props::names::veth_host(&id, &ifname).to_string()
        })
        .collect();
    ifnames.sort();
    assert_eq!(ovs.ports("br0"), ifnames);
    let reaches = |c: &Container, addr: &str| {
        c.cmd("ping", &["-c", "2", "-i", "0.2", "-W", "1", addr])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(reaches(&cs[0], "10.78.0.3"), "same VLAN");
    assert!(reaches(&cs[1], "10.78.0.2"), "same VLAN");
    assert!(!reaches(&cs[0], "10.78.0.4"), "VLAN 357 reached from 356");
    assert!(!reaches(&cs[2], "10.78.0.3"), "VLAN 356 reached from 357");

    let host_running = host_state(&host);
    let first_running = container_state(&cs[0]);
    stop(cs.remove(0));
    cs.insert(0, start(&members[0].0));
    assert_eq!(ovs.ports("br0"), ifnames);
    assert_eq!(container_state(&cs[0]), first_running);
    assert_eq!(host_state(&host), host_running);
    assert!(reaches(&cs[0], "10.78.0.3"), "same VLAN after restart");

    for c in cs {
        stop(c);
    }
    assert_eq!(ovs.ports("br0"), Vec::<String>::new());
    assert_eq!(host_state(&host), empty_host);
    drop(ovs);
}

/// The NixUnits drop-in's ExecStart with NixUnits' own default nspawn arguments
/// (`--private-users=pick`, `--private-network`, ...): the appended
/// `--private-users=no` wins, so nspawn can join the prepared netns.
#[test]
fn nixunits_command_line_joins_the_netns() {
    let cached = rootfs::cached();
    // NixUnits' --private-users-ownership=chown refuses --read-only: a private copy.
    let copy = tempfile::tempdir().unwrap();
    let rootfs = copy.path().join("root");
    let mut cp = std::process::Command::new("cp");
    cp.arg("-a").arg(&cached).arg(&rootfs);
    ok(cp);
    fs::create_dir_all(rootfs.join("opt/system")).unwrap();
    let init = rootfs.join("opt/system/init");
    fs::write(&init, "#!/bin/sh\nexec /bin/sleep infinity\n").unwrap();
    ok({
        let mut c = std::process::Command::new("chmod");
        c.arg("755").arg(&init);
        c
    });

    let mut host = Host::new();
    let empty_host = host_state(&host);
    let id = unique("npn");
    host.destroy_on_drop(&id);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(format!("{id}.json")), props(&id, 4)).unwrap();
    let unit = UnitCommands::nixunits(&netprov_bin(), dir.path());

    host.run_argv_ok(&unit.start_pre(&id));
    let c = Container::start(&host, &unit.start_nixunits(&id, &rootfs), &id);
    let state = container_state(&c);
    assert_eq!(
        state.addrs_of("eth0"),
        ["10.77.4.2/31", "fd77:4::3/127"],
        "{state:#?}"
    );
    ping(&c, "10.77.4.3");
    // No user namespace: uid 0 maps to 0 over the full range.
    let uid_map = c.ok("cat", &["/proc/1/uid_map"]);
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );

    c.exit();
    host.run_argv_ok(&unit.stop_post(&id));
    assert_eq!(host_state(&host), empty_host);
}

/// A failed ExecStartPre stops the start: apply reports the error (in the unit's journal
/// under systemd) and creates nothing, so nspawn could not join anything; ExecStopPost
/// still runs and succeeds.
#[test]
fn failed_apply_creates_nothing_and_destroy_still_succeeds() {
    let mut host = Host::new();
    let empty_host = host_state(&host);
    let id = unique("npf");
    host.destroy_on_drop(&id);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{id}.json"));
    let mut bad: serde_json::Value = serde_json::from_str(&props(&id, 3)).unwrap();
    bad["network"]["interfaces"]["eth0"]["ip4"] = "10.77.3.300/31".into();
    fs::write(&file, bad.to_string()).unwrap();

    let unit = UnitCommands::nspawn(&netprov_bin(), dir.path());
    let out = host.run_argv(&unit.start_pre(&id));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("10.77.3.300"),
        "error does not name the bad value: {stderr}"
    );
    assert!(!Path::new("/run/netns").join(&id).exists());

    // What ExecStart would do now fails too, rather than starting without a network.
    let mut nspawn = host.cmd(
        "systemd-nspawn",
        &[
            "--quiet",
            "--register=no",
            "--keep-unit",
            &format!("--network-namespace-path=/run/netns/{id}"),
            "-D",
            "/nonexistent",
            "/bin/true",
        ],
    );
    assert!(!output(&mut nspawn).status.success());

    host.run_argv_ok(&unit.stop_post(&id));
    assert_eq!(host_state(&host), empty_host);
}
