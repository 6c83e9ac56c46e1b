//! The drift matrix, through the `netprov` binary: for each way an object can be
//! changed behind netprov's back, `check` exits 3 naming it, one `apply` converges (in
//! one pass), `check` exits 0 and the container reaches its veth peers again.
//!
//! The host nftables table is left out here (the nft_host module covers its drift).

use std::path::PathBuf;

use serde_json::{json, Value};
use testkit::{text, unique, HostNetns};

/// The container: two veths (/31 + /127 and /24, one with a macvlan, MTU and MAC set),
/// an existing link, a default and an explicit route, a ruleset and a sysctl.
fn props(id: &str) -> Value {
    json!({
        "id": id,
        "network": {
            "interfaces": {
                "wan": { "ip4": "10.50.0.3/31", "hostIp4": "10.50.0.2/31",
                         "ip6": "fd50::3/127", "hostIp6": "fd50::2/127",
                         "hostName": "dm-wan", "mtu": 1450 },
                "lan": { "ip4": "10.51.0.2/24", "hostIp4": "10.51.0.1/24", "hostName": "dm-lan",
                         "mac": "02:00:00:00:55:01",
                         "macvlan": { "ip4": "10.52.0.10/24" } },
                "ex0": { "ip4": "10.53.0.2/24" }
            },
            "ip4route": "10.50.0.2",
            "routes": [ { "to": "10.99.0.0/24", "via": "10.51.0.1" } ],
            "nft": "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n"
        },
        "sysctl": "net.ipv4.ip_forward=1"
    })
}

struct Env {
    host: HostNetns,
    id: String,
    file: PathBuf,
    /// A scratch netns to move a link into.
    elsewhere: String,
}

impl Env {
    /// `ip -n <container> args...`
    fn ct(&self, args: &[&str]) {
        let mut a = vec!["-n", self.id.as_str()];
        a.extend_from_slice(args);
        testkit::ok("ip", &a);
    }
    /// A command inside the container netns.
    fn in_ct(&self, cmd: &str, args: &[&str]) {
        let mut a = vec![
            format!("--net=/run/netns/{}", self.id),
            "--".into(),
            cmd.into(),
        ];
        a.extend(args.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        testkit::ok("nsenter", &a);
    }
    fn netprov(&self, args: &[&str]) -> std::process::Output {
        let mut a = args.to_vec();
        a.push(self.file.to_str().unwrap());
        self.host.netprov(&a)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.host.netprov(&["destroy", self.file.to_str().unwrap()]);
        let _ = std::fs::remove_file(&self.file);
    }
}

/// One way the kernel is changed behind netprov's back, and what `check` must name.
struct Drift {
    what: &'static str,
    act: fn(&Env),
    /// Substrings of `check`'s output (`{id}` is replaced by the container id).
    names: &'static [&'static str],
}

const MATRIX: &[Drift] = &[
    Drift {
        what: "container end of a veth deleted (its host end goes with it)",
        act: |e| e.ct(&["link", "del", "wan"]),
        names: &["veth dm-wan (host) ↔ wan (netns {id}): missing"],
    },
    Drift {
        what: "host end of a veth deleted (the container end and its macvlan go with it)",
        act: |e| {
            e.host.ok("ip", &["link", "del", "dm-lan"]);
        },
        names: &[
            "veth dm-lan (host) ↔ lan (netns {id}): missing",
            "macvlan mv-lan in netns {id}: missing",
        ],
    },
    Drift {
        what: "container end moved to another netns",
        act: |e| e.ct(&["link", "set", "wan", "netns", &e.elsewhere]),
        names: &["link dm-wan in host netns: is half of a netprov veth pair"],
    },
    Drift {
        what: "container end renamed",
        act: |e| {
            e.ct(&["link", "set", "wan", "down"]);
            e.ct(&["link", "set", "wan", "name", "wan9"]);
            e.ct(&["link", "set", "wan9", "up"]);
        },
        names: &[
            "link wan9 in netns {id}: is netprov's but not wanted",
            "veth dm-wan (host) ↔ wan (netns {id}): missing",
        ],
    },
    Drift {
        what: "link set down (the kernel drops its IPv4 routes)",
        act: |e| e.ct(&["link", "set", "lan", "down"]),
        names: &[
            "link lan in netns {id}: is down",
            "route 10.99.0.0/24 via 10.51.0.1 in netns {id}: missing",
        ],
    },
    Drift {
        what: "container address removed (the last IPv4: the default route goes too)",
        act: |e| e.ct(&["addr", "del", "10.50.0.3/31", "dev", "wan"]),
        names: &[
            "address 10.50.0.3/31 on wan in netns {id}: missing",
            "route default via 10.50.0.2 in netns {id}: missing",
        ],
    },
    Drift {
        what: "address added",
        act: |e| e.ct(&["addr", "add", "10.77.0.1/24", "dev", "wan"]),
        names: &["address 10.77.0.1/24 on wan in netns {id}: is not desired"],
    },
    Drift {
        what: "host-end address removed",
        act: |e| {
            e.host
                .ok("ip", &["addr", "del", "10.50.0.2/31", "dev", "dm-wan"]);
        },
        names: &[
            "address 10.50.0.2/31 on dm-wan in host netns: missing",
            "route 10.50.0.3/32 dev dm-wan in host netns: missing",
        ],
    },
    Drift {
        what: "route removed",
        act: |e| e.ct(&["route", "del", "default"]),
        names: &["route default via 10.50.0.2 in netns {id}: missing"],
    },
    Drift {
        what: "host route removed",
        act: |e| {
            e.host
                .ok("ip", &["route", "del", "10.50.0.3/32", "dev", "dm-wan"]);
        },
        names: &["route 10.50.0.3/32 dev dm-wan in host netns: missing"],
    },
    Drift {
        what: "route of netprov's protocol added",
        act: |e| e.ct(&["route", "add", "10.88.0.0/24", "dev", "wan", "proto", "77"]),
        names: &["route 10.88.0.0/24 dev wan in netns {id}: is not desired"],
    },
    Drift {
        what: "route changed",
        act: |e| e.ct(&["route", "replace", "default", "via", "10.51.0.1", "proto", "77"]),
        names: &["route default via 10.51.0.1 dev lan in netns {id}: changed, want default via 10.50.0.2"],
    },
    Drift {
        what: "container ruleset edited",
        act: |e| e.in_ct("nft", &["add", "table", "inet", "sneaky"]),
        names: &["nftables ruleset in netns {id}: modified behind netprov's back"],
    },
    Drift {
        what: "container ruleset flushed",
        act: |e| e.in_ct("nft", &["flush", "ruleset"]),
        names: &["nftables ruleset in netns {id}"],
    },
    Drift {
        what: "sysctl changed",
        act: |e| e.in_ct("sysctl", &["-qw", "net.ipv4.ip_forward=0"]),
        names: &["sysctl net.ipv4.ip_forward in netns {id}: is \"0\", want \"1\""],
    },
    Drift {
        what: "MTU changed",
        act: |e| e.ct(&["link", "set", "wan", "mtu", "1400"]),
        names: &["link wan in netns {id}: mtu differs (want 1450)"],
    },
    Drift {
        what: "MAC changed",
        act: |e| e.ct(&["link", "set", "lan", "address", "02:00:00:00:55:02"]),
        names: &["link lan in netns {id}: MAC differs (want 02:00:00:00:55:01)"],
    },
    Drift {
        what: "macvlan deleted",
        act: |e| e.ct(&["link", "del", "mv-lan"]),
        names: &["macvlan mv-lan in netns {id}: missing"],
    },
    Drift {
        what: "existing link moved back to the host",
        act: |e| e.ct(&["link", "set", "ex0", "netns", &e.host.name]),
        names: &["interface ex0: is not in netns {id}"],
    },
    Drift {
        what: "netns handle removed (the netns dies with every link in it)",
        act: |e| {
            testkit::ok("ip", &["netns", "del", &e.id]);
            // The lent existing link was a virtual one: it dies with the netns (the
            // kernel dismantles a netns asynchronously; wait for its peer to go). A
            // new one stands in for the admin's link.
            for _ in 0..100 {
                if !e.host.run("ip", &["link", "show", "ex0-p"]).status.success() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            e.host
                .ok("ip", &["link", "add", "ex0", "type", "veth", "peer", "name", "ex0-p"]);
        },
        names: &["netns /run/netns/{id}: missing"],
    },
];

fn ping_peers(e: &Env) {
    for to in ["10.50.0.2", "10.51.0.1", "fd50::2"] {
        e.in_ct("ping", &["-c1", "-W3", to]);
    }
}

#[test]
fn every_drift_is_named_by_check_and_repaired_by_one_apply() {
    let host = HostNetns::new();
    host.add_veth("ex0", "ex0-p");
    let mut host = host;
    let id = host.new_id("dm");
    let elsewhere = unique("x");
    testkit::ok("ip", &["netns", "add", &elsewhere]);
    host.track(&elsewhere);
    let file = std::env::temp_dir().join(format!("{id}.json"));
    std::fs::write(&file, props(&id).to_string()).unwrap();
    let e = Env {
        host,
        id: id.clone(),
        file,
        elsewhere,
    };
    let out = e.netprov(&["apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    ping_peers(&e);
    for d in MATRIX {
        (d.act)(&e);
        let out = e.netprov(&["check"]);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(3), "{}: check: {shown}", d.what);
        for n in d.names {
            let n = n.replace("{id}", &id);
            assert!(
                shown.contains(&format!("{id}: {n}")),
                "{}: check does not name {n:?}: {shown}",
                d.what
            );
        }
        let out = e.netprov(&["--json", "apply"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: apply: {}",
            d.what,
            text(&out)
        );
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            rep[0]["result"]["passes"], 1,
            "{}: the repair took more than one pass: {}",
            d.what, rep
        );
        let out = e.netprov(&["check"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: check after apply: {}",
            d.what,
            text(&out)
        );
        ping_peers(&e);
    }
    let out = e.netprov(&["destroy"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// An extra address made the primary of the wanted one's subnet: deleting it makes the
/// kernel (promote_secondaries off) delete the wanted secondary too, and with the
/// link's last IPv4 address every IPv4 route through it. The first plan foresees that
/// (re-adds the address, replaces the routes): one pass.
#[test]
fn deleting_a_primary_address_keeps_the_wanted_secondary_and_its_routes() {
    let e = env("dp");
    e.in_ct(
        "sysctl",
        &["-qw", "net.ipv4.conf.lan.promote_secondaries=0"],
    );
    e.ct(&["addr", "flush", "dev", "lan"]);
    e.ct(&["addr", "add", "10.51.0.7/24", "dev", "lan"]);
    e.ct(&["addr", "add", "10.51.0.2/24", "dev", "lan"]);
    let out = e.netprov(&["check"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let id = &e.id;
    assert!(
        text(&out).contains(&format!(
            "{id}: address 10.51.0.7/24 on lan in netns {id}: is not desired"
        )),
        "{}",
        text(&out)
    );
    let out = e.netprov(&["--json", "apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep[0]["result"]["passes"], 1, "{rep}");
    let out = e.netprov(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    ping_peers(&e);
}

/// A container applied, with the existing link it needs.
fn env(prefix: &str) -> Env {
    let mut host = HostNetns::new();
    host.add_veth("ex0", "ex0-p");
    let id = unique(prefix);
    host.track(&id);
    let file = std::env::temp_dir().join(format!("{id}.json"));
    std::fs::write(&file, props(&id).to_string()).unwrap();
    let e = Env {
        host,
        id,
        file,
        elsewhere: String::new(),
    };
    let out = e.netprov(&["apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    e
}

/// The verify loop: a change the kernel lost (the test hook `--drop-step` does not
/// send one step) is found by the observe after the pass and repaired by a second
/// pass; a change lost in every pass makes apply exit 1 with the remaining drift in
/// `check`'s words, and `check` agrees (exit 3).
#[test]
fn the_verify_loop_repairs_a_lost_change_and_reports_a_lasting_one() {
    let e = env("dv");
    let id = e.id.clone();
    e.in_ct("sysctl", &["-qw", "net.ipv4.ip_forward=0"]);
    e.ct(&["route", "del", "10.99.0.0/24"]);
    // Two steps: the route (step 0) and the sysctl (step 1). Lose the sysctl.
    let out = e.netprov(&["--json", "plan"]);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ops: Vec<&str> = plan[0]["result"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["replace_route", "write_sysctl"], "{plan}");
    let out = e.netprov(&["apply", "--drop-step", "1"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains(&format!(
            "{id}: pass 2: the kernel still differed, repairing:"
        )) && shown.contains(&format!("set sysctl net.ipv4.ip_forward=1 in netns {id}"))
            && shown.contains("applied 3 changes in 2 passes"),
        "{shown}"
    );
    let out = e.netprov(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // --json reports the passes and the repair plans.
    e.in_ct("sysctl", &["-qw", "net.ipv4.ip_forward=0"]);
    e.ct(&["route", "del", "10.99.0.0/24"]);
    let out = e.netprov(&["--json", "apply", "--drop-step", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep[0]["result"]["passes"], 2, "{rep}");
    assert_eq!(
        rep[0]["result"]["repairs"][0]["steps"][0]["op"], "write_sysctl",
        "{rep}"
    );

    // Lost in every pass: exit 1, the drift named as check names it.
    e.in_ct("sysctl", &["-qw", "net.ipv4.ip_forward=0"]);
    let out = e.netprov(&["apply", "--drop-step", "0"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let drift = format!("{id}: sysctl net.ipv4.ip_forward in netns {id}: is \"0\", want \"1\"");
    assert!(
        shown.contains("the kernel still differs from the props after 3 passes")
            && shown.contains(&drift),
        "{shown}"
    );
    let out = e.netprov(&["check"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains(&drift), "{}", text(&out));
    let out = e.netprov(&["apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // An unchanged re-apply: one observe, no pass, nothing sent.
    let out = e.netprov(&["--json", "apply"]);
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep[0]["result"]["passes"], 0, "{rep}");
    assert_eq!(rep[0]["result"]["messages"], 0, "{rep}");
    ping_peers(&e);
}
