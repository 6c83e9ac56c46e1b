//! Fixtures for the end-to-end tests of `netprov` and `netprov-nspawn-glue` (a
//! dev-dependency of both; never published): a simulated host netns per test
//! ([`HostNetns`]), a private Open vSwitch ([`ovs`]) and OVN ([`ovn`]) inside it, the
//! seeded props generator of the convergence test ([`props_gen`]), and helpers to run
//! commands and the `netprov` binary.
//!
//! Tests run as root but touch only namespaces they create here; nothing is sent to or
//! configured on the machine's own interfaces. Every fixture cleans up on drop, also
//! when the test panics.
//!
//! All tests of a crate run in one process (one `e2e` binary, several threads), so
//! nothing here changes process-wide state: namespaces are entered by child processes
//! (`nsenter`), environment variables are set on child commands only.

pub mod host;
pub mod ovn;
pub mod ovs;
pub mod props_dir;
pub mod props_gen;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use host::HostNetns;
pub use props_dir::PropsDir;

/// The netprov binary under test: `$NETPROV_TEST_BIN`, or the one cargo built next to
/// the running test (`target/<profile>/deps/<test>` → `target/<profile>/netprov`; cargo
/// builds it for netprov's own integration tests and for `cargo test --workspace`;
/// with `-p netprov-nspawn-glue` build it first).
pub fn netprov_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NETPROV_TEST_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
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

/// A unique short name for this process and call: `<prefix><pid-hex><n>`, ≤ 15 bytes
/// (an interface or netns name may be derived from it; the pid, 5 hex digits, keeps test
/// processes running at the same time apart).
///
/// `n` counts per prefix, in base 36, so names stay as short as when every module was a
/// process of its own: all modules now share one process, and one decimal counter would
/// grow every module's names (tests rely on `np-<id>-<iface>` fitting in 15 bytes, the
/// limit past which netprov derives a hashed name instead). A set of the names given out
/// keeps them unique even where two prefixes could spell the same name.
pub fn unique(prefix: &str) -> String {
    static GIVEN: Mutex<Option<Given>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(Given::default);
    let pid = std::process::id() % 0xfffff;
    loop {
        let n = given.counters.entry(prefix.to_owned()).or_insert(0);
        let name = format!("{prefix}{pid:05x}{}", base36(*n));
        *n += 1;
        if given.names.insert(name.clone()) {
            assert!(name.len() <= 15, "{name} too long");
            return name;
        }
    }
}

/// What [`unique`] gave out: the next `n` per prefix, and every name.
#[derive(Default)]
struct Given {
    counters: HashMap<String, u32>,
    names: HashSet<String>,
}

/// `n` in lowercase base 36 (`0`–`9`, `a`–`z`).
fn base36(mut n: u32) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit(n % 36, 36).unwrap());
        n /= 36;
        if n == 0 {
            return digits.iter().rev().collect();
        }
    }
}

/// A fresh path in the temp dir, `<prefix>-<unique>` (no length limit).
pub fn temp_path(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}", unique("")))
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
    output(Command::new(cmd).args(args))
}

/// Runs a command and panics with its stderr unless it succeeds; returns stdout.
pub fn ok(cmd: &str, args: &[&str]) -> String {
    succeeded(&format!("{cmd} {args:?}"), run(cmd, args))
}

/// Panics naming `what` with the output unless it succeeded; returns stdout.
pub fn succeeded(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a prepared command, returning its output; panics if it cannot be started.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a prepared command and panics with its output unless it succeeds; returns stdout.
pub fn ok_cmd(mut cmd: Command) -> String {
    let out = output(&mut cmd);
    succeeded(&format!("{cmd:?}"), out)
}

/// `nsenter --net=/run/netns/<ns> -- cmd args...` (not `ip netns exec`, which would
/// also unshare the mount namespace and hide new /run/netns handles).
pub fn in_ns(ns: &str, cmd: &str, args: &[&str]) -> Command {
    nsenter(&host::netns_path(ns), cmd, args)
}

/// Runs `cmd args...` in netns `ns`; panics naming the netns unless it succeeds;
/// returns stdout.
pub fn ns_ok(ns: &str, cmd: &str, args: &[&str]) -> String {
    succeeded(
        &format!("[{ns}] {cmd} {args:?}"),
        output(&mut in_ns(ns, cmd, args)),
    )
}

/// 3 echo requests from netns `ns`, source address `src`, to `dst`: true when at
/// least one is answered.
pub fn ping_from(ns: &str, src: &str, dst: &str) -> bool {
    let args = ["-c", "3", "-i", "0.2", "-W", "1", "-I", src, dst];
    output(&mut in_ns(ns, "ping", &args)).status.success()
}

/// `nsenter --net=<path> -- cmd args...`.
pub fn nsenter(netns: &std::path::Path, cmd: &str, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", netns.display()))
        .arg("--")
        .arg(cmd)
        .args(args);
    c
}

/// A process kept alive in the background (killed and reaped on drop).
pub struct Bg(pub Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Retries a command every 100 ms until it succeeds, for up to `timeout` (a listener
/// may still be starting); whether it did.
pub fn eventually(mut cmd: Command, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if output(&mut cmd).status.success() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `f` every 20 ms until it holds; panics after `timeout` naming `what` (a
/// bound on waiting for a daemon, not a timed assertion).
pub fn wait_until(timeout: Duration, what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `testkit::extends!(T => Fixture)`: `T(Fixture)` derefs (mutably too) to the testkit
/// fixture it wraps, so a test module's `T` adds its own methods to a shared fixture.
#[macro_export]
macro_rules! extends {
    ($t:ty => $target:ty) => {
        impl std::ops::Deref for $t {
            type Target = $target;
            fn deref(&self) -> &$target {
                &self.0
            }
        }
        impl std::ops::DerefMut for $t {
            fn deref_mut(&mut self) -> &mut $target {
                &mut self.0
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_digits() {
        let cases = [
            (0, "0"),
            (9, "9"),
            (10, "a"),
            (35, "z"),
            (36, "10"),
            (1295, "zz"),
        ];
        for (n, s) in cases {
            assert_eq!(base36(n), s);
        }
    }

    #[test]
    fn unique_names_are_distinct_short_and_count_per_prefix() {
        let names: Vec<String> = (0..2000)
            .flat_map(|_| [unique("a"), unique("a1"), unique("")])
            .collect();
        let set: HashSet<&String> = names.iter().collect();
        assert_eq!(set.len(), names.len());
        assert!(names.iter().all(|n| n.len() <= 15));
        // 2000 names of one prefix: 3 base-36 digits after the prefix and the pid.
        assert!(names.iter().all(|n| n.len() <= 2 + 5 + 3), "{names:?}");
    }
}
