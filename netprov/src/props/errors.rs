//! Collecting validation problems: [`Errors`] (every problem found, not just the first),
//! [`problem`] (one [`Invalid`] at a JSON path) and [`key_path`] (the path of a map key).

use crate::error::Invalid;

/// Problems found so far.
#[derive(Default)]
pub struct Errors(pub Vec<Invalid>);

impl Errors {
    /// Records a problem at `path`.
    pub fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(problem(path, message));
    }
    /// `r`'s value, or `None` with its message recorded at `path`.
    pub fn check<T>(&mut self, path: impl Into<String>, r: Result<T, String>) -> Option<T> {
        r.map_err(|m| self.err(path, m)).ok()
    }
}

/// An [`Invalid`] without file (filled in by the caller).
pub fn problem(path: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        file: None,
        path: path.into(),
        location: None,
        message: message.into(),
    }
}

/// `base.key`, or `base["key"]` when the key is not a plain word (so the path stays
/// unambiguous for keys such as `net.ipv4.ip_forward` or `eth0.100`).
pub fn key_path(base: &str, key: &str) -> String {
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
