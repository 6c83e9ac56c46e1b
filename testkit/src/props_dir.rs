//! A scratch directory for props files, removed on drop.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::unique;

/// A scratch directory (`$TMPDIR/netprov-props-<unique>`) for props files, removed on
/// drop. The path is public: tests make subdirectories and odd files in it.
pub struct PropsDir(pub PathBuf);

impl PropsDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(format!("netprov-props-{}", unique("")));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    /// `<dir>/<name>` as a string (a command-line argument).
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }

    /// Writes `text` to `<dir>/<name>`; returns its path.
    pub fn write_text(&self, name: &str, text: &str) -> String {
        std::fs::write(self.0.join(name), text).unwrap();
        self.path(name)
    }

    /// Writes `v` (pretty JSON) to `<dir>/<name>`; returns its path.
    pub fn write(&self, name: &str, v: &Value) -> String {
        self.write_text(name, &serde_json::to_string_pretty(v).unwrap())
    }

    /// Writes props `v` to `<dir>/<v.id>.json`; returns its path.
    pub fn write_props(&self, v: &Value) -> String {
        self.write(&format!("{}.json", v["id"].as_str().unwrap()), v)
    }

    /// Writes `{"id": id, "network": network}` (compact JSON) to `<dir>/<id>.json`;
    /// returns its path.
    pub fn write_network(&self, id: &str, network: Value) -> String {
        let v = json!({ "id": id, "network": network });
        self.write_text(&format!("{id}.json"), &v.to_string())
    }
}

impl Default for PropsDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PropsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
