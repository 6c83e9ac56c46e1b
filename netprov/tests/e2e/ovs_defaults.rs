//! The safe OVS defaults, end to end through the `netprov` binary against a private Open
//! vSwitch (userspace datapath) in a simulated host netns:
//!
//! - a port without `vlan` is an access port on the untagged VLAN: an 802.1Q-tagged
//!   frame the container sends is dropped, untagged traffic passes; ports an older
//!   netprov left with an empty `tag` (a trunk of every VLAN) are migrated in place;
//! - the default style is veth, so every container can call its interface `lan`;
//!   `style: "internal"` names stay host-wide and a clash names the owner;
//! - a style change (internal → veth → internal) converges in one apply.
//!
//! Tagged frames are written with a raw AF_PACKET socket (no 8021q module here, so no
//! VLAN sub-interface) and looked for with another raw socket in the other container.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use netprov::model::{ContainerId, IfName};
use serde_json::{json, Value};
use testkit::ovs::{Ovs, OvsCli};
use testkit::{text, unique};

struct T(OvsCli);

testkit::extends!(T => OvsCli);

impl T {
    fn new() -> Self {
        T(OvsCli::new())
    }

    /// Props of container `id` with one OVS interface `iface` (`ovs` merged over
    /// `{"bridge": "br0"}`), in a new file.
    fn port(&self, id: &str, iface: &str, addr: &str, ovs: Value) -> String {
        let mut o = json!({ "bridge": "br0" });
        for (k, v) in ovs.as_object().unwrap() {
            o[k] = v.clone();
        }
        // A file per call: a test keeps several versions of one container's props.
        let props =
            json!({ "id": id, "network": { "interfaces": { iface: { "ip4": addr, "ovs": o } } } });
        self.dir
            .write_text(&format!("{}.json", unique("p")), &props.to_string())
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.netprov(args);
        assert!(out.status.success(), "netprov {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `check` exits 0 (in sync) or 3 (drift); returns its output.
    fn check(&self, props: &str, code: i32) -> String {
        let out = self.netprov(&["check", props]);
        assert_eq!(out.status.code(), Some(code), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applying again plans nothing and sends nothing.
    fn reapply_is_silent(&self, props: &str) {
        let out = self.ok(&["--json", "apply", props]);
        let v: Value = serde_json::from_str(&out).unwrap();
        let r = &v[0]["result"];
        assert_eq!(r["plan"]["steps"], json!([]), "{v}");
        assert_eq!(r["messages"], 0, "{v}");
        assert_eq!(r["ovsdb_transactions"], 0, "{v}");
    }

    fn ports(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .o
            .vsctl(&["list-ports", "br0"])
            .lines()
            .map(str::to_owned)
            .collect();
        p.sort();
        p
    }
}

/// The OVS port (veth host end) netprov derives for `iface` of container `id`.
fn veth_port(id: &str, iface: &str) -> String {
    netprov::props::names::veth_host(&ContainerId::new(id).unwrap(), &IfName::new(iface).unwrap())
        .to_string()
}

/// ARP sender address that marks the probe frames of these tests.
const PROBE_SPA: [u8; 4] = [10, 70, 0, 99];

/// An 802.1Q-tagged (VLAN `vid`) broadcast ARP request "who has `tpa`" from the probe
/// address, as a complete Ethernet frame.
fn tagged_arp(vid: u16, tpa: [u8; 4]) -> Vec<u8> {
    let src = [0x02, 0, 0, 0, 0x70, 0x99];
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    f.extend_from_slice(&[0x08, 0x06]); // ARP
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
    f.extend_from_slice(&src);
    f.extend_from_slice(&PROBE_SPA);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f.resize(f.len().max(64), 0);
    f
}

/// Whether `frame` is one of the probes (tagged or not: an access port strips the tag).
fn is_probe(frame: &[u8]) -> bool {
    let mut at = 12;
    if frame.get(at..at + 2) == Some(&[0x81, 0x00]) {
        at += 4;
    }
    frame.get(at..at + 2) == Some(&[0x08, 0x06])
        && frame.get(at + 2 + 14..at + 2 + 18) == Some(&PROBE_SPA[..])
}

/// A raw AF_PACKET socket bound to `ifname` inside netns `ns` (it stays bound there
/// when used from this thread).
fn packet_socket(ns: &str, ifname: &str) -> OwnedFd {
    let ifname = std::ffi::CString::new(ifname).unwrap();
    netprov::kernel::netns::in_netns(&Ovs::netns_path(ns), move || {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket/bind/setsockopt calls on a fresh descriptor we own.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(fd);
            let index = libc::if_nametoindex(ifname.as_ptr());
            assert!(index != 0, "no {ifname:?}");
            let mut sa: libc::sockaddr_ll = std::mem::zeroed();
            sa.sll_family = libc::AF_PACKET as u16;
            sa.sll_protocol = proto;
            sa.sll_ifindex = index as i32;
            let r = libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 200_000,
            };
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            fd
        }
    })
    .unwrap()
}

fn send(fd: &OwnedFd, frame: &[u8]) {
    // SAFETY: `frame` is a valid buffer; the socket is bound to its interface.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
        )
    };
    assert_eq!(
        n,
        frame.len() as isize,
        "send: {}",
        std::io::Error::last_os_error()
    );
}

/// Drains what `fd` has received; true if a probe was among it.
fn drain_saw_probe(fd: &OwnedFd) -> bool {
    let mut buf = [0u8; 2048];
    let mut seen = false;
    loop {
        // SAFETY: `buf` is a valid, writable buffer of its length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            return seen;
        }
        seen |= is_probe(&buf[..n as usize]);
    }
}

/// Sends tagged probes (VLAN `vid`) out of `from_if` in netns `from` and reports whether
/// `to_if` in netns `to` received any. A probe that crosses the switch arrives within
/// milliseconds; five sends over a second make a lost first frame (the switch still
/// learning) irrelevant.
fn tagged_frame_crosses(from: &str, from_if: &str, vid: u16, to: &str, to_if: &str) -> bool {
    let rx = packet_socket(to, to_if);
    let tx = packet_socket(from, from_if);
    drain_saw_probe(&rx);
    let frame = tagged_arp(vid, [10, 70, 10, 3]);
    for _ in 0..5 {
        send(&tx, &frame);
        std::thread::sleep(Duration::from_millis(200));
        if drain_saw_probe(&rx) {
            return true;
        }
    }
    false
}

/// Untagged ports are access ports: a tagged frame from the container does not reach a
/// container on that VLAN; untagged traffic passes. Ports left with an empty `tag` by an
/// older netprov (a trunk of all VLANs: the frame *does* cross) are migrated in place by
/// the next apply, and a re-apply after is a no-op. Both styles.
#[test]
fn untagged_port_drops_tagged_frames_and_old_trunk_ports_migrate() {
    let mut t = T::new();
    let (a, b, c) = (t.id(), t.id(), t.id());
    // a: internal style (NixUnits' shape), b: the default (veth), c: on VLAN 10.
    let ia = format!("i{a}");
    let pa = t.port(&a, &ia, "10.70.0.1/24", json!({ "style": "internal" }));
    let pb = t.port(&b, "lan", "10.70.0.2/24", json!({ "vlan": 0 }));
    let pc = t.port(&c, "lan", "10.70.10.3/24", json!({ "vlan": 10 }));
    for p in [&pa, &pb, &pc] {
        t.ok(&["apply", p]);
    }
    let (port_a, port_b) = (ia.clone(), veth_port(&b, "lan"));
    for port in [&port_a, &port_b] {
        assert_eq!(t.o.vsctl(&["get", "Port", port, "tag"]), "0", "{port}");
        assert_eq!(t.o.vsctl(&["get", "Port", port, "vlan_mode"]), "[]");
    }
    assert_eq!(
        t.o.vsctl(&["get", "Port", &veth_port(&c, "lan"), "tag"]),
        "10"
    );
    assert!(Ovs::pings(&a, "10.70.0.2"), "untagged traffic passes");
    assert!(
        !tagged_frame_crosses(&a, &ia, 10, &c, "lan"),
        "internal port a is a trunk"
    );
    assert!(
        !tagged_frame_crosses(&b, "lan", 10, &c, "lan"),
        "veth port b is a trunk"
    );

    // What an older netprov wrote: an empty tag, no vlan_mode — a trunk of every VLAN.
    for (port, ns, ifname, props) in [
        (&port_a, &a, &ia, &pa),
        (&port_b, &b, &"lan".to_owned(), &pb),
    ] {
        let uuid = t.o.vsctl(&["get", "Port", port, "_uuid"]);
        t.o.vsctl(&["clear", "Port", port, "tag"]);
        assert!(
            tagged_frame_crosses(ns, ifname, 10, &c, "lan"),
            "with an empty tag the probe reaches VLAN 10 (else this test proves nothing)"
        );
        let drift = t.check(props, 3);
        assert!(
            drift.contains(&format!("OVS port {port}: VLAN is none, want 0 (untagged)")),
            "{drift}"
        );
        let out = t.ok(&["apply", props]);
        assert!(
            out.contains(&format!("set VLAN of OVS port {port}: none → 0 (untagged)")),
            "{out}"
        );
        assert_eq!(t.o.vsctl(&["get", "Port", port, "tag"]), "0");
        assert_eq!(t.o.vsctl(&["get", "Port", port, "_uuid"]), uuid, "in place");
        t.reapply_is_silent(props);
        t.check(props, 0);
        assert!(
            !tagged_frame_crosses(ns, ifname, 10, &c, "lan"),
            "{port} migrated"
        );
    }
    assert!(Ovs::pings(&b, "10.70.0.1"), "untagged traffic still passes");

    // A trunk only when the props ask: explicit vlan_mode trunk carries the tagged frame.
    let pb = t.port(&b, "lan", "10.70.0.2/24", json!({ "vlan_mode": "trunk" }));
    t.ok(&["apply", &pb]);
    assert_eq!(t.o.vsctl(&["get", "Port", &port_b, "tag"]), "[]");
    assert!(
        tagged_frame_crosses(&b, "lan", 10, &c, "lan"),
        "explicit trunk"
    );

    for p in [&pa, &pb, &pc] {
        t.ok(&["destroy", p]);
    }
    assert!(t.ports().is_empty(), "{:?}", t.ports());
}

/// Every container calls its interface `lan`: with the default (veth) style each gets a
/// port named after its veth host end, and they talk over the bridge, also after an
/// ovs-vswitchd restart. With
/// `style: "internal"` the name is host-wide: `validate` of both files refuses it, and
/// so does the second apply, naming the container that has it.
#[test]
fn two_containers_each_with_lan_on_one_bridge() {
    let mut t = T::new();
    let (a, b) = (t.id(), t.id());
    let pa = t.port(&a, "lan", "10.71.0.1/24", json!({}));
    let pb = t.port(&b, "lan", "10.71.0.2/24", json!({}));
    t.ok(&["validate", &pa, &pb]);
    t.ok(&["apply", &pa]);
    t.ok(&["apply", &pb]);
    let mut want = vec![veth_port(&a, "lan"), veth_port(&b, "lan")];
    want.sort();
    assert_eq!(t.ports(), want);
    assert!(Ovs::pings(&a, "10.71.0.2"));
    assert!(Ovs::pings(&b, "10.71.0.1"));
    t.reapply_is_silent(&pa);
    t.reapply_is_silent(&pb);
    t.check(&pa, 0);

    // ovs-vswitchd restarts (crash, upgrade): the veth host ends stay in its netns and
    // it simply reopens them — no drift, traffic passes, nothing to repair.
    t.o.restart_vswitchd();
    assert!(Ovs::pings(&a, "10.71.0.2"), "after an ovs-vswitchd restart");
    t.check(&pa, 0);
    t.check(&pb, 0);

    // Internal style: the OVS port (and the device, until moved) is called `lan` itself.
    let (x, y) = (t.id(), t.id());
    let px = t.port(&x, "lan", "10.71.0.3/24", json!({ "style": "internal" }));
    let py = t.port(&y, "lan", "10.71.0.4/24", json!({ "style": "internal" }));
    let out = t.netprov(&["validate", &px, &py]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("network.interfaces.lan") && err.contains(&format!("also claimed by {x}")),
        "{err}"
    );
    t.ok(&["apply", &px]);
    let out = t.netprov(&["apply", &py]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("OVS port lan belongs to netprov container {x}")),
        "{err}"
    );
    assert!(
        err.contains("ovs.style \\\"veth\\\"") || err.contains("ovs.style \"veth\""),
        "{err}"
    );
    assert!(Ovs::pings(&x, "10.71.0.1"), "the first one is untouched");

    for p in [&pa, &pb, &px, &py] {
        t.ok(&["destroy", p]);
    }
    assert!(t.ports().is_empty(), "{:?}", t.ports());
}

/// A container made with the old default (internal) and props that now mean veth — or
/// an explicit style change either way — converge in one apply: `check` is clean right
/// after, traffic passes, a re-apply is silent, nothing is left behind.
#[test]
fn style_change_internal_to_veth_and_back_converges_in_one_apply() {
    let mut t = T::new();
    let (x, peer) = (t.id(), t.id());
    let pp = t.port(&peer, "lan", "10.72.0.2/24", json!({ "vlan": 5 }));
    t.ok(&["apply", &pp]);
    let internal = t.port(
        &x,
        "lan",
        "10.72.0.1/24",
        json!({ "vlan": 5, "style": "internal" }),
    );
    let default = t.port(&x, "lan", "10.72.0.1/24", json!({ "vlan": 5 }));
    let (vp, pp_port) = (veth_port(&x, "lan"), veth_port(&peer, "lan"));

    t.ok(&["apply", &internal]);
    assert!(Ovs::pings(&x, "10.72.0.2"));
    for (props, port, gone, what) in [
        (&default, &vp, "lan", "internal → veth"),
        (&internal, &"lan".to_owned(), vp.as_str(), "veth → internal"),
        (&default, &vp, "lan", "internal → veth again"),
    ] {
        let drift = t.check(props, 3);
        assert!(
            drift.contains(&format!(
                "OVS port {gone}: is netprov's for this container but not in the props"
            )),
            "{what}: {drift}"
        );
        let out = t.ok(&["apply", props]);
        assert!(
            out.contains(&format!("remove OVS port {gone}")),
            "{what}: {out}"
        );
        assert!(
            out.contains(&format!("add OVS port {port} to bridge br0")),
            "{what}: {out}"
        );
        t.check(props, 0);
        let mut want = vec![port.clone(), pp_port.clone()];
        want.sort();
        assert_eq!(t.ports(), want, "{what}");
        assert!(!t.host_has_link(gone), "{what}: {gone} left in the host");
        assert!(Ovs::pings(&x, "10.72.0.2"), "{what}: traffic");
        t.reapply_is_silent(props);
    }
    t.ok(&["destroy", &default]);
    t.ok(&["destroy", &pp]);
    assert!(t.ports().is_empty(), "{:?}", t.ports());
    assert!(!t.host_has_link(&vp) && !t.host_has_link("lan"));
}
