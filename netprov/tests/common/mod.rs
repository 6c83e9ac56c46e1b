//! Shared fixtures for end-to-end tests: a simulated host netns per test, commands run
//! inside it, and cleanup on drop (also when the test panics).
//!
//! Tests run as root but touch only namespaces they create here; nothing is sent to or
//! configured on the machine's own interfaces.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Path of the netprov binary under test.
pub fn netprov_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netprov"))
}

/// A unique short name for this process and call: `<prefix><pid-base36><n>`, ≤ 15 bytes.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{:x}{n}", std::process::id() % 0xfffff);
    assert!(name.len() <= 15, "{name} too long");
    name
}

/// A command's exit status, stdout and stderr, for assertion messages (and for
/// `contains` checks on what netprov printed, wherever it printed it).
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command, returning its output; panics if it cannot be started.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Runs a command and panics with its stderr unless it succeeds; returns stdout.
pub fn ok(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A simulated host: a named netns (`/run/netns/<name>`) deleted on drop, together with
/// every netns registered with [`HostNetns::track`].
pub struct HostNetns {
    pub name: String,
    tracked: Vec<String>,
}

impl HostNetns {
    pub fn new() -> Self {
        let name = unique("h");
        ok("ip", &["netns", "add", &name]);
        ok("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Self {
            name,
            tracked: Vec::new(),
        }
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Also delete `/run/netns/<name>` on drop (container netns a test expects netprov
    /// to create, in case the test fails before netprov's own destroy).
    pub fn track(&mut self, name: &str) {
        self.tracked.push(name.to_owned());
    }

    /// `nsenter --net=/run/netns/<host> cmd args...` (not `ip netns exec`, which would
    /// also unshare the mount namespace and hide new /run/netns handles).
    pub fn cmd(&self, cmd: &str, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(cmd)
            .args(args);
        c
    }

    pub fn run(&self, cmd: &str, args: &[&str]) -> Output {
        self.cmd(cmd, args).output().expect("nsenter")
    }

    pub fn ok(&self, cmd: &str, args: &[&str]) -> String {
        let out = self.run(cmd, args);
        assert!(
            out.status.success(),
            "[{}] {cmd} {args:?} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs netprov inside this host netns.
    pub fn netprov(&self, args: &[&str]) -> Output {
        let bin = netprov_bin();
        self.run(bin.to_str().unwrap(), args)
    }
}

impl Default for HostNetns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HostNetns {
    fn drop(&mut self) {
        for n in self.tracked.iter().rev() {
            let _ = run("ip", &["netns", "del", n]);
        }
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}
