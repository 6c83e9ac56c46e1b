//! The properties file (`props.json`): parse, validate, check across files, emit, schema.
//!
//! JSON text ─[`parse`]─▶ [`raw::Props`] ─[`validate`]─▶ [`Desired`]; [`to_json`] goes
//! back. Nothing here does I/O except [`load`] reading the file.

pub(crate) mod addr;
mod adopt;
mod cross;
mod dupkeys;
mod emit;
mod errors;
mod iface;
pub(crate) mod locate;
pub mod names;
mod ovn;
mod parse;
pub mod raw;
mod sysctl;
mod validate;

use std::path::{Path, PathBuf};

use crate::error::{Invalid, OpError};
use crate::model::Desired;

pub use adopt::check_adopted_netns;
pub use cross::check_conflicts;
pub use names::host_name;
pub use sysctl::proc_path;
pub use validate::NFT_MAX;

/// Reads, parses and validates one properties file.
pub fn load(path: &Path) -> Result<Desired, Vec<Invalid>> {
    let text = read(path).map_err(|e| vec![e])?;
    parse_str(&text, Some(path))
}

/// Reads a properties file: only a regular file, at most [`parse::FILE_MAX`] bytes.
/// Anything else — a FIFO (opened non-blocking, so a FIFO without writer cannot hang
/// us), a device such as `/dev/zero`, a directory, a socket — is refused at once, and a
/// regular file is never read past the limit (it may grow while we read).
pub fn read(path: &Path) -> Result<String, Invalid> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |message: String| Invalid {
        file: Some(path.to_owned()),
        path: String::new(),
        location: None,
        message,
    };
    let op = || format!("read {}", path.display());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| fail(OpError::io(op(), &e).to_string()))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(OpError::io(op(), &e).to_string()))?;
    if !meta.is_file() {
        return Err(fail(format!(
            "{} is not a regular file ({}); a properties file must be one",
            path.display(),
            file_type(&meta.file_type())
        )));
    }
    let too_big = || {
        fail(format!(
            "file is larger than {} bytes (2 MiB), the most accepted",
            parse::FILE_MAX
        ))
    };
    if meta.len() > parse::FILE_MAX as u64 {
        return Err(too_big());
    }
    // Sized from the metadata (+1 to see EOF): one read(2) instead of a doubling
    // series starting at 32 bytes. The limit still holds if the file grows meanwhile.
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    (&file)
        .take(parse::FILE_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(OpError::io(op(), &e).to_string()))?;
    if bytes.len() > parse::FILE_MAX {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "{}: not UTF-8 text (invalid byte at offset {})",
            op(),
            e.utf8_error().valid_up_to()
        ))
    })
}

fn file_type(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Parses and validates properties text; every problem of the file is returned.
pub fn parse_str(text: &str, file: Option<&Path>) -> Result<Desired, Vec<Invalid>> {
    sysctl::with_host_probe(|probe| parse_str_probed(text, file, probe))
}

/// [`parse_str`], checking sysctl keys with `probe`.
fn parse_str_probed(
    text: &str,
    file: Option<&Path>,
    probe: &sysctl::Probe<'_>,
) -> Result<Desired, Vec<Invalid>> {
    let with_file = |mut errs: Vec<Invalid>| {
        for e in &mut errs {
            e.file = file.map(Path::to_path_buf);
            if e.location.is_none() && !e.path.is_empty() {
                e.location = locate::locate(text, &e.path);
            }
        }
        errs
    };
    if text.len() <= parse::FILE_MAX {
        let dups = dupkeys::check(text);
        if !dups.is_empty() {
            return Err(with_file(dups));
        }
    }
    let raw = parse::parse(text).map_err(|e| with_file(vec![e]))?;
    validate::validate_probed(&raw, probe).map_err(with_file)
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
    load_all_peeking(paths, |_| {})
}

/// [`load_all`], handing each file's text to `peek` as soon as it is read, before it is
/// parsed (a one-container apply starts making the netns from it:
/// `kernel::netns_ahead`).
pub fn load_all_peeking(
    paths: &[PathBuf],
    mut peek: impl FnMut(&str),
) -> Result<Vec<Desired>, Vec<Invalid>> {
    let mut ok = Vec::new();
    let mut texts = Vec::new();
    let mut errs = Vec::new();
    // One reading of the host's sysctls for all the files (see sysctl::with_host_probe).
    sysctl::with_host_probe(|probe| {
        for p in paths {
            // Each file is read once: what was validated is what conflicts are located in.
            let text = read(p);
            if let Ok(t) = &text {
                peek(t);
            }
            match text.as_ref().map(|t| parse_str_probed(t, Some(p), probe)) {
                Ok(Ok(d)) => ok.push(d),
                Ok(Err(e)) => errs.extend(e),
                Err(e) => errs.push(e.clone()),
            }
            texts.push(text.unwrap_or_default());
        }
    });
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

#[cfg(test)]
mod tests;
