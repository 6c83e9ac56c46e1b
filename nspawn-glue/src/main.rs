//! `netprov-systemd-generator`: attaches the netprov drop-ins to `systemd-nspawn@<id>`
//! and `nixunits@<id>` for every `/etc/netprov/<id>.json`.
//!
//! ```text
//! netprov-systemd-generator NORMAL_DIR [EARLY_DIR LATE_DIR]   (run by systemd)
//! netprov-systemd-generator --print ID                          (show the drop-ins)
//! ```
//!
//! As systemd.generator(7) asks, a bad props file never fails the run: it is logged
//! (to /dev/kmsg) and skipped, and the others are still generated.

use std::path::Path;
use std::process::ExitCode;

use netprov::model::ContainerId;
use netprov_nspawn_glue::dropin::{render, Settings, Template};
use netprov_nspawn_glue::generator::generate;
use netprov_nspawn_glue::log::{log, Level};

const USAGE: &str = "usage: netprov-systemd-generator NORMAL_DIR [EARLY_DIR LATE_DIR]\n       netprov-systemd-generator --print ID";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut settings = Settings::from_env();
    let (userns, problems) = settings.detect_private_users();
    match args.as_slice() {
        [flag, id] if flag == "--print" => {
            eprintln!(
                "netprov-systemd-generator: {} -U: {}",
                if userns.keep { "keeping" } else { "dropping" },
                userns.why
            );
            print(&settings, id)
        }
        [normal] | [normal, _, _] if !normal.starts_with('-') => {
            for p in &problems {
                log(Level::Warning, p);
            }
            // Said once per run, when there is a container to say it about.
            if !userns.keep && has_props(&settings) {
                log(Level::Notice, &userns.why);
            }
            run(&settings, Path::new(normal))
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn has_props(settings: &Settings) -> bool {
    std::fs::read_dir(&settings.props_dir).is_ok_and(|mut d| {
        d.any(|e| {
            e.is_ok_and(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.ends_with(".json") && !n.starts_with('.')
            })
        })
    })
}

fn print(settings: &Settings, id: &str) -> ExitCode {
    let id = match ContainerId::new(id) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("netprov-systemd-generator: container id {id:?} {e}");
            return ExitCode::from(2);
        }
    };
    for (i, template) in Template::ALL.into_iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!(
            "# /etc/systemd/system/{}",
            template.dropin_path(&id).display()
        );
        print!("{}", render(template, settings, None));
    }
    ExitCode::SUCCESS
}

fn run(settings: &Settings, normal_dir: &Path) -> ExitCode {
    // Containers run in the real root, not in the initrd.
    if std::env::var_os("SYSTEMD_IN_INITRD").is_some_and(|v| v == "1") {
        return ExitCode::SUCCESS;
    }
    match generate(settings, normal_dir) {
        Ok(outcome) => {
            for s in &outcome.skipped {
                log(
                    Level::Warning,
                    &format!(
                        "skipping {}: {}; its container gets no netprov network",
                        s.path.display(),
                        s.reason
                    ),
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            log(
                Level::Err,
                &format!("props in {}: {e}", settings.props_dir.display()),
            );
            ExitCode::FAILURE
        }
    }
}
