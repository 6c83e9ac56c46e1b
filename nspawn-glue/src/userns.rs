//! Whether containers keep their user namespace (`-U`, `--private-users=pick`) on a
//! netns netprov made.
//!
//! systemd-nspawn up to 260 joins `--network-namespace-path=` from inside the
//! container's new user namespace, which has no rights over a netns owned by the host
//! ("Failed to join network namespace: Operation not permitted", systemd issue 36363).
//! systemd PR 41838 (merged 2026-04-27, after v260) joins the netns first and then
//! creates the user namespace, so from systemd 261 on the drop-ins keep `-U` and run
//! `netprov apply --userns` (the per-netns sysctls such a container needs); on older
//! versions they drop it and the generator says so in the kernel log.
//!
//! A generator must not spawn processes, so the version is not asked from
//! `systemd-nspawn --version`: it is read from the name of systemd's private library,
//! `libsystemd-shared-<version>.so`, in the directories distributions install it to.
//! `/etc/netprov/glue.conf` can say `private-users=yes` or `no` instead of `auto`.

use std::path::{Path, PathBuf};

/// The first systemd release whose nspawn can join a host-owned netns with `-U`.
pub const MIN_SYSTEMD: u32 = 261;

/// File name of the glue's settings, in the props directory.
pub const CONF_NAME: &str = "glue.conf";

/// `private-users=` in glue.conf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Setting {
    /// By the installed systemd version.
    #[default]
    Auto,
    Yes,
    No,
}

/// Reads `private-users=` from glue.conf text (`key=value` lines, `#` comments).
/// Problems come back as messages; the setting then stays `auto`.
pub fn parse_conf(text: &str) -> (Setting, Vec<String>) {
    let mut setting = Setting::Auto;
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("private-users", "auto")) => setting = Setting::Auto,
            Some(("private-users", "yes")) => setting = Setting::Yes,
            Some(("private-users", "no")) => setting = Setting::No,
            Some(("private-users", v)) => problems.push(format!(
                "line {}: private-users={v:?}: expected auto, yes or no; using auto",
                n + 1
            )),
            _ => problems.push(format!("line {}: unknown setting {line:?}, ignored", n + 1)),
        }
    }
    (setting, problems)
}

/// Where distributions install `libsystemd-shared-<version>.so`: `/usr/lib/systemd`
/// (Arch, Fedora's lib64 twin), `/usr/lib/<triplet>/systemd` (Debian, Ubuntu), the
/// running system's systemd on NixOS.
pub fn default_lib_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = [
        "/usr/lib/systemd",
        "/usr/lib64/systemd",
        "/lib/systemd",
        "/run/current-system/systemd/lib/systemd",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        let mut multiarch: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("-linux-"))
            .map(|e| e.path().join("systemd"))
            .collect();
        multiarch.sort();
        dirs.extend(multiarch);
    }
    dirs
}

/// The version in a `libsystemd-shared-<version>…so` file name: its leading digits
/// (`252`, `256` of `256.11-1.fc41`).
pub fn version_of(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix("libsystemd-shared-")?;
    if !file_name.ends_with(".so") {
        return None;
    }
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The highest systemd version found in `dirs` (an upgrade may leave two for a while;
/// nspawn is the new one).
pub fn installed_version(dirs: &[PathBuf]) -> Option<u32> {
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|e| e.flatten())
        .filter_map(|e| version_of(&e.file_name().to_string_lossy()))
        .max()
}

/// Whether the drop-ins keep `-U`, and why (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    pub why: String,
}

pub fn decide(setting: Setting, version: Option<u32>, conf: &Path) -> Decision {
    match (setting, version) {
        (Setting::Yes, _) => Decision {
            keep: true,
            why: format!("private-users=yes in {}", conf.display()),
        },
        (Setting::No, _) => Decision {
            keep: false,
            why: format!(
                "private-users=no in {}: containers run without -U",
                conf.display()
            ),
        },
        (Setting::Auto, Some(v)) if v >= MIN_SYSTEMD => Decision {
            keep: true,
            why: format!("systemd {v} joins the netns before creating the user namespace"),
        },
        (Setting::Auto, Some(v)) => Decision {
            keep: false,
            why: format!(
                "systemd-nspawn {v} cannot join a netns owned by the host from a user namespace (needs systemd >= {MIN_SYSTEMD}); containers run without -U, root in them is root on the host"
            ),
        },
        (Setting::Auto, None) => Decision {
            keep: false,
            why: format!(
                "systemd version unknown (no libsystemd-shared-<version>.so found); containers run without -U. Set private-users=yes in {} with systemd >= {MIN_SYSTEMD}",
                conf.display()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_library_names() {
        assert_eq!(version_of("libsystemd-shared-252.so"), Some(252));
        assert_eq!(version_of("libsystemd-shared-256.11-1.fc41.so"), Some(256));
        assert_eq!(version_of("libsystemd-shared-262.so"), Some(262));
        assert_eq!(version_of("libsystemd-core-252.so"), None);
        assert_eq!(version_of("libsystemd-shared-.so"), None);
        assert_eq!(version_of("libsystemd-shared-262.so.old"), None);
    }

    #[test]
    fn this_machine_has_a_version() {
        // Debian bookworm here: /usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so.
        let v = installed_version(&default_lib_dirs());
        assert!(v.is_some_and(|v| v >= 240), "{v:?}");
    }

    #[test]
    fn conf_and_decision() {
        let conf = Path::new("/etc/netprov/glue.conf");
        assert_eq!(parse_conf("# x\n\nprivate-users = yes\n").0, Setting::Yes);
        assert_eq!(parse_conf("private-users=no").0, Setting::No);
        let (s, p) = parse_conf("private-users=maybe\nfoo=1\n");
        assert_eq!(s, Setting::Auto);
        assert_eq!(p.len(), 2);
        for (setting, version, keep) in [
            (Setting::Auto, Some(252), false),
            (Setting::Auto, Some(260), false),
            (Setting::Auto, Some(261), true),
            (Setting::Auto, Some(262), true),
            (Setting::Auto, None, false),
            (Setting::Yes, Some(252), true),
            (Setting::Yes, None, true),
            (Setting::No, Some(262), false),
        ] {
            assert_eq!(
                decide(setting, version, conf).keep,
                keep,
                "{setting:?} {version:?}"
            );
        }
        assert!(decide(Setting::Auto, Some(252), conf)
            .why
            .contains("without -U"));
    }
}
