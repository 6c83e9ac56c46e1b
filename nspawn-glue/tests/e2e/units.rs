//! The unit files and the generator, checked by systemd itself: every drop-in (as
//! shipped and as generated) passes `systemd-analyze verify` on top of the template it
//! extends, and the nspawn drop-in's ExecStart is this machine's upstream one with the
//! netns in place of `--network-veth`.
//!
//! Verification, not execution: `netprov`, `systemd-nspawn` and NixUnits' scripts are
//! stubs inside a temporary root (`systemd-analyze --root`), so only resolvability of
//! the commands and the unit syntax are checked.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const UPSTREAM: &str = "/usr/lib/systemd/system/systemd-nspawn@.service";
const UNITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/units");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const GENERATOR: &str = env!("CARGO_BIN_EXE_netprov-systemd-generator");

/// A throw-away root with this machine's system units, the NixUnits stand-in template
/// and stub executables for everything the units run.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Self { dir };
        let system = root.path().join("usr/lib/systemd/system");
        fs::create_dir_all(&system).unwrap();
        for entry in fs::read_dir("/usr/lib/systemd/system").unwrap() {
            let entry = entry.unwrap();
            let ty = entry.file_type().unwrap();
            let to = system.join(entry.file_name());
            if ty.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), to).unwrap();
            } else if ty.is_file() {
                fs::copy(entry.path(), to).unwrap();
            }
        }
        fs::copy(
            Path::new(FIXTURES).join("nixunits@.service"),
            system.join("nixunits@.service"),
        )
        .unwrap();
        for stub in [
            "netprov",
            "setpriv",
            "systemd-nspawn",
            "nixunit-start-pre",
            "nixunit-start-post",
            "nixunit-stop",
            "sh",
        ] {
            root.stub(stub);
        }
        root
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn stub(&self, name: &str) {
        let bin = self.path().join("usr/bin");
        fs::create_dir_all(&bin).unwrap();
        let file = bin.join(name);
        fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Installs a shipped drop-in the way docs/nspawn.md tells users to.
    fn install(&self, shipped: &str, unit: &str) {
        let dir = self
            .path()
            .join("etc/systemd/system")
            .join(format!("{unit}.d"));
        fs::create_dir_all(&dir).unwrap();
        fs::copy(Path::new(UNITS).join(shipped), dir.join("50-netprov.conf")).unwrap();
    }

    fn verify(&self, unit: &str) -> Output {
        Command::new("systemd-analyze")
            .arg(format!("--root={}", self.path().display()))
            .args(["verify", "--man=no", unit])
            .output()
            .expect("systemd-analyze")
    }

    /// Verifies and requires silence: systemd-analyze exits 0 on unknown keys but warns.
    fn assert_verifies(&self, unit: &str) {
        let out = self.verify(unit);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "verify {unit}: {stderr}"
        );
    }
}

fn exec_start(unit_text: &str) -> Vec<String> {
    let line = unit_text
        .lines()
        .rfind(|l| l.starts_with("ExecStart="))
        .expect("an ExecStart= line");
    line["ExecStart=".len()..]
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Upstream options the drop-in removes: its own network, and user namespacing, with
/// which nspawn cannot join a netns owned by the host (see the drop-in's comment).
const REMOVED: [&str; 2] = ["--network-veth", "-U"];

#[test]
fn nspawn_exec_start_is_upstream_minus_veth_and_userns_plus_netns() {
    let upstream = exec_start(&fs::read_to_string(UPSTREAM).unwrap());
    for removed in REMOVED {
        assert!(
            upstream.iter().any(|a| a == removed),
            "upstream has no {removed}: {upstream:?}"
        );
    }
    let mut expected: Vec<String> = upstream
        .into_iter()
        .filter(|a| !REMOVED.contains(&a.as_str()))
        .collect();
    expected.push("--network-namespace-path=/run/netns/%i".into());
    let ours =
        fs::read_to_string(Path::new(UNITS).join("systemd-nspawn@.service.d/50-netprov.conf"))
            .unwrap();
    assert_eq!(exec_start(&ours), expected);
}

#[test]
fn shipped_dropins_verify() {
    let root = Root::new();
    root.install(
        "systemd-nspawn@.service.d/50-netprov.conf",
        "systemd-nspawn@web.service",
    );
    root.install(
        "nixunits@.service.d/50-netprov.conf",
        "nixunits@web.service",
    );
    root.install(
        "nspawn-file/systemd-nspawn@.service.d/50-netprov.conf",
        "systemd-nspawn@db.service",
    );
    for unit in [
        "systemd-nspawn@web.service",
        "nixunits@web.service",
        "systemd-nspawn@db.service",
    ] {
        root.assert_verifies(unit);
    }
}

/// The host-wide units (reconcile on firewall/OVS restarts, the timer and path that
/// back it up, gc at boot) verify, with and without a container drop-in wanting gc.
#[test]
fn host_units_verify() {
    let root = Root::new();
    let system = root.path().join("etc/systemd/system");
    fs::create_dir_all(&system).unwrap();
    let mut units = Vec::new();
    for e in fs::read_dir(Path::new(UNITS).join("host")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        fs::copy(e.path(), system.join(&name)).unwrap();
        units.push(name);
    }
    units.sort();
    assert_eq!(
        units,
        [
            "netprov-gc.service",
            "netprov-preload.service",
            "netprov-reconcile-hook.service",
            "netprov-reconcile.path",
            "netprov-reconcile.service",
            "netprov-reconcile.timer",
        ]
    );
    for u in &units {
        root.assert_verifies(u);
    }
    root.install(
        "systemd-nspawn@.service.d/50-netprov.conf",
        "systemd-nspawn@web.service",
    );
    root.assert_verifies("systemd-nspawn@web.service");
    // The hook really is tied to the services whose restarts it follows.
    let hook = fs::read_to_string(system.join("netprov-reconcile-hook.service")).unwrap();
    for dep in [
        "PartOf=nftables.service firewalld.service openvswitch-switch.service ovs-vswitchd.service",
        "ReloadPropagatedFrom=nftables.service firewalld.service",
        "RemainAfterExit=yes",
    ] {
        assert!(hook.lines().any(|l| l == dep), "{dep}");
    }
}

/// The harness is not vacuous: without setpriv installed, verification fails on it.
#[test]
fn verify_catches_a_missing_command() {
    let root = Root::new();
    root.install(
        "systemd-nspawn@.service.d/50-netprov.conf",
        "systemd-nspawn@web.service",
    );
    fs::remove_file(root.path().join("usr/bin/setpriv")).unwrap();
    let out = root.verify("systemd-nspawn@web.service");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Command setpriv is not executable"),
        "{stderr}"
    );
}

fn run_generator(props: &Path, root: &Path) -> Output {
    run_generator_with(props, root, &[])
}

fn run_generator_with(props: &Path, root: &Path, env: &[(&str, &Path)]) -> Output {
    let gen = |d: &str| root.join("run/systemd").join(d);
    let mut c = Command::new(GENERATOR);
    c.args([
        gen("generator"),
        gen("generator.early"),
        gen("generator.late"),
    ])
    .env_clear()
    .env("NETPROV_PROPS_DIR", props)
    .env("SYSTEMD_LOG_TARGET", "console");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run generator")
}

/// A directory holding only `libsystemd-shared-<version>.so` (empty), standing in for
/// an installed systemd of that version.
fn fake_systemd(version: u32) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join(format!("libsystemd-shared-{version}.so")), "").unwrap();
    d
}

/// `-U` is kept exactly when the installed systemd-nspawn can join a host-owned netns
/// with it (≥ 261, found from the name of libsystemd-shared-<version>.so, without
/// spawning anything), or glue.conf says so; otherwise it is dropped and the generator
/// says why. With -U the nspawn drop-in's ExecStart is this machine's upstream one with
/// only `--network-veth` replaced, netprov applies with `--userns`, and the drop-ins
/// verify.
#[test]
fn generator_keeps_userns_with_systemd_261_or_later() {
    let upstream = exec_start(&fs::read_to_string(UPSTREAM).unwrap());
    for (version, conf, keep) in [
        (262, None, true),
        (261, None, true),
        (260, None, false),
        (252, None, false),
        (252, Some("private-users=yes\n"), true),
        (262, Some("# by hand\nprivate-users=no\n"), false),
    ] {
        let root = Root::new();
        let props = tempfile::tempdir().unwrap();
        fs::write(props.path().join("web.json"), r#"{"id":"web"}"#).unwrap();
        if let Some(c) = conf {
            fs::write(props.path().join("glue.conf"), c).unwrap();
        }
        let lib = fake_systemd(version);
        let out = run_generator_with(
            props.path(),
            root.path(),
            &[("NETPROV_SYSTEMD_LIB_DIRS", lib.path())],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let gen = root.path().join("run/systemd/generator");
        let text =
            fs::read_to_string(gen.join("systemd-nspawn@web.service.d/50-netprov.conf")).unwrap();
        let nix = fs::read_to_string(gen.join("nixunits@web.service.d/50-netprov.conf")).unwrap();
        let case = format!("systemd {version}, glue.conf {conf:?}");
        let mut expected: Vec<String> = upstream
            .iter()
            .filter(|a| *a != "--network-veth" && (keep || *a != "-U"))
            .cloned()
            .collect();
        expected.push("--network-namespace-path=/run/netns/%i".into());
        assert_eq!(exec_start(&text), expected, "{case}");
        assert_eq!(text.contains(" apply --userns "), keep, "{case}");
        assert_eq!(nix.contains(" apply --userns "), keep, "{case}");
        assert_eq!(
            exec_start(&nix).iter().any(|a| a == "--private-users=no"),
            !keep,
            "{case}"
        );
        // Dropping -U is said, with the reason; keeping it is the normal case.
        assert_eq!(stderr.contains("without -U"), !keep, "{case}: {stderr}");
        for unit in ["systemd-nspawn@web.service", "nixunits@web.service"] {
            root.assert_verifies(unit);
        }
    }
    // A bad glue.conf value: a warning, and auto.
    let root = Root::new();
    let props = tempfile::tempdir().unwrap();
    fs::write(props.path().join("web.json"), r#"{"id":"web"}"#).unwrap();
    fs::write(props.path().join("glue.conf"), "private-users=sometimes\n").unwrap();
    let lib = fake_systemd(262);
    let out = run_generator_with(
        props.path(),
        root.path(),
        &[("NETPROV_SYSTEMD_LIB_DIRS", lib.path())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("glue.conf: line 1") && stderr.contains("using auto"),
        "{stderr}"
    );
    let text = fs::read_to_string(
        root.path()
            .join("run/systemd/generator/systemd-nspawn@web.service.d/50-netprov.conf"),
    )
    .unwrap();
    assert!(text.contains(" -U "), "{text}");
}

// Long on purpose: one end-to-end scenario whose steps build on the state the previous
// steps left; split, each part would have to rebuild it.
#[test]
fn generated_dropins_verify_and_bad_files_are_skipped_with_a_message() {
    let root = Root::new();
    let props = tempfile::tempdir().unwrap();
    fs::write(
        props.path().join("web.json"),
        r#"{"id":"web","network":{}}"#,
    )
    .unwrap();
    fs::write(props.path().join("db-2.json"), r#"{"id":"db-2"}"#).unwrap();
    fs::write(props.path().join("typo.json"), r#"{"id":"typo""#).unwrap();
    fs::write(props.path().join("moved.json"), r#"{"id":"elsewhere"}"#).unwrap();

    let out = run_generator(props.path(), root.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "generator failed: {stderr}");
    let skipped: Vec<&str> = stderr.lines().filter(|l| l.contains("skipping")).collect();
    assert_eq!(skipped.len(), 2, "{stderr}");
    assert!(
        skipped[0].contains("skipping") && skipped[0].contains("moved.json"),
        "{stderr}"
    );
    assert!(
        skipped[1].contains("typo.json") && skipped[1].contains("not valid JSON"),
        "{stderr}"
    );

    let generated = root.path().join("run/systemd/generator");
    let mut units: Vec<String> = fs::read_dir(&generated)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    units.sort();
    assert_eq!(
        units,
        [
            "nixunits@db-2.service.d",
            "nixunits@web.service.d",
            "systemd-nspawn@db-2.service.d",
            "systemd-nspawn@web.service.d"
        ]
    );
    let text =
        fs::read_to_string(generated.join("systemd-nspawn@web.service.d/50-netprov.conf")).unwrap();
    assert!(text.contains(&format!(
        " -- netprov apply {}/%i.json\n",
        props.path().display()
    )));
    for unit in [
        "systemd-nspawn@web.service",
        "nixunits@web.service",
        "systemd-nspawn@db-2.service",
    ] {
        root.assert_verifies(unit);
    }
    // The early and late directories are left alone: admin drop-ins in /etc win.
    assert!(!root.path().join("run/systemd/generator.early").exists());
}

#[test]
fn generator_with_no_props_dir_writes_nothing_and_succeeds() {
    let root = Root::new();
    let out = run_generator(Path::new("/nonexistent/netprov"), root.path());
    assert!(out.status.success() && out.stderr.is_empty());
    assert!(!root.path().join("run/systemd/generator").exists());
}

#[test]
fn print_shows_both_dropins_for_an_id() {
    let out = Command::new(GENERATOR)
        .args(["--print", "web"])
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("# /etc/systemd/system/systemd-nspawn@web.service.d/50-netprov.conf\n")
    );
    assert!(text.contains("\n# /etc/systemd/system/nixunits@web.service.d/50-netprov.conf\n"));
    assert!(text.contains(" -- netprov apply /etc/netprov/%i.json\n"));

    let bad = Command::new(GENERATOR)
        .args(["--print", "../etc"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let usage = Command::new(GENERATOR).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

/// systemd.generator(7): generators must not spawn processes. Under strace, the only
/// execve is the generator's own and there is no fork/clone.
#[test]
fn generator_spawns_no_process() {
    let root = tempfile::tempdir().unwrap();
    let props = tempfile::tempdir().unwrap();
    fs::write(props.path().join("web.json"), r#"{"id":"web"}"#).unwrap();
    fs::write(props.path().join("bad.json"), "{").unwrap();
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=execve,fork,vfork,clone,clone3",
            GENERATOR,
        ])
        .arg(root.path().join("normal"))
        .arg(root.path().join("early"))
        .arg(root.path().join("late"))
        .env("NETPROV_PROPS_DIR", props.path())
        .env("SYSTEMD_LOG_TARGET", "console")
        .output()
        .expect("strace (Debian package strace)");
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{trace}");
    let calls: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains('('))
        .filter(|l| !l.starts_with("netprov-systemd-generator:"))
        .collect();
    assert_eq!(calls.len(), 1, "{trace}");
    assert!(
        calls[0].starts_with("execve(") && calls[0].contains(GENERATOR),
        "{trace}"
    );
    assert!(root
        .path()
        .join("normal/systemd-nspawn@web.service.d/50-netprov.conf")
        .is_file());
}
