//! What the command line prints: results on stdout, problems on stderr (or one JSON
//! document with `--json`), the exit code of invalid input, and logging.
//!
//! Output never panics (`print!` would, on EPIPE or ENOSPC): a closed or full
//! stdout/stderr ends the output quietly, the work goes on, and the exit code is the
//! work's.

use std::io::Write;

use serde_json::json;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    let (filter, refused) = log_filter(std::env::var("RUST_LOG").ok(), verbose);
    let _ = base()
        // A span's closing line carries its duration (time.busy/time.idle): with -v,
        // parse, observe, plan and every apply phase are timed per container.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        // The builder's own filter (INFO unless told) would stop what `filter` lets by.
        .with_max_level(LevelFilter::TRACE)
        .finish()
        .with(filter)
        .try_init();
    if let Some(why) = refused {
        tracing::warn!("{why}");
    }
}

/// The log filter for `RUST_LOG` (if set) and `-v` counted `verbose` times: RUST_LOG's
/// directives when they parse, else the level `-v` asks for (warnings by default) and
/// why RUST_LOG was ignored.
///
/// RUST_LOG takes `target=level` directives and bare levels, comma-separated (e.g.
/// `netprov=debug,netprov::nft=trace`): the syntax of tracing-subscriber's `Targets`.
/// Its `EnvFilter` would also take span and field filters, but it links a regex engine
/// (regex-automata, regex-syntax): 0.67 MB of the executable and about 16 page faults
/// of every apply (docs/benchmarks.md, round 10), for a debugging aid.
fn log_filter(rust_log: Option<String>, verbose: u8) -> (Targets, Option<String>) {
    let level = || {
        let l = [
            LevelFilter::WARN,
            LevelFilter::INFO,
            LevelFilter::DEBUG,
            LevelFilter::TRACE,
        ];
        Targets::new().with_default(l[usize::from(verbose.min(3))])
    };
    let Some(spec) = rust_log else {
        return (level(), None);
    };
    // `Targets` would take a span or field filter (`target[span{field=value}]=level`)
    // as part of a target name that matches nothing: say so instead.
    let parsed = if spec.contains(['[', ']', '{', '}']) {
        Err("span and field filters are not supported".to_string())
    } else {
        spec.parse::<Targets>().map_err(|e| e.to_string())
    };
    match parsed {
        Ok(t) => (t, None),
        Err(e) => (
            level(),
            Some(format!(
                "RUST_LOG={spec:?} ignored ({e}): it takes target=level directives, \
                 e.g. RUST_LOG=netprov=debug"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::log_filter;

    fn on(spec: Option<&str>, verbose: u8, target: &str, level: Level) -> bool {
        let (f, refused) = log_filter(spec.map(String::from), verbose);
        assert_eq!(refused, None, "{spec:?}");
        f.would_enable(target, &level)
    }

    #[test]
    fn verbose_counts_map_to_levels() {
        for (v, most) in [
            (0, Level::WARN),
            (1, Level::INFO),
            (2, Level::DEBUG),
            (9, Level::TRACE),
        ] {
            for l in [
                Level::ERROR,
                Level::WARN,
                Level::INFO,
                Level::DEBUG,
                Level::TRACE,
            ] {
                assert_eq!(on(None, v, "netprov::engine", l), l <= most, "-v x{v} {l}");
            }
        }
    }

    #[test]
    fn rust_log_takes_target_directives_and_overrides_verbose() {
        let spec = Some("netprov=debug,netlink_proto=warn");
        for v in [0, 3] {
            assert!(on(spec, v, "netprov::engine::apply", Level::DEBUG));
            assert!(!on(spec, v, "netprov::engine::apply", Level::TRACE));
            assert!(on(spec, v, "netlink_proto::connection", Level::WARN));
            assert!(!on(spec, v, "netlink_proto::connection", Level::INFO));
            // a target no directive names is off, as with EnvFilter
            assert!(!on(spec, v, "tokio::runtime", Level::ERROR));
        }
        assert!(on(Some("info"), 0, "anything", Level::INFO));
        assert!(on(Some("netprov"), 0, "netprov::x", Level::TRACE));
    }

    #[test]
    fn a_rust_log_it_cannot_read_is_named_and_falls_back_to_verbose() {
        for spec in [
            "netprov[apply]=debug",
            "netprov=loud",
            "netprov=debug,[{id=web}]",
        ] {
            let (f, refused) = log_filter(Some(spec.into()), 1);
            let why = refused.unwrap_or_else(|| panic!("{spec} accepted"));
            assert!(why.contains(&format!("RUST_LOG={spec:?} ignored")), "{why}");
            assert!(f.would_enable("netprov", &Level::INFO));
            assert!(!f.would_enable("netprov", &Level::DEBUG));
        }
    }
}
