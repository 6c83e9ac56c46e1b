//! What the command line prints: results on stdout, problems on stderr (or one JSON
//! document with `--json`), the exit code of invalid input, and logging.
//!
//! Output never panics (`print!` would, on EPIPE or ENOSPC): a closed or full
//! stdout/stderr ends the output quietly, the work goes on, and the exit code is the
//! work's.

use std::io::Write;

use serde_json::json;

use crate::error::Invalid;

/// Process exit codes (see docs/cli.md).
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const INVALID: i32 = 2;
    pub const DRIFT: i32 = 3;
}

/// Prints every problem (one per line on stderr, or a JSON document on stdout).
pub(crate) fn report(errs: &[Invalid], json: bool) -> i32 {
    if json {
        let list: Vec<_> = errs
            .iter()
            .map(|e| {
                json!({
                    "file": e.file.as_ref().map(|f| f.display().to_string()),
                    "path": e.path,
                    "line": e.location.map(|l| l.0),
                    "column": e.location.map(|l| l.1),
                    "message": e.message,
                })
            })
            .collect();
        out(&json!({ "valid": false, "errors": list }).to_string());
    } else {
        let mut err = std::io::stderr().lock();
        for e in errs {
            let _ = writeln!(err, "{e}");
        }
    }
    exit::INVALID
}

/// The exit code of a command over several containers: 1 when any failed, else 2
/// when any input was invalid, else 0.
pub(crate) fn exit_code(failed: bool, invalid: bool) -> i32 {
    if failed {
        exit::FAILURE
    } else if invalid {
        exit::INVALID
    } else {
        exit::OK
    }
}

/// Prints `netprov <what>: <e>` on stderr; the exit code of an operational failure.
pub(crate) fn fail(what: &str, e: impl std::fmt::Display) -> i32 {
    err(&format!("netprov {what}: {e}"));
    exit::FAILURE
}

/// Prints a line on stdout; a closed pipe (`netprov schema | head`) is not an error.
///
/// Output never panics (`print!` would, on EPIPE or ENOSPC): a closed or full
/// stdout/stderr ends the output quietly, the work goes on, and the exit code is the
/// work's. Rust ignores SIGPIPE, so a closed pipe is an EPIPE error here, not a signal.
pub(crate) fn out(s: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{s}");
}

/// Prints `s` as is (no newline added) on stdout; errors are ignored like [`out`]'s.
pub(crate) fn out_raw(s: &str) {
    let _ = write!(std::io::stdout().lock(), "{s}");
}

/// Prints a line on stderr; errors are ignored like [`out`]'s.
pub(crate) fn err(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}

/// Logs to stderr through `tracing`: RUST_LOG if set, else warn/info/debug/trace by `-v`.
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let base = || {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            // A log line that cannot be written (stderr closed or full) is dropped; by
            // default tracing-subscriber reports it with eprintln!, which panics.
            .log_internal_errors(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    };
    if verbose == 0 && std::env::var_os("RUST_LOG").is_none() {
        // Warnings only, the default: a plain level filter (an EnvFilter asked about
        // every span and event site cost ~70 µs of a 1.8 ms no-op apply, round 7),
        // and the formatter built only at the first warning (see warn_log).
        let warn_only = super::warn_log::WarnOnly::new(
            move || -> Box<dyn tracing::Subscriber + Send + Sync> {
                Box::new(base().with_max_level(tracing::Level::WARN).finish())
            },
        );
        if tracing::subscriber::set_global_default(warn_only).is_ok() {
            // What `try_init` does too: the `log` records of dependencies (netlink-proto)
            // go through the same subscriber.
            let _ = tracing_log::LogTracer::builder()
                .with_max_level(tracing_log::log::LevelFilter::Warn)
                .init();
        }
        return;
    }
    let level = ["warn", "info", "debug", "trace"][usize::from(verbose.min(3))];
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = base()
        .with_env_filter(filter)
        // A span's closing line carries its duration (time.busy/time.idle): with -v,
        // parse, observe, plan and every apply phase are timed per container.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .try_init();
}
