//! Serde helpers shared by the plan and the kernel types it carries: values written
//! as their `Display` text (addresses, networks, MACs) in `--json` output.

use std::fmt;

use serde::Serializer;

/// `serialize_with`: the value's `Display` text.
pub fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// `serialize_with`: an optional value's `Display` text, or `null`.
pub fn opt_display<T: fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(m) => s.collect_str(m),
        None => s.serialize_none(),
    }
}
