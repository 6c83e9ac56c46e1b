//! Errors (the exit codes they map to are in `cli/output.rs`).
//!
//! Two families: [`Invalid`] (bad input, found before anything is touched, exit 2) and
//! [`OpError`] (an operation on the kernel or OVSDB failed, exit 1). An `OpError` always
//! names the operation and its object ("add address 10.0.0.2/31 to lan in netns web2")
//! and keeps the errno so callers can match on it.

use std::fmt;
use std::path::PathBuf;

/// One invalid value in a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The file, when the input came from one.
    pub file: Option<PathBuf>,
    /// JSON path of the bad value, e.g. `network.interfaces.lan.ovs.vlan`.
    pub path: String,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
    /// What is wrong and what would be valid.
    pub message: String,
}

/// 1-based line and column (in characters) of byte `at` of `text`, as an
/// [`Invalid::location`] or a message gives it.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some((l, c)) = self.location {
                write!(f, ":{l}:{c}")?;
            }
            write!(f, ": ")?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// An operation that failed at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// Verb and object, e.g. "add address 10.0.0.2/31 to lan in netns web2".
    pub op: String,
    /// The cause as the kernel/OVSDB/libnftables said it, e.g. "File exists".
    pub cause: String,
    /// The errno, when the cause was one.
    pub errno: Option<i32>,
}

impl OpError {
    pub fn new(op: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            op: op.into(),
            cause: cause.into(),
            errno: None,
        }
    }
    pub fn errno(op: impl Into<String>, errno: i32) -> Self {
        let cause = std::io::Error::from_raw_os_error(errno).to_string();
        // "File exists (os error 17)" -> "File exists"
        let cause = cause
            .split(" (os error")
            .next()
            .unwrap_or(&cause)
            .to_owned();
        Self {
            op: op.into(),
            cause,
            errno: Some(errno),
        }
    }
    pub fn io(op: impl Into<String>, e: &std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(n) => Self::errno(op, n),
            None => Self::new(op, e.to_string()),
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.cause)
    }
}

impl std::error::Error for OpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_error_reads_as_verb_object_cause() {
        let e = OpError::errno("add address 10.0.0.2/31 to lan in netns web2", libc::EEXIST);
        assert_eq!(
            e.to_string(),
            "add address 10.0.0.2/31 to lan in netns web2: File exists"
        );
        assert_eq!(e.errno, Some(libc::EEXIST));
    }
}
