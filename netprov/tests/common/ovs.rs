//! A private Open vSwitch for one test: `ovsdb-server` and `ovs-vswitchd` with their own
//! database, socket, pidfiles, logs and run directory in a temp dir, running inside the
//! test's simulated host netns (so internal ports appear there, never on the machine).
//! Bridges use the userspace datapath (`datapath_type=netdev`): this kernel has no
//! openvswitch module. Everything is killed and removed on drop, also on panic.
//!
//! Use from a test file with `mod common;` and `#[path = "common/ovs.rs"] mod ovs;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{ok, run, unique, HostNetns};

pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

pub struct Ovs {
    pub dir: PathBuf,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
    /// Container netns made with [`Ovs::container`], deleted on drop.
    containers: Vec<String>,
    /// Last field: dropped after the daemons are gone.
    pub host: HostNetns,
}

impl Ovs {
    pub fn start() -> Self {
        let host = HostNetns::new();
        let dir = std::env::temp_dir().join(format!("netprov-ovs-{}", unique("o")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create OVS test dir");
        let mut ovs = Ovs {
            dir,
            ovsdb: None,
            vswitchd: None,
            containers: Vec::new(),
            host,
        };
        let db = ovs.dir.join("conf.db");
        ok("ovsdb-tool", &["create", db.to_str().unwrap(), SCHEMA]);
        ovs.start_ovsdb();
        ovs.vsctl(&["--no-wait", "init"]);
        ovs.start_vswitchd();
        ovs
    }

    fn start_vswitchd(&mut self) {
        let log = self.dir.join("ovs-vswitchd.log");
        let args = vec![
            format!("unix:{}", self.sock().display()),
            format!("--pidfile={}", self.dir.join("ovs-vswitchd.pid").display()),
            format!("--unixctl={}", self.dir.join("ovs-vswitchd.ctl").display()),
            format!("--log-file={}", log.display()),
            "-vconsole:off".into(),
            "--no-chdir".into(),
        ];
        self.vswitchd = Some(self.spawn("ovs-vswitchd", &args));
        // Returns once ovs-vswitchd has applied the config (cur_cfg caught up). The
        // value must change: ovs-vsctl skips the wait for a no-op transaction.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let stamp = format!("external_ids:netprov-test-start={nanos}");
        self.wait_until(Duration::from_secs(20), "ovs-vswitchd to start", |o| {
            o.vsctl_run(&["--timeout=2", "set", "Open_vSwitch", ".", &stamp])
                .status
                .success()
        });
    }

    /// Kills ovs-vswitchd and starts it again (a crash or package upgrade).
    pub fn restart_vswitchd(&mut self) {
        self.stop_vswitchd();
        self.start_vswitchd();
    }

    fn spawn(&self, prog: &str, args: &[String]) -> Child {
        let mut c: Command = self
            .host
            .cmd(prog, &args.iter().map(String::as_str).collect::<Vec<_>>());
        for var in [
            "OVS_RUNDIR",
            "OVS_LOGDIR",
            "OVS_DBDIR",
            "OVS_SYSCONFDIR",
            "OVS_PKGDATADIR",
        ] {
            if var == "OVS_PKGDATADIR" {
                c.env(var, "/usr/share/openvswitch");
            } else {
                c.env(var, &self.dir);
            }
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.spawn().unwrap_or_else(|e| panic!("start {prog}: {e}"))
    }

    fn start_ovsdb(&mut self) {
        let _ = std::fs::remove_file(self.sock());
        let args = vec![
            self.dir.join("conf.db").display().to_string(),
            format!("--remote=punix:{}", self.sock().display()),
            // Manager rows become extra remotes (tests use one with an inactivity probe).
            "--remote=db:Open_vSwitch,Open_vSwitch,manager_options".into(),
            format!("--pidfile={}", self.dir.join("ovsdb-server.pid").display()),
            format!("--unixctl={}", self.dir.join("ovsdb-server.ctl").display()),
            format!("--log-file={}", self.dir.join("ovsdb-server.log").display()),
            "-vconsole:off".into(),
            "--no-chdir".into(),
        ];
        self.ovsdb = Some(self.spawn("ovsdb-server", &args));
        self.wait_until(Duration::from_secs(10), "ovsdb-server to listen", |o| {
            std::os::unix::net::UnixStream::connect(o.sock()).is_ok()
        });
    }

    fn wait_until(&self, timeout: Duration, what: &str, f: impl Fn(&Self) -> bool) {
        let t = Instant::now();
        while !f(self) {
            assert!(
                t.elapsed() < timeout,
                "timed out waiting for {what}; logs in {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.join("db.sock")
    }

    /// `unix:<private socket>`, what netprov's `--ovsdb` takes.
    pub fn endpoint(&self) -> String {
        format!("unix:{}", self.sock().display())
    }

    pub fn vsctl_run(&self, args: &[&str]) -> std::process::Output {
        let db = format!("--db={}", self.endpoint());
        let mut all = vec![db.as_str(), "--timeout=20"];
        all.extend_from_slice(args);
        run("ovs-vsctl", &all)
    }

    /// `ovs-vsctl` against the private database; panics on failure; returns stdout trimmed.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let out = self.vsctl_run(args);
        assert!(
            out.status.success(),
            "ovs-vsctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A bridge on the userspace datapath.
    pub fn add_bridge(&self, name: &str) {
        self.vsctl(&[
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            "datapath_type=netdev",
        ]);
    }

    /// Kills ovsdb-server (its socket file stays, as after a crash).
    pub fn stop_ovsdb(&mut self) {
        if let Some(mut c) = self.ovsdb.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills ovs-vswitchd: the database still answers, nothing applies it.
    pub fn stop_vswitchd(&mut self) {
        if let Some(mut c) = self.vswitchd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A "container" netns with lo up, deleted on drop.
    pub fn container(&mut self) -> String {
        let name = unique("c");
        ok("ip", &["netns", "add", &name]);
        ok("ip", &["-n", &name, "link", "set", "lo", "up"]);
        self.containers.push(name.clone());
        name
    }

    pub fn netns_path(name: &str) -> PathBuf {
        Path::new("/run/netns").join(name)
    }

    /// Runs a command inside netns `ns`.
    pub fn in_ns(ns: &str, cmd: &str, args: &[&str]) -> std::process::Output {
        let mut all = vec![format!("--net=/run/netns/{ns}"), "--".into(), cmd.into()];
        all.extend(args.iter().map(|s| s.to_string()));
        Command::new("nsenter")
            .args(&all)
            .output()
            .expect("nsenter")
    }

    /// Whether `from` gets an answer to ping from `addr`.
    /// One reply within 4 s (a probe every 0.2 s): ovs-vswitchd on the userspace
    /// datapath applies a new tag, learns MACs and answers ARP later under load.
    pub fn pings(from: &str, addr: &str) -> bool {
        Self::in_ns(from, "ping", &["-c", "1", "-i", "0.2", "-w", "4", addr])
            .status
            .success()
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for child in [self.vswitchd.take(), self.ovsdb.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        for n in self.containers.iter().rev() {
            let _ = run("ip", &["netns", "del", n]);
        }
        if std::env::var_os("NETPROV_KEEP_OVS_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
