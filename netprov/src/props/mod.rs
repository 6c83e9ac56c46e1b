//! The properties file (`props.json`): parse, validate, check across files, emit, schema.
//!
//! JSON text ─[`parse`]─▶ [`raw::Props`] ─[`validate`]─▶ [`Desired`]; [`to_json`] goes
//! back. Nothing here does I/O except [`load`] reading the file.

mod addr;
mod adopt;
mod cross;
mod emit;
mod iface;
pub(crate) mod locate;
pub mod names;
mod parse;
pub mod raw;
mod sysctl;
mod validate;

use std::path::{Path, PathBuf};

use crate::error::{Invalid, OpError};
use crate::model::{Desired, IfName, Interface, InterfaceKind};

pub use adopt::check_adopted_netns;
pub use cross::check_conflicts;
pub use iface::OWNER_KEY;
pub use sysctl::proc_path;
pub use validate::{NETNS_DIR, NFT_MAX};

/// Reads, parses and validates one properties file.
pub fn load(path: &Path) -> Result<Desired, Vec<Invalid>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Invalid {
            file: Some(path.to_owned()),
            path: String::new(),
            location: None,
            message: OpError::io(format!("read {}", path.display()), &e).to_string(),
        }]
    })?;
    parse_str(&text, Some(path))
}

/// Parses and validates properties text; every problem of the file is returned.
pub fn parse_str(text: &str, file: Option<&Path>) -> Result<Desired, Vec<Invalid>> {
    let with_file = |mut errs: Vec<Invalid>| {
        for e in &mut errs {
            e.file = file.map(Path::to_path_buf);
            if e.location.is_none() && !e.path.is_empty() {
                e.location = locate::locate(text, &e.path);
            }
        }
        errs
    };
    let raw = parse::parse(text).map_err(|e| with_file(vec![e]))?;
    validate::validate(&raw).map_err(with_file)
}

/// JSON Schema of the properties file, generated from [`raw::Props`].
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(raw::Props)).expect("schema serializes")
}

/// The properties file for a validated model; `parse_str` of it gives `d` back.
pub fn to_json(d: &Desired) -> serde_json::Value {
    serde_json::to_value(emit::emit(d)).expect("props serialize")
}

/// Loads several files and checks them against each other.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Desired>, Vec<Invalid>> {
    let mut ok = Vec::new();
    let mut texts = Vec::new();
    let mut errs = Vec::new();
    for p in paths {
        match load(p) {
            Ok(d) => ok.push(d),
            Err(e) => errs.extend(e),
        }
        texts.push(std::fs::read_to_string(p).unwrap_or_default());
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    errs = check_conflicts(&ok, paths);
    for e in &mut errs {
        let text = paths
            .iter()
            .zip(&texts)
            .find(|(p, _)| e.file.as_ref() == Some(*p));
        e.location = text.and_then(|(_, t)| locate::locate(t, &e.path));
    }
    if errs.is_empty() {
        Ok(ok)
    } else {
        Err(errs)
    }
}

/// An [`Invalid`] without file (filled in by the caller).
pub(crate) fn problem(path: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        file: None,
        path: path.into(),
        location: None,
        message: message.into(),
    }
}

/// `base.key`, or `base["key"]` when the key is not a plain word (so the path stays
/// unambiguous for keys such as `net.ipv4.ip_forward` or `eth0.100`).
pub(crate) fn key_path(base: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{base}.{key}")
    } else {
        format!("{base}[{}]", serde_json::Value::from(key))
    }
}

/// The name this interface occupies in the host netns (or on the OVS switch): the veth
/// host end, or the OVS port.
pub fn host_name(i: &Interface) -> Option<&IfName> {
    match &i.kind {
        InterfaceKind::Veth(h) => Some(&h.name),
        InterfaceKind::Ovs(p) => Some(p.port_name(&i.name)),
        InterfaceKind::Existing => None,
    }
}

#[cfg(test)]
mod tests;
