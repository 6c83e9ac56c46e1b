//! A private Open vSwitch for one test: `ovsdb-server` and `ovs-vswitchd` with their own
//! database, socket, pidfiles, logs and run directory in a temp dir (never the
//! system's), running inside the test's simulated host netns (so internal ports appear
//! there, never on the machine). Bridges use the userspace datapath
//! (`datapath_type=netdev`): this kernel has no openvswitch module. Everything is
//! killed and removed on drop, also on panic.
//!
//! [`OvsDaemons`] runs in a host netns the caller owns; [`Ovs`] owns its host netns and
//! the "container" netns a test makes with it.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::host::netns_path;
use crate::{in_ns, ok, run, unique, HostNetns, PropsDir};

pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// `ovsdb-server` and `ovs-vswitchd` inside a host netns (entered by path: the daemons
/// do not borrow the [`HostNetns`]).
pub struct OvsDaemons {
    pub dir: PathBuf,
    netns: PathBuf,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
}

impl OvsDaemons {
    /// Starts both daemons in `host` and returns once ovs-vswitchd has applied the
    /// configuration.
    pub fn start(host: &HostNetns) -> Self {
        let dir = std::env::temp_dir().join(format!("netprov-ovs-{}", unique("o")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create OVS test dir");
        let mut ovs = OvsDaemons {
            dir,
            netns: host.path(),
            ovsdb: None,
            vswitchd: None,
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
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c: Command = crate::nsenter(&self.netns, prog, &args);
        for var in ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"] {
            c.env(var, &self.dir);
        }
        c.env("OVS_PKGDATADIR", "/usr/share/openvswitch");
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

    /// `unix:<private socket>`, what netprov's `--ovsdb` (and `NETPROV_OVSDB`) takes.
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

    /// Port names on `bridge` (besides the bridge's own), sorted.
    pub fn ports(&self, bridge: &str) -> Vec<String> {
        let mut ports: Vec<String> = self
            .vsctl(&["list-ports", bridge])
            .lines()
            .map(str::to_owned)
            .collect();
        ports.sort();
        ports
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
}

impl Drop for OvsDaemons {
    fn drop(&mut self) {
        self.stop_vswitchd();
        self.stop_ovsdb();
        if std::env::var_os("NETPROV_KEEP_OVS_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A private OVS in a simulated host netns of its own, with the "container" netns a
/// test makes ([`Ovs::container`]); derefs to its [`OvsDaemons`].
pub struct Ovs {
    daemons: OvsDaemons,
    /// Container netns made with [`Ovs::container`], deleted on drop.
    containers: Vec<String>,
    /// Last field: dropped after the daemons are gone.
    pub host: HostNetns,
}

impl Deref for Ovs {
    type Target = OvsDaemons;
    fn deref(&self) -> &OvsDaemons {
        &self.daemons
    }
}

impl DerefMut for Ovs {
    fn deref_mut(&mut self) -> &mut OvsDaemons {
        &mut self.daemons
    }
}

impl Ovs {
    pub fn start() -> Self {
        let host = HostNetns::new();
        Ovs {
            daemons: OvsDaemons::start(&host),
            containers: Vec::new(),
            host,
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
        netns_path(name)
    }

    /// Runs a command inside netns `ns`.
    pub fn in_ns(ns: &str, cmd: &str, args: &[&str]) -> std::process::Output {
        in_ns(ns, cmd, args).output().expect("nsenter")
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
        // The daemons go first (before the container netns and the host).
        self.daemons.stop_vswitchd();
        self.daemons.stop_ovsdb();
        for n in self.containers.iter().rev() {
            let _ = run("ip", &["netns", "del", n]);
        }
    }
}

/// A private OVS with bridge `br0`, a props directory, and the `netprov` binary run in
/// its host against its database (`--ovsdb`): the fixture of the CLI tests with OVS.
pub struct OvsCli {
    pub dir: PropsDir,
    pub o: Ovs,
}

impl OvsCli {
    pub fn new() -> Self {
        let o = Ovs::start();
        o.add_bridge("br0");
        OvsCli {
            dir: PropsDir::new(),
            o,
        }
    }

    /// A fresh container id (its netns is deleted on drop if a test fails).
    pub fn id(&mut self) -> String {
        self.o.host.new_id("k")
    }

    /// Whether the host netns has a link `name`.
    pub fn host_has_link(&self, name: &str) -> bool {
        self.o
            .host
            .run("ip", &["link", "show", "dev", name])
            .status
            .success()
    }

    /// `netprov --ovsdb <private> args...` in the host netns.
    pub fn netprov(&self, args: &[&str]) -> Output {
        let ep = self.o.endpoint();
        let mut all = vec!["--ovsdb", ep.as_str()];
        all.extend_from_slice(args);
        self.o.host.netprov(&all)
    }
}

impl Default for OvsCli {
    fn default() -> Self {
        Self::new()
    }
}
