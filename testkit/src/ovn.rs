//! A private OVN for one test: a central (NB and SB `ovsdb-server`s and `ovn-northd`,
//! in its own netns, reached over unix sockets in a temp dir) and simulated hosts, each
//! an [`Ovs`] (its own netns, ovsdb-server and ovs-vswitchd on the userspace datapath)
//! with its own `ovn-controller`, joined by an underlay veth that carries Geneve.
//!
//! Geneve on the userspace datapath: the encap IP sits on the LOCAL port of an OVS
//! bridge `br-phys` whose other port is the underlay veth (OVS routes and ARPs tunnel
//! packets itself, through the bridge that owns the route to the remote endpoint).
//! `br-int` is made with `datapath_type=netdev` before ovn-controller starts (it would
//! otherwise create it on the kernel datapath, which this machine does not have).

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::ovs::Ovs;
use crate::{ok, run, unique, wait_until, HostNetns};

pub const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
pub const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";

fn spawn(ns: &HostNetns, dir: &std::path::Path, prog: &str, args: &[String]) -> Child {
    let mut c = ns.cmd(prog, &args.iter().map(String::as_str).collect::<Vec<_>>());
    for var in [
        "OVS_RUNDIR",
        "OVS_LOGDIR",
        "OVS_DBDIR",
        "OVS_SYSCONFDIR",
        "OVN_RUNDIR",
        "OVN_LOGDIR",
        "OVN_DBDIR",
        "OVN_SYSCONFDIR",
    ] {
        c.env(var, dir);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.spawn().unwrap_or_else(|e| panic!("start {prog}: {e}"))
}

/// NB + SB databases and ovn-northd.
pub struct Central {
    pub dir: PathBuf,
    children: Vec<Child>,
    pub ns: HostNetns,
}

impl Central {
    pub fn start() -> Self {
        Self::start_with_tcp(None)
    }

    /// Like [`Central::start`]; with `tcp_in`, the NB server runs in that netns and
    /// also listens on `tcp:127.0.0.1:6641` there ([`Central::nb_tcp`]): loopback of a
    /// test-made netns, never the machine's.
    pub fn start_with_tcp(tcp_in: Option<&HostNetns>) -> Self {
        let ns = HostNetns::new();
        let dir = std::env::temp_dir().join(format!("netprov-ovn-{}", unique("z")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = Central {
            dir,
            children: Vec::new(),
            ns,
        };
        for (db, schema) in [("nb", NB_SCHEMA), ("sb", SB_SCHEMA)] {
            let file = c.dir.join(format!("{db}.db"));
            ok("ovsdb-tool", &["create", file.to_str().unwrap(), schema]);
            let _ = std::fs::remove_file(c.sock(db));
            let args = vec![
                file.display().to_string(),
                format!("--remote=punix:{}", c.sock(db).display()),
                format!("--pidfile={}", c.dir.join(format!("{db}.pid")).display()),
                format!("--unixctl={}", c.dir.join(format!("{db}.ctl")).display()),
                format!("--log-file={}", c.dir.join(format!("{db}.log")).display()),
                "-vconsole:off".into(),
                "--no-chdir".into(),
            ];
            let mut args = args;
            let mut ns = &c.ns;
            if let (Some(t), "nb") = (tcp_in, db) {
                args.push("--remote=ptcp:6641:127.0.0.1".into());
                ns = t;
            }
            let child = spawn(ns, &c.dir, "ovsdb-server", &args);
            c.children.push(child);
            let s = c.sock(db);
            wait_until(Duration::from_secs(10), "OVN ovsdb-server", || {
                std::os::unix::net::UnixStream::connect(&s).is_ok()
            });
        }
        let args = vec![
            format!("--ovnnb-db={}", c.nb()),
            format!("--ovnsb-db={}", c.sb()),
            format!("--pidfile={}", c.dir.join("northd.pid").display()),
            format!("--unixctl={}", c.dir.join("northd.ctl").display()),
            format!("--log-file={}", c.dir.join("northd.log").display()),
            "-vconsole:off".into(),
            "--no-chdir".into(),
        ];
        let child = spawn(&c.ns, &c.dir, "ovn-northd", &args);
        c.children.push(child);
        c
    }

    fn sock(&self, db: &str) -> PathBuf {
        self.dir.join(format!("{db}.sock"))
    }
    /// `unix:<NB socket>`, what netprov's `--ovn-nb` takes.
    pub fn nb(&self) -> String {
        format!("unix:{}", self.sock("nb").display())
    }
    /// The NB over TCP, reachable from the netns given to [`Central::start_with_tcp`].
    pub fn nb_tcp(&self) -> String {
        "tcp:127.0.0.1:6641".into()
    }
    pub fn sb(&self) -> String {
        format!("unix:{}", self.sock("sb").display())
    }

    /// `ovn-nbctl` against the private NB; panics on failure; stdout trimmed.
    pub fn nbctl(&self, args: &[&str]) -> String {
        let db = format!("--db={}", self.nb());
        let mut all = vec![db.as_str(), "--timeout=20"];
        all.extend_from_slice(args);
        let out = run("ovn-nbctl", &all);
        assert!(
            out.status.success(),
            "ovn-nbctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::env::var_os("NETPROV_KEEP_OVS_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A simulated OVN chassis: private OVS with `br-phys` (underlay, encap IP on its LOCAL
/// port) and `br-int`, and an ovn-controller.
pub struct Chassis {
    controller: Option<Child>,
    pub system_id: String,
    pub encap_ip: String,
    /// Last: its drop kills ovs-vswitchd/ovsdb-server and deletes the host netns.
    pub ovs: Ovs,
}

impl Chassis {
    /// Starts OVS in a new host netns; [`Chassis::join`] wires it up once the underlay
    /// port exists.
    pub fn new(system_id: &str, encap_ip: &str) -> Self {
        Chassis {
            controller: None,
            system_id: system_id.to_owned(),
            encap_ip: encap_ip.to_owned(),
            ovs: Ovs::start(),
        }
    }

    /// `underlay`: a link in this host's netns, made a port of br-phys.
    pub fn join(&mut self, central: &Central, underlay: &str) {
        let o = &self.ovs;
        o.vsctl(&[
            "add-br",
            "br-phys",
            "--",
            "set",
            "bridge",
            "br-phys",
            "datapath_type=netdev",
            "--",
            "add-port",
            "br-phys",
            underlay,
        ]);
        o.vsctl(&[
            "add-br",
            "br-int",
            "--",
            "set",
            "bridge",
            "br-int",
            "datapath_type=netdev",
            "fail-mode=secure",
            "other-config:disable-in-band=true",
        ]);
        o.host.ok("ip", &["link", "set", underlay, "up"]);
        o.host.ok(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", self.encap_ip),
                "dev",
                "br-phys",
            ],
        );
        o.host.ok("ip", &["link", "set", "br-phys", "up"]);
        o.vsctl(&[
            "set",
            "Open_vSwitch",
            ".",
            &format!("external_ids:system-id={}", self.system_id),
            &format!("external_ids:ovn-remote={}", central.sb()),
            "external_ids:ovn-encap-type=geneve",
            &format!("external_ids:ovn-encap-ip={}", self.encap_ip),
            "external_ids:ovn-bridge-datapath-type=netdev",
        ]);
        let args = vec![
            o.endpoint(),
            format!("--pidfile={}", o.dir.join("ovn-controller.pid").display()),
            format!("--log-file={}", o.dir.join("ovn-controller.log").display()),
            "-vconsole:off".into(),
            "--no-chdir".into(),
        ];
        self.controller = Some(spawn(&o.host, &o.dir, "ovn-controller", &args));
        // Registered: the chassis row is in SB.
        let (sb, id) = (central.sb(), self.system_id.clone());
        wait_until(
            Duration::from_secs(30),
            "ovn-controller to register its chassis",
            || {
                let out = run(
                    "ovn-sbctl",
                    &[
                        &format!("--db={sb}"),
                        "--timeout=5",
                        "--bare",
                        "--columns=name",
                        "find",
                        "Chassis",
                        &format!("name={id}"),
                    ],
                );
                String::from_utf8_lossy(&out.stdout).trim() == id
            },
        );
    }

    pub fn stop_controller(&mut self) {
        if let Some(mut c) = self.controller.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Chassis {
    fn drop(&mut self) {
        self.stop_controller();
    }
}

/// Two chassis joined by an underlay veth; returns its ends (in a's and b's netns).
pub fn underlay(a: &Chassis, b: &Chassis) -> (String, String) {
    let n = unique("");
    let (ea, eb) = (format!("ula{n}"), format!("ulb{n}"));
    a.ovs.host.add_veth_into(&ea, &eb, &b.ovs.host.name);
    (ea, eb)
}

/// Two chassis, encap IPs `<net>.1` and `<net>.2` (not joined yet).
pub fn chassis_pair(net: &str) -> (Chassis, Chassis) {
    (
        Chassis::new(&unique("cha"), &format!("{net}.1")),
        Chassis::new(&unique("chb"), &format!("{net}.2")),
    )
}

/// Joins both chassis to `central` over an [`underlay`] between them.
pub fn join_pair(central: &Central, a: &mut Chassis, b: &mut Chassis) {
    let (ua, ub) = underlay(a, b);
    a.join(central, &ua);
    b.join(central, &ub);
}
