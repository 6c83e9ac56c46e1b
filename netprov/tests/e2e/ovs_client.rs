//! The OVSDB client against a real, private ovsdb-server: raw transactions, per-operation
//! errors named after what they were for, conflicts, and a stopped ovs-vswitchd.

use std::time::{Duration, Instant};

use netprov::model::{ContainerId, IfName, VlanTag};
use netprov::ovsdb::ops::{Cond, Op};
use netprov::ovsdb::{self, Client, Endpoint, PortSpec, Txn};
use serde_json::{json, Value};
use testkit::ovs::Ovs;

fn client(o: &Ovs) -> Client {
    Client::connect(&Endpoint::parse(&o.endpoint()).unwrap()).unwrap()
}

// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn transact_ops_and_errors() {
    let o = Ovs::start();
    o.add_bridge("br0");
    let mut c = client(&o);

    // select + comment: not mutating.
    let mut t = Txn::new();
    t.push(Op::Comment("netprov test".into()), None);
    let sel = t.push(
        Op::Select {
            table: "Bridge",
            conds: vec![Cond::eq("name", "br0")],
            columns: vec!["name"],
        },
        None,
    );
    let r = c.transact("read bridge br0", &t).unwrap();
    assert_eq!(r[sel]["rows"], json!([{"name": "br0"}]));
    assert_eq!(c.mutating_transactions(), 0);

    // insert with named uuid + mutate, then update and delete.
    let t = add_port(json!({"name": "raw0", "type": "internal"}), "raw0");
    c.transact("add raw0", &t).unwrap();
    assert_eq!(c.mutating_transactions(), 1);
    let mut t = Txn::new();
    t.push(
        Op::Update {
            table: "Port",
            conds: vec![Cond::eq("name", "raw0")],
            row: json!({"tag": 7}),
        },
        None,
    );
    let r = c.transact("tag raw0", &t).unwrap();
    assert_eq!(r[0]["count"], 1);
    assert_eq!(o.vsctl(&["get", "Port", "raw0", "tag"]), "7");

    // A per-operation error is named after the labelled operation.
    let mut t = Txn::new();
    t.push(
        Op::Update {
            table: "Port",
            conds: vec![Cond::eq("name", "raw0")],
            row: json!({"tag": 5000}),
        },
        Some("set VLAN of OVS port raw0"),
    );
    let e = c.transact("tag raw0", &t).unwrap_err();
    assert!(!e.conflict);
    assert!(
        e.error
            .to_string()
            .starts_with("set VLAN of OVS port raw0: constraint violation"),
        "{}",
        e.error
    );
    // A commit-level error (the trailing result) too: a second interface named raw0.
    let t = add_port(json!({"name": "raw0"}), "raw1");
    let e = c
        .transact("add OVS port raw1 to bridge br0", &t)
        .unwrap_err();
    assert!(!e.conflict);
    assert!(
        e.error
            .to_string()
            .starts_with("add OVS port raw1 to bridge br0: constraint violation: "),
        "{}",
        e.error
    );
    assert!(o.vsctl_run(&["get", "Port", "raw1", "name"]).status.code() != Some(0));

    // A wait that does not hold is a conflict.
    let mut t = Txn::new();
    t.push(
        Op::Wait {
            table: "Port",
            conds: vec![Cond::eq("name", "raw0")],
            columns: vec!["name"],
            until_equal: true,
            rows: vec![],
        },
        Some("add OVS port raw0"),
    );
    let e = c.transact("x", &t).unwrap_err();
    assert!(e.conflict);
    assert_eq!(
        e.error.to_string(),
        "add OVS port raw0: another OVSDB client changed the same rows meanwhile"
    );

    // delete: the Bridge reference goes with the mutate; the rows with delete.
    let uuid = o.vsctl(&["get", "Port", "raw0", "_uuid"]);
    let mut t = Txn::new();
    t.push(
        Op::Mutate {
            table: "Bridge",
            conds: vec![Cond::eq("name", "br0")],
            mutations: vec![json!(["ports", "delete", ["set", [["uuid", uuid]]]])],
        },
        None,
    );
    t.push(
        Op::Delete {
            table: "Port",
            conds: vec![Cond::eq("name", "raw0")],
        },
        None,
    );
    let r = c.transact("remove raw0", &t).unwrap();
    assert_eq!(r[1]["count"], 1);
    assert_eq!(o.vsctl(&["list-ports", "br0"]), "");
}

#[test]
fn stopped_vswitchd_is_named_and_next_apply_converges() {
    let mut o = Ovs::start();
    o.add_bridge("br0");
    let mut c = client(&o);
    o.stop_vswitchd();
    c.set_apply_timeout(Duration::from_secs(1));
    let s = PortSpec {
        owner: ContainerId::new("late").unwrap(),
        iface: IfName::new("late0").unwrap(),
        port: IfName::new("late0").unwrap(),
        bridge: IfName::new("br0").unwrap(),
        internal: true,
        vlan: VlanTag::new(3).unwrap(),
        trunks: vec![VlanTag::new(3).unwrap(), VlanTag::new(4).unwrap()],
        vlan_mode: Some(netprov::model::VlanMode::NativeUntagged),
        external_ids: Default::default(),
    };
    let t = Instant::now();
    let e = ovsdb::converge(&mut c, &s.owner, std::slice::from_ref(&s)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    let msg = e.to_string();
    assert!(
        msg.starts_with("wait for ovs-vswitchd to apply the OVS configuration: configuration ")
            && msg.contains(" not applied after 1s (cur_cfg is ")
            && msg.ends_with(") — is ovs-vswitchd running?"),
        "{msg}"
    );
    // The rows are committed; the plan is now empty and agrees with OVSDB.
    assert_eq!(o.vsctl(&["get", "Port", "late0", "trunks"]), "[3, 4]");
    assert_eq!(
        o.vsctl(&["get", "Port", "late0", "vlan_mode"]),
        "native-untagged"
    );
    assert!(ovsdb::converge(&mut c, &s.owner, std::slice::from_ref(&s))
        .unwrap()
        .is_empty());
}

#[test]
fn echo_probes_are_answered_while_waiting() {
    let o = Ovs::start();
    // A second socket whose connections the server probes every 500 ms with `echo`
    // and drops when no answer comes.
    let probed = o.dir.join("probed.sock");
    let target = format!("punix:{}", probed.display());
    o.vsctl(&["set-manager", &target]);
    o.vsctl(&["set", "Manager", &target, "inactivity_probe=500"]);
    let t = Instant::now();
    while !probed.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "probed socket never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Client::connect(&Endpoint::unix(&probed)).unwrap();
    // Wait 3 s for a configuration that never comes: the client reads (and answers
    // the server's echo requests) the whole time.
    let e = c
        .wait_applied(1_000_000, Duration::from_secs(3))
        .unwrap_err();
    assert!(e.to_string().contains("not applied after 3s"), "{e}");
    // Still connected.
    let mut t = Txn::new();
    t.push(
        Op::Select {
            table: "Open_vSwitch",
            conds: vec![],
            columns: vec!["cur_cfg"],
        },
        None,
    );
    c.transact("read cur_cfg", &t).unwrap();
}

/// A transaction that inserts Interface `iface` (its row) and a Port `port` holding it,
/// and adds the port to bridge br0.
fn add_port(iface: Value, port: &str) -> Txn {
    let mut t = Txn::new();
    t.push(
        Op::Insert {
            table: "Interface",
            row: iface,
            uuid_name: Some("i".into()),
        },
        None,
    );
    t.push(
        Op::Insert {
            table: "Port",
            row: json!({"name": port, "interfaces": ["named-uuid", "i"]}),
            uuid_name: Some("p".into()),
        },
        None,
    );
    t.push(
        Op::Mutate {
            table: "Bridge",
            conds: vec![Cond::eq("name", "br0")],
            mutations: vec![json!(["ports", "insert", ["set", [["named-uuid", "p"]]]])],
        },
        None,
    );
    t
}
