//! The simulated host: a named netns (`/run/netns/<name>`) made with `ip netns add`,
//! entered with `nsenter --net=`, deleted on drop together with the netns the test
//! registered (also when the test panics).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{netprov_bin, nsenter, ok, output, run, succeeded, unique};

/// `/run/netns/<name>`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// Waits (at most 30 s) until no IPv6 address in the netns `name` is tentative. Duplicate
/// address detection changes address flags, and adds local routes, on its own a moment
/// after a link comes up — later under load — so a snapshot of a netns taken before it
/// settled differs from one taken after, with nothing having touched it.
pub fn dad_settled(name: &str) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ok("ip", &["-n", name, "-6", "addr", "show", "tentative"])
        .trim()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < until,
            "IPv6 DAD does not settle in netns {name}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A simulated host: a named netns deleted on drop, together with every netns
/// registered with [`HostNetns::track`] (and, first, every container registered with
/// [`HostNetns::destroy_on_drop`] is destroyed by netprov), and their lock files.
pub struct HostNetns {
    pub name: String,
    /// Environment for every command run in the host (e.g. `NETPROV_OVSDB`).
    pub env: Vec<(String, String)>,
    tracked: Vec<String>,
    containers: Vec<String>,
}

impl HostNetns {
    pub fn new() -> Self {
        let name = unique("h");
        ok("ip", &["netns", "add", &name]);
        ok("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Self {
            name,
            env: Vec::new(),
            tracked: Vec::new(),
            containers: Vec::new(),
        }
    }

    pub fn path(&self) -> PathBuf {
        netns_path(&self.name)
    }

    /// Also delete `/run/netns/<name>` and `/run/netprov/<name>.lock` on drop (a
    /// container a test expects netprov to create, in case the test fails before
    /// netprov's own destroy).
    pub fn track(&mut self, name: &str) {
        self.tracked.push(name.to_owned());
    }

    /// A fresh container id `<prefix><unique>` whose netns `/run/netns/<id>` is deleted
    /// on drop ([`HostNetns::track`]).
    pub fn new_id(&mut self, prefix: &str) -> String {
        let id = unique(prefix);
        self.track(&id);
        id
    }

    /// On drop: `netprov destroy <id>` in this host, then delete a leftover
    /// `/run/netns/<id>` (containers started the way the unit starts them).
    pub fn destroy_on_drop(&mut self, id: &str) {
        self.containers.push(id.to_owned());
    }

    /// A netns `<prefix><unique>` with lo up, deleted on drop ([`HostNetns::track`]).
    pub fn netns(&mut self, prefix: &str) -> String {
        let ns = unique(prefix);
        ok("ip", &["netns", "add", &ns]);
        self.track(&ns);
        ok("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// A veth pair `name` / `peer` in this host (a veth end also stands in for a
    /// physical NIC: this kernel has no dummy driver).
    pub fn add_veth(&self, name: &str, peer: &str) {
        self.ok(
            "ip",
            &["link", "add", name, "type", "veth", "peer", "name", peer],
        );
    }

    /// A veth pair `name` (in this host) / `peer` (moved into netns `ns`).
    pub fn add_veth_into(&self, name: &str, peer: &str, ns: &str) {
        self.ok(
            "ip",
            &[
                "link", "add", name, "type", "veth", "peer", "name", peer, "netns", ns,
            ],
        );
    }

    /// Links netns `ns` to this host: a veth `host_end` here (address `host_addr`) and
    /// `eth0` in `ns` (address `ns_addr`), both up.
    pub fn link_netns(&self, ns: &str, host_end: &str, host_addr: &str, ns_addr: &str) {
        self.add_veth_into(host_end, "eth0", ns);
        self.ok("ip", &["addr", "add", host_addr, "dev", host_end]);
        self.ok("ip", &["link", "set", host_end, "up"]);
        ok("ip", &["-n", ns, "addr", "add", ns_addr, "dev", "eth0"]);
        ok("ip", &["-n", ns, "link", "set", "eth0", "up"]);
    }

    /// `nsenter --net=/run/netns/<host> cmd args...` with [`HostNetns::env`].
    pub fn cmd(&self, cmd: &str, args: &[&str]) -> Command {
        let mut c = nsenter(&self.path(), cmd, args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    pub fn run(&self, cmd: &str, args: &[&str]) -> Output {
        self.cmd(cmd, args).output().expect("nsenter")
    }

    pub fn ok(&self, cmd: &str, args: &[&str]) -> String {
        let what = format!("[{}] {cmd} {args:?}", self.name);
        succeeded(&what, self.run(cmd, args))
    }

    /// Runs netprov inside this host netns.
    pub fn netprov(&self, args: &[&str]) -> Output {
        let bin = netprov_bin();
        self.run(bin.to_str().expect("UTF-8 path"), args)
    }

    /// Runs netprov inside this host netns; panics with its output unless it succeeds;
    /// returns stdout.
    pub fn netprov_ok(&self, args: &[&str]) -> String {
        succeeded(&format!("netprov {args:?}"), self.netprov(args))
    }

    /// Runs a unit command line (`argv[0]` and arguments) inside the host netns.
    pub fn run_argv(&self, argv: &[String]) -> Output {
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        output(&mut self.cmd(&argv[0], &args))
    }

    pub fn run_argv_ok(&self, argv: &[String]) -> String {
        succeeded(&format!("{argv:?}"), self.run_argv(argv))
    }
}

impl Default for HostNetns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HostNetns {
    fn drop(&mut self) {
        for id in &self.containers {
            let _ = self
                .cmd(
                    netprov_bin().to_str().unwrap_or("netprov"),
                    &["destroy", id],
                )
                .output();
            if netns_path(id).exists() {
                let _ = run("ip", &["netns", "del", id]);
            }
        }
        for n in self.tracked.iter().rev() {
            let _ = run("ip", &["netns", "del", n]);
        }
        // A test that failed before netprov's destroy leaves the container's lock file
        // (netprov keeps it as long as the container: docs/engine.md).
        for id in self.containers.iter().chain(&self.tracked) {
            let _ = std::fs::remove_file(Path::new("/run/netprov").join(format!("{id}.lock")));
        }
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}
