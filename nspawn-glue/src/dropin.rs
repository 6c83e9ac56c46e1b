//! The unit drop-ins, embedded from `units/` so the generator writes exactly the files
//! a user would install by hand.

use std::path::{Path, PathBuf};

use netprov::model::ContainerId;

/// Where props files live; `ExecStartPre=` reads `<dir>/%i.json`.
pub const PROPS_DIR: &str = "/etc/netprov";
/// File name of the drop-in inside `<unit>.d/`.
pub const DROPIN_NAME: &str = "50-netprov.conf";

/// The netprov command the drop-ins run. Bare `netprov` is found by systemd in its fixed
/// search path (`/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin`); packagers whose
/// binary lives elsewhere (Nix) build the generator with `NETPROV_BIN=/abs/path`.
pub const NETPROV_BIN: &str = match option_env!("NETPROV_BIN") {
    Some(bin) => bin,
    None => "netprov",
};

/// The `setpriv` (util-linux) that confines netprov in the drop-ins; like
/// [`NETPROV_BIN`], overridable at build time with `SETPRIV_BIN=/abs/path`.
pub const SETPRIV_BIN: &str = match option_env!("SETPRIV_BIN") {
    Some(bin) => bin,
    None => "setpriv",
};

/// A unit template a container may be started from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// systemd's own `systemd-nspawn@.service`.
    Nspawn,
    /// NixUnits' `nixunits@.service`.
    NixUnits,
}

impl Template {
    pub const ALL: [Template; 2] = [Template::Nspawn, Template::NixUnits];

    fn prefix(self) -> &'static str {
        match self {
            Template::Nspawn => "systemd-nspawn",
            Template::NixUnits => "nixunits",
        }
    }

    /// The drop-in as shipped in `units/`, with `netprov` and `/etc/netprov` unchanged.
    pub fn source(self) -> &'static str {
        match self {
            Template::Nspawn => include_str!("../units/systemd-nspawn@.service.d/50-netprov.conf"),
            Template::NixUnits => include_str!("../units/nixunits@.service.d/50-netprov.conf"),
        }
    }

    /// `systemd-nspawn@web.service`.
    pub fn unit_name(self, id: &ContainerId) -> String {
        format!("{}@{id}.service", self.prefix())
    }

    /// `systemd-nspawn@web.service.d/50-netprov.conf`, relative to a unit directory.
    pub fn dropin_path(self, id: &ContainerId) -> PathBuf {
        Path::new(&format!("{}.d", self.unit_name(id))).join(DROPIN_NAME)
    }
}

/// What varies between installations: the commands, the props directory, and whether
/// containers keep their user namespace (see `userns.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub netprov_bin: String,
    pub setpriv_bin: String,
    pub props_dir: PathBuf,
    /// Keep nspawn's `-U` (`--private-users=pick`) and run `netprov apply --userns`;
    /// `false` renders the shipped files (which run containers without it).
    pub private_users: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            netprov_bin: NETPROV_BIN.to_owned(),
            setpriv_bin: SETPRIV_BIN.to_owned(),
            props_dir: PathBuf::from(PROPS_DIR),
            private_users: false,
        }
    }
}

impl Settings {
    /// Defaults, with the props directory overridden by `NETPROV_PROPS_DIR` when set (for
    /// tests and alternative roots; systemd runs generators with a clean environment).
    pub fn from_env() -> Self {
        let mut s = Self::default();
        if let Some(dir) = std::env::var_os("NETPROV_PROPS_DIR").filter(|d| !d.is_empty()) {
            s.props_dir = PathBuf::from(dir);
        }
        s
    }

    /// Decides `private_users` from `<props_dir>/glue.conf` and the installed systemd
    /// (found in `NETPROV_SYSTEMD_LIB_DIRS`, colon-separated, when set — for tests —
    /// else in the distributions' directories). Returns the decision and any problem
    /// with glue.conf, for the log.
    pub fn detect_private_users(&mut self) -> (crate::userns::Decision, Vec<String>) {
        use crate::userns;
        let conf = self.props_dir.join(userns::CONF_NAME);
        let (setting, problems) = match std::fs::read_to_string(&conf) {
            Ok(text) => userns::parse_conf(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(e) => (
                userns::Setting::Auto,
                vec![format!("cannot read: {e}; using private-users=auto")],
            ),
        };
        let problems = problems
            .into_iter()
            .map(|p| format!("{}: {p}", conf.display()))
            .collect();
        let dirs = match std::env::var_os("NETPROV_SYSTEMD_LIB_DIRS") {
            Some(d) => std::env::split_paths(&d).collect(),
            None => userns::default_lib_dirs(),
        };
        let d = userns::decide(setting, userns::installed_version(&dirs), &conf);
        self.private_users = d.keep;
        (d, problems)
    }
}

/// The drop-in text for `template`, adapted to `settings`. It uses `%i`, so it is the
/// same for every container; `origin` (the props file) is recorded in a comment so that
/// `systemctl cat` shows where a generated drop-in came from.
pub fn render(template: Template, settings: &Settings, origin: Option<&Path>) -> String {
    let mut out = String::new();
    if let Some(origin) = origin {
        out.push_str(&format!(
            "# Generated by netprov-systemd-generator for {}.\n",
            origin.display()
        ));
    }
    if settings.private_users {
        out.push_str("# User namespace kept (-U): this systemd-nspawn joins the netns before creating\n# it; netprov apply --userns sets the sysctls such a container needs. See docs/nspawn.md.\n");
    }
    let props_dir = format!("{}/", settings.props_dir.display());
    let userns = settings.private_users;
    for line in template.source().lines() {
        match line.split_once('=') {
            Some((key @ ("ExecStartPre" | "ExecStopPost"), cmd)) => {
                let words: Vec<String> = cmd
                    .split(' ')
                    .map(|w| match w {
                        "netprov" => settings.netprov_bin.clone(),
                        "setpriv" => settings.setpriv_bin.clone(),
                        "apply" if userns && key == "ExecStartPre" => "apply --userns".into(),
                        _ => w.replace("/etc/netprov/", &props_dir),
                    })
                    .collect();
                out.push_str(&format!("{key}={}", words.join(" ")));
            }
            // The user namespace back where the upstream template has it (before
            // --settings=override); NixUnits' own --private-users=pick stays in effect
            // without the override.
            Some(("ExecStart", cmd)) if userns && !cmd.is_empty() => {
                let words: Vec<&str> = cmd
                    .split(' ')
                    .filter(|w| *w != "--private-users=no")
                    .flat_map(|w| match w {
                        "--settings=override" => vec!["-U", w],
                        _ => vec![w],
                    })
                    .collect();
                out.push_str(&format!("ExecStart={}", words.join(" ")));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ContainerId {
        ContainerId::new(s).unwrap()
    }

    #[test]
    fn unit_names_and_paths() {
        assert_eq!(
            Template::Nspawn.unit_name(&id("web")),
            "systemd-nspawn@web.service"
        );
        assert_eq!(
            Template::NixUnits.dropin_path(&id("db-1")),
            Path::new("nixunits@db-1.service.d/50-netprov.conf")
        );
    }

    #[test]
    fn default_render_is_the_shipped_file() {
        for t in Template::ALL {
            assert_eq!(render(t, &Settings::default(), None), t.source());
        }
    }

    #[test]
    fn nspawn_dropin_replaces_veth_by_the_netns() {
        let text = Template::Nspawn.source();
        let exec: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ExecStart"))
            .collect();
        assert_eq!(
            exec,
            [
                "ExecStartPre=setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all,+net_admin,+sys_admin -- netprov apply /etc/netprov/%i.json",
                "ExecStart=",
                "ExecStart=systemd-nspawn --quiet --keep-unit --boot --link-journal=try-guest --settings=override --machine=%i --network-namespace-path=/run/netns/%i",
            ]
        );
        assert!(!text
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("--network-veth")));
        assert!(text.contains(" -- netprov destroy %i\n"));
    }

    #[test]
    fn render_with_private_users_keeps_u_and_applies_with_userns() {
        let s = Settings {
            private_users: true,
            ..Settings::default()
        };
        let exec = |t: Template| -> Vec<String> {
            render(t, &s, None)
                .lines()
                .filter(|l| l.starts_with("ExecStart"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            exec(Template::Nspawn),
            [
                "ExecStartPre=setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all,+net_admin,+sys_admin -- netprov apply --userns /etc/netprov/%i.json",
                "ExecStart=",
                "ExecStart=systemd-nspawn --quiet --keep-unit --boot --link-journal=try-guest -U --settings=override --machine=%i --network-namespace-path=/run/netns/%i",
            ]
        );
        let nix = exec(Template::NixUnits);
        assert!(nix[0].ends_with(" -- netprov apply --userns /etc/netprov/%i.json"));
        assert!(!nix[2].contains("--private-users"), "{}", nix[2]);
        assert!(nix[2].contains("$NSPAWN_ARGS --network-namespace-path=/run/netns/%i"));
        // Destroy is unchanged.
        assert!(render(Template::Nspawn, &s, None).contains(" -- netprov destroy %i\n"));
    }

    #[test]
    fn render_substitutes_binary_and_props_dir_in_netprov_lines_only() {
        let s = Settings {
            netprov_bin: "/nix/store/x-netprov/bin/netprov".into(),
            setpriv_bin: "/nix/store/x-util-linux/bin/setpriv".into(),
            props_dir: "/srv/props".into(),
            private_users: false,
        };
        let text = render(Template::Nspawn, &s, Some(Path::new("/srv/props/web.json")));
        assert!(
            text.starts_with("# Generated by netprov-systemd-generator for /srv/props/web.json.\n")
        );
        assert!(text.contains(" -- /nix/store/x-netprov/bin/netprov apply /srv/props/%i.json\n"));
        assert!(text.contains(" -- /nix/store/x-netprov/bin/netprov destroy %i\n"));
        assert!(text.contains("\nExecStopPost=/nix/store/x-util-linux/bin/setpriv --no-new-privs "));
        // Comments mentioning netprov stay as they are.
        assert!(text.contains("/etc/netprov/<id>.json"));
        assert!(text.contains("\nExecStart=systemd-nspawn "));
    }
}
