//! The command lines a container's unit runs — `netprov [--json] [-v…] apply FILE…`
//! (ExecStartPre) and `netprov destroy [--no-wait] TARGET…` (ExecStopPost) — read
//! without clap; every other command line goes to clap.
//!
//! Why: clap builds its whole command tree (every subcommand, argument and help text)
//! before it reads the first argument. That took 0.16 ms of a 2.0 ms no-op apply here
//! (the median of 30 runs, timed around `Cli::parse`), the largest single part of
//! netprov's own start, on the path every container start takes (docs/benchmarks.md,
//! "Round 8").
//!
//! What keeps the two parsers the same: this one only *accepts* what it fully
//! understands and returns `None` for anything else — help and version flags, `--`,
//! `=` forms, unknown or repeated flags, the OVS/OVN options and their environment
//! variables, a non-UTF-8 destroy target — so clap parses (and reports the errors of)
//! everything but the plain unit command lines. Where it answers, it answers exactly
//! what clap answers: a property test generates command lines from both parsers'
//! vocabulary and compares (see the tests below).

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use super::{Cli, Command};

/// Environment variables clap reads for the global options; with any of them set,
/// clap parses.
const ENV: &[&str] = &["NETPROV_OVSDB", "NETPROV_OVN_NB", "NETPROV_OVN_TIMEOUT"];

/// The command line `args` (program name first) as clap would parse it, or `None` to
/// let clap do it. `env_set` says whether an environment variable is set.
pub fn parse(args: &[OsString], env_set: impl Fn(&str) -> bool) -> Option<Cli> {
    if ENV.iter().any(|v| env_set(v)) {
        return None;
    }
    let mut json = false;
    // `-v` counted before and after the subcommand: clap keeps one of the two counts
    // when both are given (the subcommand's), so that case goes to clap.
    let mut verbose = [0u8; 2];
    let mut sub: Option<Sub> = None;
    let mut flag = false; // the subcommand's one flag (--userns / --no-wait)
    let mut operands: Vec<&OsStr> = Vec::new();
    for a in args.iter().skip(1) {
        let s = a.to_str();
        match s {
            Some("--json") if !json => json = true,
            Some("--verbose") => {
                let n = &mut verbose[usize::from(sub.is_some())];
                *n = n.checked_add(1)?;
            }
            Some(v) if v.len() > 1 && v.starts_with('-') && v[1..].bytes().all(|b| b == b'v') => {
                let n = &mut verbose[usize::from(sub.is_some())];
                *n = n.checked_add(u8::try_from(v.len() - 1).ok()?)?;
            }
            Some("--userns") if sub == Some(Sub::Apply) && !flag => flag = true,
            Some("--no-wait") if sub == Some(Sub::Destroy) && !flag => flag = true,
            // Anything else that looks like an option (including `-` alone, which clap
            // would take as a value, and `--`): clap decides.
            _ if a.as_encoded_bytes().starts_with(b"-") => return None,
            Some("apply") if sub.is_none() => sub = Some(Sub::Apply),
            Some("destroy") if sub.is_none() => sub = Some(Sub::Destroy),
            // The first operand must name one of the two subcommands.
            _ if sub.is_none() => return None,
            _ => operands.push(a),
        }
    }
    // Both subcommands need at least one operand (clap reports it missing), and clap
    // refuses an empty path.
    if operands.is_empty() || (sub == Some(Sub::Apply) && operands.iter().any(|o| o.is_empty())) {
        return None;
    }
    let verbose = match verbose {
        [0, n] | [n, 0] => n,
        _ => return None,
    };
    let command = match sub? {
        Sub::Apply => Command::Apply {
            props: operands.iter().map(PathBuf::from).collect(),
            fail_after: None,
            drop_step: None,
            userns: flag,
        },
        Sub::Destroy => Command::Destroy {
            targets: operands
                .iter()
                .map(|o| o.to_str().map(str::to_owned))
                .collect::<Option<_>>()?,
            no_wait: flag,
        },
    };
    Some(Cli {
        json,
        ovsdb: None,
        ovn_nb: None,
        ovn_timeout: None,
        verbose,
        command,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Apply,
    Destroy,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use proptest::prelude::*;
    use std::os::unix::ffi::OsStringExt;

    fn argv(words: &[OsString]) -> Vec<OsString> {
        std::iter::once(OsString::from("netprov"))
            .chain(words.iter().cloned())
            .collect()
    }

    fn same_as_clap(words: &[OsString]) -> Result<Option<Cli>, TestCaseError> {
        let args = argv(words);
        let fast = parse(&args, |_| false);
        if let Some(f) = &fast {
            let c = Cli::try_parse_from(&args);
            prop_assert!(
                c.is_ok(),
                "fast path accepted {words:?}, clap refused: {c:?}"
            );
            prop_assert_eq!(format!("{f:?}"), format!("{:?}", c.unwrap()), "{:?}", words);
        }
        Ok(fast)
    }

    /// Words both parsers meet: the unit command lines' own, and every kind of word the
    /// fast path must leave to clap.
    fn word() -> impl Strategy<Value = OsString> {
        prop_oneof![
            4 => Just("apply"),
            3 => Just("destroy"),
            3 => Just("--json"),
            3 => Just("-v"),
            1 => Just("-vv"),
            1 => Just("-vvv"),
            1 => Just("-vx"),
            2 => Just("--verbose"),
            2 => Just("--userns"),
            2 => Just("--no-wait"),
            4 => Just("a.json"),
            2 => Just("/etc/netprov/web.json"),
            2 => Just("web"),
            1 => Just("help"),
            1 => Just("plan"),
            1 => Just("check"),
            1 => Just("--"),
            1 => Just("-"),
            1 => Just("-h"),
            1 => Just("--help"),
            1 => Just("--version"),
            1 => Just("-V"),
            1 => Just("--json=true"),
            1 => Just("--ovsdb"),
            1 => Just("--ovsdb=unix:/run/db.sock"),
            1 => Just("unix:/run/db.sock"),
            1 => Just("--fail-after"),
            1 => Just("3"),
            1 => Just("--ovn-timeout"),
            1 => Just(""),
            1 => Just("two words"),
        ]
        .prop_map(OsString::from)
        .boxed()
        .prop_union(Just(OsString::from_vec(vec![b'x', 0xff, b'.', b'j'])).boxed())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Wherever the fast path answers, clap accepts the same command line and
        /// parses it into the same `Cli`.
        #[test]
        fn answers_only_what_clap_answers_alike(words in proptest::collection::vec(word(), 0..7)) {
            same_as_clap(&words)?;
        }

        /// Over the unit command lines' own vocabulary the fast path answers whenever
        /// clap accepts: these never go through clap.
        #[test]
        fn answers_every_unit_command_line(
            global in proptest::collection::vec(prop_oneof![Just("--json"), Just("-v"), Just("-vv"), Just("--verbose")], 0..3),
            destroy in any::<bool>(),
            flag in any::<bool>(),
            files in proptest::collection::vec(prop_oneof![Just("a.json"), Just("b.json"), Just("web")], 1..4),
            flag_at in 0usize..4,
        ) {
            let mut words: Vec<OsString> = global.iter().map(OsString::from).collect();
            words.push(if destroy { "destroy" } else { "apply" }.into());
            words.extend(files.iter().map(OsString::from));
            if flag {
                let at = (words.len() - files.len() + flag_at).min(words.len());
                words.insert(at, if destroy { "--no-wait" } else { "--userns" }.into());
            }
            let clap_ok = Cli::try_parse_from(argv(&words)).is_ok();
            let fast = same_as_clap(&words)?;
            prop_assert_eq!(fast.is_some(), clap_ok, "{:?}", words);
        }
    }

    #[test]
    fn the_environment_sends_it_to_clap() {
        let args = argv(&["apply".into(), "a.json".into()]);
        assert!(parse(&args, |_| false).is_some());
        for v in ENV {
            assert!(parse(&args, |e| e == *v).is_none(), "{v}");
        }
    }
}
