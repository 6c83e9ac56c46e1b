//! Fixtures for the end-to-end test with real systemd-nspawn containers: a cached
//! Debian root filesystem, a simulated host netns, containers started the way the unit
//! starts them, and comparable snapshots of network state.
#![allow(dead_code)]

pub mod container;
pub mod host;
pub mod netstate;
pub mod ovs;
pub mod rootfs;
pub mod unit;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The netprov binary under test: `$NETPROV_TEST_BIN`, or the one cargo built next to this
/// test (`cargo test --workspace` builds it; with `-p` build it first).
pub fn netprov_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NETPROV_TEST_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/netprov
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("netprov");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p netprov` first (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// A unique short name: `<prefix><pid-hex><n>`, at most 15 bytes (an interface name
/// may be derived from it).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{:x}{n}", std::process::id() % 0xfffff);
    assert!(name.len() <= 12, "{name} too long");
    name
}

/// Runs a command and panics with its output unless it succeeds; returns stdout.
pub fn ok(mut cmd: Command) -> String {
    let out = output(&mut cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}
