//! The simulated host: a netns made with `ip netns add`, entered with
//! `nsenter --net=` (not `ip netns exec`, whose private mount namespace would hide the
//! `/run/netns/<id>` handles netprov creates).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{netprov_bin, ok, output, unique};

pub struct Host {
    pub name: String,
    /// Environment for every command run in the host (e.g. `NETPROV_OVSDB`).
    pub env: Vec<(String, String)>,
    /// Container ids whose netns is removed on drop if the test did not get that far.
    containers: Vec<String>,
}

impl Host {
    pub fn new() -> Self {
        let name = unique("nph");
        let mut add = Command::new("ip");
        add.args(["netns", "add", &name]);
        ok(add);
        let host = Self {
            name,
            env: Vec::new(),
            containers: Vec::new(),
        };
        ok(host.cmd("ip", &["link", "set", "lo", "up"]));
        host
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    pub fn cmd(&self, cmd: &str, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(cmd)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// `netprov ARGS` inside the host netns, as the unit's ExecStartPre/ExecStopPost.
    pub fn netprov(&self, args: &[&str]) -> Output {
        output(&mut self.cmd(netprov_bin().to_str().expect("UTF-8 path"), args))
    }

    pub fn netprov_ok(&self, args: &[&str]) -> String {
        let out = self.netprov(args);
        assert!(
            out.status.success(),
            "netprov {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a unit command line (`argv[0]` and arguments) inside the host netns.
    pub fn run_argv(&self, argv: &[String]) -> Output {
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        output(&mut self.cmd(&argv[0], &args))
    }

    pub fn run_argv_ok(&self, argv: &[String]) -> String {
        let out = self.run_argv(argv);
        assert!(
            out.status.success(),
            "{argv:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// On drop: `netprov destroy <id>`, then delete a leftover `/run/netns/<id>`.
    pub fn track(&mut self, id: &str) {
        self.containers.push(id.to_owned());
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for id in &self.containers {
            let _ = self
                .cmd(
                    netprov_bin().to_str().unwrap_or("netprov"),
                    &["destroy", id],
                )
                .output();
            if Path::new("/run/netns").join(id).exists() {
                let _ = Command::new("ip").args(["netns", "del", id]).output();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
