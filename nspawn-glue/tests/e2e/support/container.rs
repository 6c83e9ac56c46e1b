//! A container run by the unit's ExecStart (adapted, see `unit.rs`) inside the
//! simulated host netns: `systemd-nspawn --keep-unit --register=no` joining the prepared
//! netns with `--network-namespace-path`, a long-lived `sleep` as its PID 1.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ok;
use testkit::HostNetns as Host;

pub struct Container {
    pub id: String,
    nspawn: Child,
    /// The container's PID 1 as seen from the host.
    pub pid: u32,
}

impl Container {
    /// Starts `argv` (the unit's ExecStart, see `unit::UnitCommands::start`) inside
    /// the host netns and waits until the payload runs in `/run/netns/<id>`.
    pub fn start(host: &Host, argv: &[String], id: &str) -> Self {
        let netns = format!("/run/netns/{id}");
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        let mut cmd = host.cmd(&argv[0], &args);
        let mut nspawn = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn systemd-nspawn");
        // nsenter execs nspawn in place, so the child's pid is nspawn's.
        let netns_ino = fs::metadata(&netns).expect("container netns").ino();
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = loop {
            if let Some(pid) = payload(nspawn.id(), netns_ino) {
                break pid;
            }
            if let Some(status) = nspawn.try_wait().expect("wait nspawn") {
                let mut err = String::new();
                if let Some(mut e) = nspawn.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("{argv:?} for {id} exited with {status}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "container {id} did not start in 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            id: id.to_owned(),
            nspawn,
            pid,
        }
    }

    /// `CMD ARGS` inside the container: its network and mount namespaces, so the
    /// container's own `ip` and `ping` run.
    pub fn cmd(&self, cmd: &str, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.args([
            "--target",
            &self.pid.to_string(),
            "--net",
            "--mount",
            "--",
            cmd,
        ])
        .args(args);
        c
    }

    pub fn ok(&self, cmd: &str, args: &[&str]) -> String {
        ok(self.cmd(cmd, args))
    }

    /// Stops it as systemd does with KillMode=mixed: SIGTERM to nspawn, which kills the
    /// payload (its --kill-signal without --boot is SIGKILL) and exits.
    pub fn stop(mut self) {
        self.terminate();
    }

    /// The container's PID 1 exits (a poweroff inside), and nspawn with it.
    pub fn exit(mut self) {
        signal(self.pid, libc::SIGKILL);
        let _ = self.nspawn.wait();
    }

    fn terminate(&mut self) {
        if self.nspawn.try_wait().ok().flatten().is_some() {
            return;
        }
        signal(self.nspawn.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.nspawn.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(self.pid, libc::SIGKILL);
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) with a pid this test started; no memory is involved.
    unsafe { libc::kill(pid, sig) };
}

/// The child of nspawn that runs `sleep` in the netns with inode `netns_ino`, once it
/// has joined the netns and exec'd.
fn payload(nspawn: u32, netns_ino: u64) -> Option<u32> {
    let children = fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|p| {
            let comm = fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            let ns = fs::metadata(format!("/proc/{p}/ns/net")).map(|m| m.ino());
            comm.trim() == "sleep" && ns.ok() == Some(netns_ino)
        })
}
