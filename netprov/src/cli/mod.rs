//! The `netprov` command line: argument parsing, input validation and dispatch.
//!
//! Every command that acts on the kernel parses and validates *all* its inputs first;
//! invalid input exits 2 before anything is touched.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::engine::{Engine, Options};
use crate::props;

mod fast_args;
mod host;
mod input;
mod output;
mod run;
mod warn_log;

pub use input::destroy_targets;
use input::{ids_arg, load, Dry};
pub use output::exit;
pub use output::init_logging;
use output::{err, out, report};

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

fn ovsdb_socket(s: &str) -> Result<PathBuf, String> {
    // The one remote parser: `unix:` with an absolute path (see ovsdb::remote).
    crate::ovsdb::remote::Remote::parse_unix(s)
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
    set_ovn(cli.ovn_nb, cli.ovn_timeout);
    match cli.command {
        Command::Schema => {
            out(&format!("{:#}", props::schema()));
            exit::OK
        }
        Command::Validate { props } => validate(&props, json),
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
            Ok(t) => {
                let opts = Options {
                    ovsdb,
                    destroy_no_wait: no_wait,
                    ..Default::default()
                };
                with_engine_opts(opts, |e| run::destroy(e, t, json))
            }
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

/// Records `--ovn-nb` and `--ovn-timeout` for [`with_engine`].
fn set_ovn(nb: Option<crate::ovn::OvnEndpoint>, timeout: Option<u64>) {
    if let Ok(mut o) = OVN.lock() {
        *o = crate::ovn::OvnOptions {
            nb,
            install_timeout: timeout.map_or(
                crate::ovn::chassis::INSTALL_TIMEOUT,
                std::time::Duration::from_secs,
            ),
        };
    }
}

/// `validate`: every file ok, or every problem.
fn validate(props: &[PathBuf], json: bool) -> i32 {
    match load(props, json, Dry::Always) {
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
        fail_after: fail_after.map(|n| n as usize),
        ..Default::default()
    };
    with_engine_opts(opts, f)
}

/// [`with_engine`] with all the options.
fn with_engine_opts(opts: Options, f: impl FnOnce(&Engine) -> i32) -> i32 {
    match Engine::new(opts) {
        Ok(e) => f(&e.with_ovn(OVN.lock().map(|o| o.clone()).unwrap_or_default())),
        Err(e) => {
            err(&format!("netprov: {e}"));
            exit::FAILURE
        }
    }
}

/// The `netprov` binary.
pub fn main() -> i32 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = fast_args::parse(&args, |v| std::env::var_os(v).is_some())
        .unwrap_or_else(|| Cli::parse_from(args));
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
}
