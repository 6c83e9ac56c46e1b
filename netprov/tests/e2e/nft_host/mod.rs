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
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netprov::model::{ContainerId, HostRules, IfName, L4Proto, PortForward};
use netprov::nft::host::{
    self, apply_host, observe_host, observe_host_for, plan_host, remove_host, HostChange,
    HostExpected, HostSpec, HostState, VethLink,
};
use testkit::{in_ns as nscmd, ns_ok as nsok, Bg};
use testkit::{ok, unique, HostNetns};

mod tables;
mod traffic;

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

impl Topo {
    fn new() -> Self {
        let mut host = HostNetns::new();
        let ct = host.netns("c");
        let out = host.netns("o");
        let ve = unique("ve");
        host.link_netns(&ct, &ve, &format!("{HOST_IP}/24"), &format!("{CT_IP}/24"));
        let (host_out, out_addr) = (format!("{HOST_OUT_IP}/24"), format!("{OUT_IP}/24"));
        host.link_netns(&out, &unique("vo"), &host_out, &out_addr);
        host.ok("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        ok(
            "ip",
            &["-n", &ct, "route", "add", "default", "via", HOST_IP],
        );
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
        match plan_host(&HostExpected::new(spec.clone()), &st) {
            Some(HostChange::Apply { .. }) => apply_host(&self.hp(), spec).unwrap(),
            Some(HostChange::Remove) => remove_host(&self.hp(), &spec.id).unwrap(),
            None => {}
        }
        let st = observe_host(&self.hp(), &spec.id).unwrap();
        assert_eq!(
            plan_host(&HostExpected::new(spec.clone()), &st),
            None,
            "converged: {st:?}"
        );
    }

    fn ct_ping(&self, src: &str, dst: &str) -> bool {
        testkit::ping_from(&self.ct, src, dst)
    }

    fn host_tables(&self) -> String {
        self.host.ok("nft", &["list", "tables"])
    }
}

fn connect(cmd: Command) -> bool {
    testkit::eventually(cmd, Duration::from_secs(3))
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
