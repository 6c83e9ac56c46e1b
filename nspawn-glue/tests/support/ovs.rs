//! A private Open vSwitch inside the simulated host netns: `ovsdb-server` and
//! `ovs-vswitchd` with their own database, socket and run directory in a temp dir (never
//! the system's), bridges on the userspace datapath (this kernel has no openvswitch
//! module). Killed and removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::host::Host;
use super::ok;

pub struct Ovs {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

impl Ovs {
    pub fn start(host: &Host) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("netprov-glue-ovs")
            .tempdir()
            .unwrap();
        let mut ovs = Self {
            dir,
            daemons: Vec::new(),
        };
        let db = ovs.path("conf.db");
        let mut create = Command::new("ovsdb-tool");
        create.args(["create", &db, "/usr/share/openvswitch/vswitch.ovsschema"]);
        ok(create);
        ovs.spawn(
            host,
            "ovsdb-server",
            vec![
                db,
                format!("--remote=punix:{}", ovs.sock().display()),
                format!("--pidfile={}", ovs.path("ovsdb-server.pid")),
                format!("--unixctl={}", ovs.path("ovsdb-server.ctl")),
                format!("--log-file={}", ovs.path("ovsdb-server.log")),
            ],
        );
        ovs.wait("ovsdb-server", || {
            std::os::unix::net::UnixStream::connect(ovs.sock()).is_ok()
        });
        ok(ovs.vsctl(&["--no-wait", "init"]));
        ovs.spawn(
            host,
            "ovs-vswitchd",
            vec![
                ovs.endpoint(),
                format!("--pidfile={}", ovs.path("ovs-vswitchd.pid")),
                format!("--unixctl={}", ovs.path("ovs-vswitchd.ctl")),
                format!("--log-file={}", ovs.path("ovs-vswitchd.log")),
            ],
        );
        // ovs-vsctl waits for ovs-vswitchd to apply a change, so this returns once it runs.
        ovs.wait("ovs-vswitchd", || {
            ovs.vsctl(&[
                "--timeout=2",
                "set",
                "Open_vSwitch",
                ".",
                "external_ids:glue-test=1",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
        });
        ovs
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("db.sock")
    }

    /// `unix:<socket>`, for `NETPROV_OVSDB`.
    pub fn endpoint(&self) -> String {
        format!("unix:{}", self.sock().display())
    }

    fn spawn(&mut self, host: &Host, prog: &str, mut args: Vec<String>) {
        args.extend(["-vconsole:off", "--no-chdir"].map(str::to_owned));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = host.cmd(prog, &args);
        for var in ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"] {
            cmd.env(var, self.dir.path());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {prog}: {e}"));
        self.daemons.push(child);
    }

    fn wait(&self, what: &str, ready: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "{what} did not start; logs in {}",
                self.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn vsctl(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ovs-vsctl");
        c.arg(format!("--db={}", self.endpoint())).args(args);
        c
    }

    /// A bridge on the userspace datapath.
    pub fn add_bridge(&self, name: &str) {
        ok(self.vsctl(&[
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            "datapath_type=netdev",
        ]));
    }

    /// Port names on `bridge` (besides the bridge's own).
    pub fn ports(&self, bridge: &str) -> Vec<String> {
        let mut ports: Vec<String> = ok(self.vsctl(&["list-ports", bridge]))
            .lines()
            .map(str::to_owned)
            .collect();
        ports.sort();
        ports
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for mut child in self.daemons.drain(..).rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
