//! The `netprov` command line: argument parsing, input validation and dispatch.
//!
//! Every command that acts on the kernel parses and validates *all* its inputs first;
//! invalid input exits 2 before anything is touched.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::engine::{DestroyTarget, Engine, Options};
use crate::error::{exit, Invalid};
use crate::model::{ContainerId, Desired};
use crate::nft::CheckError;
use crate::props;

mod host;
mod run;

#[derive(Debug, Parser)]
#[command(
    name = "netprov",
    version,
    about = "Declarative, netlink-native network provisioner for systemd-nspawn containers"
)]
pub struct Cli {
    /// Machine-readable JSON output (plan, check, validate errors).
    #[arg(long, global = true)]
    pub json: bool,
    /// OVSDB socket, e.g. unix:/run/openvswitch/db.sock.
    #[arg(long, global = true, env = "NETPROV_OVSDB", value_name = "unix:PATH", value_parser = ovsdb_socket)]
    pub ovsdb: Option<PathBuf>,
    /// OVN Northbound database, as ovn-nbctl --db takes it: unix:PATH or tcp:HOST:PORT
    /// (comma-separated for a cluster); default unix:/run/ovn/ovnnb_db.sock.
    #[arg(long, global = true, env = "NETPROV_OVN_NB", value_name = "unix:PATH|tcp:HOST:PORT", value_parser = crate::ovn::OvnEndpoint::parse)]
    pub ovn_nb: Option<crate::ovn::OvnEndpoint>,
    /// Seconds apply waits for ovn-controller to install an OVN port (default 30).
    #[arg(
        long,
        global = true,
        env = "NETPROV_OVN_TIMEOUT",
        value_name = "SECONDS"
    )]
    pub ovn_timeout: Option<u64>,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make the kernel match the properties files (creates /run/netns/<id> unless netns_path).
    Apply {
        #[arg(required = true, value_name = "PROPS")]
        props: Vec<PathBuf>,
        /// Test only: fail after N mutating operations (fault injection).
        #[arg(long, hide = true, value_name = "N")]
        fail_after: Option<u64>,
        /// Test only: do not send step N (0-based) of each pass (a lost change).
        #[arg(long, hide = true, value_name = "N")]
        drop_step: Option<usize>,
        /// The container will run in a user namespace (systemd-nspawn -U): also set
        /// net.ipv4.ping_group_range and net.ipv4.ip_unprivileged_port_start in its
        /// netns, unless the props set them.
        #[arg(long)]
        userns: bool,
    },
    /// Print what apply would change; change nothing.
    Plan {
        #[arg(required = true, value_name = "PROPS")]
        props: Vec<PathBuf>,
    },
    /// Exit 0 if the kernel matches, 3 if it drifted (and print how).
    Check {
        #[arg(required = true, value_name = "PROPS")]
        props: Vec<PathBuf>,
    },
    /// Remove everything netprov owns for these containers.
    Destroy {
        /// A properties file (an existing file or a name ending in .json) or a container id.
        #[arg(required = true, value_name = "PROPS|ID")]
        targets: Vec<String>,
        /// Return once the netns is released, without waiting for the kernel's netns
        /// cleanup to delete the veths' host ends (it does within milliseconds; the
        /// next apply of the same id is correct either way)
        #[arg(long)]
        no_wait: bool,
    },
    /// Parse and validate only (several files: also conflicts between them).
    Validate {
        #[arg(required = true, value_name = "PROPS")]
        props: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the properties file.
    Schema,
    /// Every container with objects on this host (from netprov's marks) or a props file:
    /// what it holds, whether it runs, whether it is in sync.
    List {
        /// Only these ids.
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        places: PlacesArgs,
    },
    /// One container in detail: links with addresses and counters, OVS ports, nftables
    /// digests, drift.
    Status {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        places: PlacesArgs,
    },
    /// Remove what belongs to containers without a props file, without a running
    /// machine and without processes in their netns.
    Gc {
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Only these ids (still only when they are orphaned).
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        places: PlacesArgs,
    },
    /// Re-apply every props file of the props directory whose container's network
    /// exists (after a firewall reload or an Open vSwitch restart), concurrently.
    Reconcile {
        /// Also apply the props of stopped containers (creating their networks).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        places: PlacesArgs,
    },
}

/// Where the host-wide commands find props files and running machines.
#[derive(Debug, Clone, clap::Args)]
pub struct PlacesArgs {
    /// The props directory (what the generator reads).
    #[arg(long, env = "NETPROV_PROPS_DIR", value_name = "DIR", default_value = crate::inventory::PROPS_DIR)]
    pub props_dir: PathBuf,
    /// systemd-machined's state directory (tests).
    #[arg(long, hide = true, env = "NETPROV_MACHINES_DIR", value_name = "DIR", default_value = crate::inventory::MACHINES_DIR)]
    pub machines_dir: PathBuf,
}

impl PlacesArgs {
    fn places(&self) -> crate::inventory::Places {
        crate::inventory::Places {
            props_dir: self.props_dir.clone(),
            machines_dir: self.machines_dir.clone(),
        }
    }
}

/// Container ids given on the command line; invalid ones are invalid input.
fn ids_arg(args: &[String]) -> Result<Vec<ContainerId>, Vec<Invalid>> {
    let mut ok = Vec::new();
    let mut errs = Vec::new();
    for a in args {
        match ContainerId::new(a) {
            Ok(id) => ok.push(id),
            Err(m) => errs.push(Invalid {
                file: None,
                path: String::new(),
                location: None,
                message: format!("container id {a:?} {m}"),
            }),
        }
    }
    if errs.is_empty() {
        Ok(ok)
    } else {
        Err(errs)
    }
}

fn ovsdb_socket(s: &str) -> Result<PathBuf, String> {
    match s.strip_prefix("unix:") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(format!(
            "{s:?}: expected unix:PATH (only unix sockets are supported)"
        )),
    }
}

/// The OVN options of the command line being run (`--ovn-nb`, `--ovn-timeout`), for
/// [`with_engine`]: kept beside it rather than passed, so every command that starts an
/// engine gets them.
static OVN: std::sync::Mutex<crate::ovn::OvnOptions> =
    std::sync::Mutex::new(crate::ovn::OvnOptions::DEFAULT);

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> i32 {
    let json = cli.json;
    let ovsdb = cli.ovsdb;
    if let Ok(mut o) = OVN.lock() {
        *o = crate::ovn::OvnOptions {
            nb: cli.ovn_nb,
            install_timeout: cli.ovn_timeout.map_or(
                crate::ovn::chassis::INSTALL_TIMEOUT,
                std::time::Duration::from_secs,
            ),
        };
    }
    match cli.command {
        Command::Schema => {
            out(&format!("{:#}", props::schema()));
            exit::OK
        }
        Command::Validate { props } => match load(&props, json, Dry::Always) {
            Ok(ds) => {
                if json {
                    let ids: Vec<_> = ds.iter().map(|d| d.id.to_string()).collect();
                    out(&json!({ "valid": true, "containers": ids }).to_string());
                } else {
                    for (p, d) in props.iter().zip(&ds) {
                        out(&format!("{}: ok ({})", p.display(), d.id));
                    }
                }
                exit::OK
            }
            Err(code) => code,
        },
        Command::Apply {
            props,
            fail_after,
            drop_step,
            userns,
        } => match load(&props, json, Dry::Never) {
            Ok(mut ds) => {
                if userns {
                    ds.iter_mut().for_each(crate::userns::add_sysctls);
                }
                with_engine(ovsdb, fail_after, |e| {
                    e.drop_step_for_tests(drop_step);
                    run::apply(e, &ds, &props, json)
                })
            }
            Err(code) => code,
        },
        Command::Plan { props } => match load(&props, json, Dry::UnlessLoaded) {
            Ok(ds) => with_engine(ovsdb, None, |e| run::plan(e, &ds, json)),
            Err(code) => code,
        },
        Command::Check { props } => match load(&props, json, Dry::UnlessLoaded) {
            Ok(ds) => with_engine(ovsdb, None, |e| run::check(e, &ds, json)),
            Err(code) => code,
        },
        Command::Destroy { targets, no_wait } => match destroy_targets(&targets) {
            Ok(t) => with_engine(ovsdb, None, |e| {
                e.set_destroy_wait(!no_wait);
                run::destroy(e, t, json)
            }),
            Err(errs) => report(&errs, json),
        },
        Command::List { ids, places } => match ids_arg(&ids) {
            Ok(ids) => with_engine(ovsdb, None, |e| host::list(e, &places.places(), &ids, json)),
            Err(errs) => report(&errs, json),
        },
        Command::Status { id, places } => match ids_arg(std::slice::from_ref(&id)) {
            Ok(ids) => with_engine(ovsdb, None, |e| {
                host::status(e, &places.places(), &ids[0], json)
            }),
            Err(errs) => report(&errs, json),
        },
        Command::Gc {
            dry_run,
            ids,
            places,
        } => match ids_arg(&ids) {
            Ok(ids) => with_engine(ovsdb, None, |e| {
                host::gc(e, &places.places(), &ids, dry_run, json)
            }),
            Err(errs) => report(&errs, json),
        },
        Command::Reconcile { all, places } => with_engine(ovsdb, None, |e| {
            host::reconcile(e, &places.places(), all, json)
        }),
    }
}

/// Starts the engine in this process's netns (the host) and runs `f` with it.
fn with_engine(
    ovsdb: Option<PathBuf>,
    fail_after: Option<u64>,
    f: impl FnOnce(&Engine) -> i32,
) -> i32 {
    let opts = Options {
        ovsdb,
        host_netns: None,
        fail_after: fail_after.map(|n| n as usize),
    };
    match Engine::new(opts) {
        Ok(e) => f(&e.with_ovn(OVN.lock().map(|o| o.clone()).unwrap_or_default())),
        Err(e) => {
            err(&format!("netprov: {e}"));
            exit::FAILURE
        }
    }
}

fn load(props: &[PathBuf], json: bool, dry: Dry) -> Result<Vec<Desired>, i32> {
    let ds = tracing::info_span!("parse", files = props.len())
        .in_scope(|| props::load_all(props))
        .map_err(|errs| report(&errs, json))?;
    host_netns_check(props, &ds, json)?;
    tracing::info_span!("nft_check").in_scope(|| check_rulesets(props, &ds, json, dry))?;
    for (p, d) in props.iter().zip(&ds) {
        tracing::info!(file = %p.display(), id = %d.id, interfaces = d.interfaces.len(), "validated");
    }
    Ok(ds)
}

/// No `netns_path` may be the host netns (this process's, which the CLI's engine treats
/// as host, or PID 1's): invalid input at `network.netns_path`, before anything is read.
fn host_netns_check(files: &[PathBuf], ds: &[Desired], json: bool) -> Result<(), i32> {
    let mut errs = props::check_adopted_netns(ds, files, Path::new("/proc/self/ns/net"));
    if errs.is_empty() {
        return Ok(());
    }
    for e in &mut errs {
        e.location = e
            .file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| props::locate::locate(&t, &e.path));
    }
    Err(report(&errs, json))
}

/// When to dry-run a container's ruleset before anything is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dry {
    /// `validate`: every ruleset.
    Always,
    /// `apply`/`plan`/`check`: not the ruleset the container already runs (the kernel
    /// accepted exactly that text when netprov loaded it). A dry run costs a scratch
    /// netns and a kernel round trip — tens of milliseconds — which would otherwise
    /// dominate a no-op re-apply.
    UnlessLoaded,
    /// `apply`: never here. The engine checks a ruleset only when it is about to load
    /// it, after observing (so a no-op reads the marker once): a reload in an existing
    /// netns is dry-run first; into a netns the apply creates, the load itself is the
    /// check (the kernel refuses an invalid ruleset and commits nothing; apply then
    /// removes what it created and exits 2). See `Engine::apply_each`.
    Never,
}

/// Checks every `network.nft` ruleset with a libnftables dry run (in a throwaway netns
/// holding placeholders of the container's interfaces that the ruleset names), so a
/// syntax error is invalid input, reported before anything is touched. A check that
/// cannot run at all (e.g. no privilege to make the scratch netns) is an operational
/// failure: exit 1.
fn check_rulesets(files: &[PathBuf], ds: &[Desired], json: bool, dry: Dry) -> Result<(), i32> {
    let mut errs = Vec::new();
    for (p, d) in files.iter().zip(ds) {
        let Some(r) = &d.nft else { continue };
        if dry == Dry::Never || (dry == Dry::UnlessLoaded && already_loaded(d, r)) {
            continue;
        }
        let names = crate::nft::ruleset::placeholder_names(d, r);
        match crate::nft::ruleset::check_syntax_with_interfaces(&r.text, &names) {
            Ok(()) => {}
            Err(CheckError::Syntax(e)) => errs.push(ruleset_invalid(p, &e)),
            Err(CheckError::Op(e)) => {
                err(&format!("netprov: {}: {e}", p.display()));
                return Err(exit::FAILURE);
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(report(&errs, json))
    }
}

/// A ruleset libnftables or the kernel refused, as invalid input at `network.nft`.
pub(crate) fn ruleset_invalid(p: &Path, e: &crate::nft::NftSyntaxError) -> Invalid {
    Invalid {
        file: Some(p.to_owned()),
        path: "network.nft".into(),
        location: props::read(p)
            .ok()
            .and_then(|t| props::locate::locate(&t, "network.nft")),
        message: match e.line {
            Some(l) => format!("nftables ruleset line {l}: {}", e.message.trim_end()),
            None => format!("nftables ruleset: {}", e.message.trim_end()),
        },
    }
}

/// The container's netns exists and runs a ruleset netprov loaded from this very text.
fn already_loaded(d: &Desired, r: &crate::model::Ruleset) -> bool {
    use crate::nft::ruleset::{digest, observe, RulesetState};
    let path = d.netns.path();
    crate::kernel::netns::is_handle(path)
        && matches!(observe(path), Ok(RulesetState::Loaded { source_digest, .. }) if source_digest == digest(r))
}

/// Resolves `destroy` arguments: an existing file or a `.json` name is a properties
/// file, anything else a container id.
pub fn destroy_targets(args: &[String]) -> Result<Vec<DestroyTarget>, Vec<Invalid>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for a in args {
        let p = Path::new(a);
        if p.is_file() || a.ends_with(".json") {
            match props::load(p) {
                Ok(d) => {
                    let host = Path::new("/proc/self/ns/net");
                    let bad =
                        props::check_adopted_netns(std::slice::from_ref(&d), &[p.into()], host);
                    if bad.is_empty() {
                        out.push(DestroyTarget::Props(d));
                    }
                    errs.extend(bad);
                }
                Err(e) => errs.extend(e),
            }
        } else {
            match ContainerId::new(a) {
                Ok(id) => out.push(DestroyTarget::Id(id)),
                Err(m) => errs.push(Invalid {
                    file: None,
                    path: String::new(),
                    location: None,
                    message: format!(
                        "{a:?} is neither a properties file nor a container id: the id {m}"
                    ),
                }),
            }
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Prints every problem (one per line on stderr, or a JSON document on stdout).
fn report(errs: &[Invalid], json: bool) -> i32 {
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
    let level = ["warn", "info", "debug", "trace"][usize::from(verbose.min(3))];
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A span's closing line carries its duration (time.busy/time.idle): with -v,
        // parse, observe, plan and every apply phase are timed per container.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr closed or full) is dropped; by
        // default tracing-subscriber reports it with eprintln!, which panics.
        .log_internal_errors(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The `netprov` binary.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    run(cli)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ovsdb_needs_unix_prefix() {
        assert_eq!(
            ovsdb_socket("unix:/tmp/db.sock").unwrap(),
            PathBuf::from("/tmp/db.sock")
        );
        assert!(ovsdb_socket("tcp:1.2.3.4:6640").is_err());
    }

    #[test]
    fn destroy_accepts_ids() {
        let t = destroy_targets(&["web2".into()]).unwrap();
        assert_eq!(
            t,
            vec![DestroyTarget::Id(ContainerId::new("web2").unwrap())]
        );
        assert!(destroy_targets(&["../etc".into()]).is_err());
        assert!(destroy_targets(&["/nonexistent/x.json".into()]).is_err());
    }
}
