//! The command lines of the systemd-nspawn@ drop-in, rendered by the generator's own
//! code for this test's netprov binary and props directory, with `%i` expanded. The
//! end-to-end test runs these, not a copy of them.

use std::path::Path;

use netprov_nspawn_glue::dropin::{render, Settings, Template};

pub struct UnitCommands {
    text: String,
}

/// What the test cannot run: booting an init (systemd is not PID 1 here); the payload
/// is a `sleep` instead.
const NOT_HERE: [&str; 1] = ["--boot"];

impl UnitCommands {
    pub fn nspawn(netprov: &Path, props_dir: &Path) -> Self {
        Self::render(Template::Nspawn, netprov, props_dir)
    }

    pub fn nixunits(netprov: &Path, props_dir: &Path) -> Self {
        Self::render(Template::NixUnits, netprov, props_dir)
    }

    fn render(template: Template, netprov: &Path, props_dir: &Path) -> Self {
        let settings = Settings {
            netprov_bin: netprov.to_str().expect("UTF-8 path").to_owned(),
            props_dir: props_dir.to_owned(),
            ..Settings::default()
        };
        Self {
            text: render(template, &settings, None),
        }
    }

    /// The last `KEY=` line's argv with `%i` = `id`.
    fn argv(&self, key: &str, id: &str) -> Vec<String> {
        let prefix = format!("{key}=");
        let line = self
            .text
            .lines()
            .rfind(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {key}= in the drop-in"));
        line[prefix.len()..]
            .split(' ')
            .map(|w| w.replace("%i", id))
            .collect()
    }

    pub fn start_pre(&self, id: &str) -> Vec<String> {
        self.argv("ExecStartPre", id)
    }

    pub fn stop_post(&self, id: &str) -> Vec<String> {
        self.argv("ExecStopPost", id)
    }

    /// ExecStart adapted to this machine: without [`NOT_HERE`], with `--register=no`
    /// (no machined), `--read-only` (two containers share the rootfs) and a `sleep`
    /// payload instead of `--boot`.
    pub fn start(&self, id: &str, rootfs: &Path) -> Vec<String> {
        let mut argv = self.argv("ExecStart", id);
        assert_eq!(argv[0], "systemd-nspawn");
        assert!(
            argv.contains(&format!("--network-namespace-path=/run/netns/{id}")),
            "{argv:?}"
        );
        argv.retain(|a| !NOT_HERE.contains(&a.as_str()));
        argv.extend(
            [
                "--register=no",
                "--read-only",
                "-D",
                rootfs.to_str().expect("UTF-8 path"),
            ]
            .map(str::to_owned),
        );
        argv.extend(["--", "/bin/sleep", "infinity"].map(str::to_owned));
        argv
    }
}

/// `NSPAWN_ARGS` as NixUnits' Nix module renders it for a container declared without
/// `network` (its nix/security.nix defaults plus `--private-network`), abridged to one
/// capability drop.
pub const NIXUNITS_NSPAWN_ARGS: &str = "--no-new-privileges=yes --private-users=pick \
    --private-users-ownership=chown --drop-capability=CAP_SYS_MODULE --private-network";

impl UnitCommands {
    /// The NixUnits drop-in's ExecStart with what its EnvironmentFile would provide:
    /// `$NSPAWN_ARGS` = [`NIXUNITS_NSPAWN_ARGS`], `${SYSTEM_PATH}` = `/opt/system` (the
    /// test puts an `init` there that execs `sleep`), the root directory `rootfs`
    /// instead of /var/lib/nixunits/containers/<id>/root, plus `--register=no
    /// --keep-unit` (no systemd as PID 1 here).
    pub fn start_nixunits(&self, id: &str, rootfs: &Path) -> Vec<String> {
        let argv = self.argv("ExecStart", id);
        let mut out = Vec::new();
        let mut words = argv.into_iter();
        while let Some(w) = words.next() {
            match w.as_str() {
                "$NSPAWN_ARGS" => {
                    out.extend(NIXUNITS_NSPAWN_ARGS.split_whitespace().map(str::to_owned))
                }
                "-D" => {
                    let dir = words.next().expect("-D DIR");
                    assert_eq!(dir, format!("/var/lib/nixunits/containers/{id}/root"));
                    out.push(w);
                    out.push(rootfs.to_str().expect("UTF-8 path").to_owned());
                }
                _ => out.push(w.replace("${SYSTEM_PATH}", "/opt/system")),
            }
        }
        out.insert(1, "--register=no".into());
        out.insert(1, "--keep-unit".into());
        out
    }
}
