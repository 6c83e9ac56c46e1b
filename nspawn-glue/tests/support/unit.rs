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
        let settings = Settings {
            netprov_bin: netprov.to_str().expect("UTF-8 path").to_owned(),
            props_dir: props_dir.to_owned(),
            ..Settings::default()
        };
        Self {
            text: render(Template::Nspawn, &settings, None),
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
