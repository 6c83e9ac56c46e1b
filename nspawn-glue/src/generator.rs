//! The generator proper: one drop-in per template for every valid props file.
//!
//! It reads a directory and writes files, nothing else: generators run before most of
//! the system is up and must neither spawn processes nor talk to services.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use netprov::model::ContainerId;

use crate::dropin::{render, Settings, Template};

/// A props file the generator left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// What one run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub generated: Vec<ContainerId>,
    pub skipped: Vec<Skipped>,
}

/// The container a props file belongs to: its file name without `.json`, which must be
/// a valid id and equal the file's own `"id"`. The units use the file name (`%i`) for the
/// netns path and for `netprov destroy`, while `netprov apply` uses `"id"`; a mismatch
/// would make the container look for a netns that apply never creates.
///
/// Only the id is checked here; `netprov apply` validates the rest when the unit starts
/// and stops the start with the precise error.
pub fn props_id(path: &Path) -> Result<ContainerId, String> {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".json"))
        .ok_or("not a UTF-8 *.json file name")?;
    let id = ContainerId::new(stem)
        .map_err(|e| format!("file name {stem:?} is not a container id: it {e}"))?;
    let text = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("not valid JSON: {e}"))?;
    match json.get("id") {
        Some(serde_json::Value::String(s)) if s == stem => Ok(id),
        Some(serde_json::Value::String(s)) => Err(format!(
            "its \"id\" is {s:?} but the file name says {stem:?}; they must be equal"
        )),
        Some(_) => Err("\"id\" is not a string".into()),
        None => Err("has no \"id\"".into()),
    }
}

/// Props files in `dir`: `*.json`, not hidden (editors' and package managers' temporary
/// files), sorted so that runs are reproducible. A missing directory has none.
fn props_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        // Follows symlinks: /etc/netprov/web.json may point into a Nix store.
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Writes the drop-ins for every valid props file in `settings.props_dir` under `out`
/// (the generator's "normal" directory, so that an administrator's drop-ins in
/// /etc/systemd/system take precedence). Bad files are reported in the outcome, never
/// an error; an error means the props directory could not be listed or `out` not written.
pub fn generate(settings: &Settings, out: &Path) -> io::Result<Outcome> {
    let mut outcome = Outcome::default();
    for path in props_files(&settings.props_dir)? {
        let id = match props_id(&path) {
            Ok(id) => id,
            Err(reason) => {
                outcome.skipped.push(Skipped { path, reason });
                continue;
            }
        };
        for template in Template::ALL {
            let file = out.join(template.dropin_path(&id));
            let dir = file.parent().expect("drop-in path has a parent");
            fs::create_dir_all(dir)
                .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", dir.display())))?;
            fs::write(&file, render(template, settings, Some(&path)))
                .map_err(|e| io::Error::new(e.kind(), format!("write {}: {e}", file.display())))?;
        }
        outcome.generated.push(id);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn settings(dir: &Path) -> Settings {
        Settings {
            props_dir: dir.to_owned(),
            ..Settings::default()
        }
    }

    #[test]
    fn id_comes_from_file_name_and_must_match_content() {
        let d = props_dir(&[
            ("web.json", r#"{"id":"web","network":{}}"#),
            ("db.json", r#"{"id":"other"}"#),
            ("x.json", r#"{"network":{}}"#),
            ("bad name.json", r#"{"id":"bad name"}"#),
            ("broken.json", "{"),
        ]);
        assert_eq!(
            props_id(&d.path().join("web.json")).unwrap().as_str(),
            "web"
        );
        let err = |n: &str| props_id(&d.path().join(n)).unwrap_err();
        assert!(err("db.json").contains("\"other\" but the file name says \"db\""));
        assert!(err("x.json").contains("no \"id\""));
        assert!(err("bad name.json").contains("not a container id"));
        assert!(err("broken.json").contains("not valid JSON"));
        assert!(err("missing.json").contains("cannot read"));
    }

    #[test]
    fn writes_both_dropins_per_valid_file_and_skips_bad_ones() {
        let d = props_dir(&[
            ("web.json", r#"{"id":"web"}"#),
            ("db-1.json", r#"{"id":"db-1"}"#),
            ("bad.json", r#"{"id":"nope"}"#),
            (".web2.json.swp", "x"),
            ("README", "x"),
        ]);
        let out = tempfile::tempdir().unwrap();
        let outcome = generate(&settings(d.path()), out.path()).unwrap();
        let ids: Vec<&str> = outcome.generated.iter().map(|i| i.as_str()).collect();
        assert_eq!(ids, ["db-1", "web"]);
        assert_eq!(outcome.skipped.len(), 1);
        assert_eq!(outcome.skipped[0].path, d.path().join("bad.json"));

        let mut written: Vec<String> = Vec::new();
        for e in fs::read_dir(out.path()).unwrap() {
            let unit_d = e.unwrap().path();
            for f in fs::read_dir(&unit_d).unwrap() {
                written.push(
                    f.unwrap()
                        .path()
                        .strip_prefix(out.path())
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
        written.sort();
        assert_eq!(
            written,
            [
                "nixunits@db-1.service.d/50-netprov.conf",
                "nixunits@web.service.d/50-netprov.conf",
                "systemd-nspawn@db-1.service.d/50-netprov.conf",
                "systemd-nspawn@web.service.d/50-netprov.conf",
            ]
        );
        let text = fs::read_to_string(
            out.path()
                .join("systemd-nspawn@web.service.d/50-netprov.conf"),
        )
        .unwrap();
        let props = d.path().display();
        assert!(text.contains(&format!(" -- netprov apply {props}/%i.json\n")));
    }

    #[test]
    fn missing_props_dir_generates_nothing() {
        let out = tempfile::tempdir().unwrap();
        let s = settings(Path::new("/nonexistent/netprov-props"));
        assert_eq!(generate(&s, out.path()).unwrap(), Outcome::default());
        assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
    }
}
