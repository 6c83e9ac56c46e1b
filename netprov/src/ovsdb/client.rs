//! An OVSDB client for the `Open_vSwitch` database: connect, `transact`, and wait for
//! ovs-vswitchd to apply what was committed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::jsonrpc::{Connection, RpcError};
use super::ops::{check_results, Cond, Op, TxnError};
use super::remote::Remote;
use crate::error::OpError;

pub const DB: &str = "Open_vSwitch";
/// Where Debian/Nix OVS packages put the database socket; the second is the same place
/// on systems where /var/run is not yet a symlink to /run.
pub const DEFAULT_SOCKETS: [&str; 2] = ["/run/openvswitch/db.sock", "/var/run/openvswitch/db.sock"];
/// How long one request may wait for an answer.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for ovs-vswitchd to apply a committed change.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the OVSDB server listens: `unix:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    path: PathBuf,
}

impl Endpoint {
    /// Parses `unix:PATH` (what `--ovsdb` and `NETPROV_OVSDB` take; see [`Remote`]).
    pub fn parse(s: &str) -> Result<Self, String> {
        Remote::parse_unix(s).map(|path| Self { path })
    }

    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The system's socket: the first of [`DEFAULT_SOCKETS`] that exists, else the first.
    pub fn system() -> Self {
        let path = DEFAULT_SOCKETS
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .unwrap_or(Path::new(DEFAULT_SOCKETS[0]));
        Self::unix(path)
    }

    /// The override if given (`--ovsdb` / `NETPROV_OVSDB`), else [`Endpoint::system`].
    pub fn resolve(override_: Option<&str>) -> Result<Self, String> {
        match override_ {
            Some(s) if !s.is_empty() => Self::parse(s),
            _ => Ok(Self::system()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unix:{}", self.path.display())
    }
}

/// A failed `transact`: the error to report, and whether it was a conflict (a `wait`
/// that no longer held because another writer got there first) worth a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactError {
    pub error: OpError,
    pub conflict: bool,
}

impl TransactError {
    /// A failed operation or commit, reported as `op`. A conflict says `conflict_cause`:
    /// OVSDB's own words ("timed out: \"where\" clause test failed") say nothing useful
    /// to a user — a `wait` found the rows changed.
    pub(crate) fn from_txn(op: String, e: &TxnError, conflict_cause: &str) -> Self {
        let cause = if e.is_conflict() {
            conflict_cause.to_owned()
        } else {
            e.to_string()
        };
        TransactError {
            conflict: e.is_conflict(),
            error: OpError::new(op, cause),
        }
    }
}

/// How sending a transaction failed, before the client names it.
pub(crate) enum Failure {
    /// No answer (connection, framing, JSON-RPC error).
    Rpc(RpcError),
    /// An operation or the commit failed.
    Txn(TxnError),
}

impl From<TransactError> for OpError {
    fn from(e: TransactError) -> Self {
        e.error
    }
}

/// A transaction being built: operations, each optionally labelled with what it does
/// for the user ("add OVS port lan to bridge br0") so a failure can name it.
#[derive(Debug, Clone, Default)]
pub struct Txn {
    ops: Vec<Op>,
    labels: Vec<Option<String>>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, op: Op, label: Option<&str>) -> usize {
        self.ops.push(op);
        self.labels.push(label.map(str::to_owned));
        self.ops.len() - 1
    }
    /// Adds an unlabelled `select` (reads fail as the transaction's `what`).
    pub fn select(
        &mut self,
        table: &'static str,
        conds: Vec<Cond>,
        columns: Vec<&'static str>,
    ) -> usize {
        self.push(
            Op::Select {
                table,
                conds,
                columns,
            },
            None,
        )
    }
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn is_mutating(&self) -> bool {
        self.ops.iter().any(Op::is_mutating)
    }
    /// Sends the transaction to database `db` over `conn` and checks every result;
    /// counts it in `mutating` when it could change the database. Empty: no request.
    pub(crate) fn send(
        &self,
        conn: &mut Connection,
        db: &str,
        mutating: &mut u64,
    ) -> Result<Vec<Value>, Failure> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let mut params = vec![json!(db)];
        params.extend(self.ops.iter().map(Op::to_json));
        if self.is_mutating() {
            *mutating += 1;
        }
        let result = conn
            .call("transact", Value::Array(params))
            .map_err(Failure::Rpc)?;
        check_results(self.ops.len(), &result).map_err(Failure::Txn)
    }
    /// Adds `Open_vSwitch.next_cfg += 1` and a read of the new value (how ovs-vsctl
    /// asks ovs-vswitchd to report when it has applied this transaction); returns the
    /// index of the result holding it.
    pub fn bump_next_cfg(&mut self) -> usize {
        self.push(
            Op::Mutate {
                table: DB,
                conds: vec![],
                mutations: vec![json!(["next_cfg", "+=", 1])],
            },
            None,
        );
        self.select(DB, vec![], vec!["next_cfg"])
    }
}

/// A connection to the `Open_vSwitch` database.
#[derive(Debug)]
pub struct Client {
    conn: Connection,
    endpoint: Endpoint,
    mutating: u64,
    apply_timeout: Duration,
}

impl Client {
    pub fn connect(endpoint: &Endpoint) -> Result<Self, OpError> {
        let conn = Connection::connect(endpoint.path(), RPC_TIMEOUT).map_err(|e| {
            let errno = e.raw_os_error();
            let hint = match e.raw_os_error() {
                Some(libc::ECONNREFUSED) => "connection refused — is ovsdb-server running?".into(),
                Some(libc::ENOENT) => "no such socket — is ovsdb-server running?".into(),
                Some(libc::EACCES) => "permission denied — netprov needs root for OVS".into(),
                _ => RpcError::Io(e).to_string(),
            };
            OpError {
                op: format!("OVS database at {endpoint}"),
                cause: hint,
                errno,
            }
        })?;
        Ok(Self {
            conn,
            endpoint: endpoint.clone(),
            mutating: 0,
            apply_timeout: APPLY_TIMEOUT,
        })
    }

    /// Like [`Client::connect`], but `None` when the socket file does not exist: a host
    /// without Open vSwitch, where `destroy` has no OVS ports to look for. A socket that
    /// exists but refuses connections is still an error (OVS is installed but down).
    pub fn connect_if_present(endpoint: &Endpoint) -> Result<Option<Self>, OpError> {
        if !endpoint.path().exists() {
            return Ok(None);
        }
        Self::connect(endpoint).map(Some)
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// How long [`Client::wait_applied`] callers in this crate wait for ovs-vswitchd
    /// (default [`APPLY_TIMEOUT`]).
    pub fn apply_timeout(&self) -> Duration {
        self.apply_timeout
    }
    pub fn set_apply_timeout(&mut self, timeout: Duration) {
        self.apply_timeout = timeout;
    }

    /// Number of transactions sent so far that could change the database.
    pub fn mutating_transactions(&self) -> u64 {
        self.mutating
    }

    fn rpc_error(&self, what: &str, e: RpcError) -> OpError {
        OpError {
            op: what.to_owned(),
            cause: format!("OVS database at {}: {e}", self.endpoint),
            errno: e.errno(),
        }
    }

    /// Runs a transaction; `what` names it in errors unless the failing operation has
    /// its own label. Returns one result per operation.
    pub fn transact(&mut self, what: &str, txn: &Txn) -> Result<Vec<Value>, TransactError> {
        let sent = txn.send(&mut self.conn, DB, &mut self.mutating);
        sent.map_err(|f| match f {
            Failure::Rpc(e) => TransactError {
                error: self.rpc_error(what, e),
                conflict: false,
            },
            Failure::Txn(e) => {
                let op = e
                    .op_index
                    .and_then(|i| txn.labels[i].clone())
                    .unwrap_or_else(|| what.to_owned());
                TransactError::from_txn(
                    op,
                    &e,
                    "another OVSDB client changed the same rows meanwhile",
                )
            }
        })
    }

    /// Waits until ovs-vswitchd has applied configuration `next_cfg` (its `cur_cfg`
    /// reached it), watching `Open_vSwitch.cur_cfg` with a monitor instead of polling.
    pub fn wait_applied(&mut self, next_cfg: i64, timeout: Duration) -> Result<(), OpError> {
        let what = "wait for ovs-vswitchd to apply the OVS configuration";
        let deadline = Instant::now() + timeout;
        let monitor_id = json!(format!("netprov-cur-cfg-{next_cfg}"));
        let initial = self
            .conn
            .call(
                "monitor",
                json!([DB, monitor_id, {DB: {"columns": ["cur_cfg"]}}]),
            )
            .map_err(|e| self.rpc_error(what, e))?;
        let mut cur = max_cur_cfg(&initial);
        while cur < next_cfg {
            match self.conn.next_notification(deadline) {
                Ok(n) if n.method == "update" && n.params[0] == monitor_id => {
                    cur = cur.max(max_cur_cfg(&n.params[1]));
                }
                Ok(_) => {}
                Err(RpcError::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(self.rpc_error(what, e)),
            }
        }
        // Cancelling also drops updates still in flight for this monitor.
        let _ = self.conn.call("monitor_cancel", json!([monitor_id]));
        self.conn.drop_notifications();
        if cur < next_cfg {
            return Err(OpError::new(
                what,
                format!(
                    "configuration {next_cfg} not applied after {}s (cur_cfg is {cur}) — is ovs-vswitchd running?",
                    timeout.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

/// The `cur_cfg` in a `<table-updates>` object (one Open_vSwitch row).
fn max_cur_cfg(updates: &Value) -> i64 {
    updates[DB]
        .as_object()
        .into_iter()
        .flat_map(|rows| rows.values())
        .filter_map(|u| u["new"]["cur_cfg"].as_i64())
        .max()
        .unwrap_or(i64::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parsing() {
        assert_eq!(
            Endpoint::parse("unix:/tmp/x.sock").unwrap().to_string(),
            "unix:/tmp/x.sock"
        );
        assert!(Endpoint::parse("tcp:127.0.0.1:6640").is_err());
        assert!(Endpoint::parse("unix:rel").is_err());
        assert!(Endpoint::resolve(None)
            .unwrap()
            .to_string()
            .starts_with("unix:/"));
        assert_eq!(
            Endpoint::resolve(Some("unix:/a")).unwrap().path(),
            Path::new("/a")
        );
    }

    #[test]
    fn absent_server_is_named() {
        let dir = std::env::temp_dir().join(format!("netprov-nosock-{}", std::process::id()));
        assert!(Client::connect_if_present(&Endpoint::unix(&dir))
            .unwrap()
            .is_none());
        let e = Client::connect(&Endpoint::unix(&dir)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "OVS database at unix:{}: no such socket — is ovsdb-server running?",
                dir.display()
            )
        );
        // A socket file nobody listens on.
        let path = dir.with_extension("sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(l);
        assert!(Client::connect_if_present(&Endpoint::unix(&path)).is_err());
        let e = Client::connect(&Endpoint::unix(&path)).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            e.to_string(),
            format!(
                "OVS database at unix:{}: connection refused — is ovsdb-server running?",
                path.display()
            )
        );
        assert_eq!(e.errno, Some(libc::ECONNREFUSED));
    }

    #[test]
    fn cur_cfg_from_updates() {
        let u = json!({"Open_vSwitch": {"abc": {"new": {"cur_cfg": 7}}}});
        assert_eq!(max_cur_cfg(&u), 7);
        assert_eq!(max_cur_cfg(&json!({})), i64::MIN);
    }

    /// A lost race reads as the client's own words and is marked for a retry; any
    /// other failure keeps OVSDB's.
    #[test]
    fn transaction_errors_are_named() {
        let lost = TxnError {
            op_index: Some(0),
            error: "timed out".into(),
            details: Some("\"where\" clause test failed".into()),
        };
        let e = TransactError::from_txn("add OVS port lan".into(), &lost, "someone else won");
        assert!(e.conflict);
        assert_eq!(e.error.to_string(), "add OVS port lan: someone else won");
        let bad = TxnError {
            op_index: None,
            error: "constraint violation".into(),
            details: Some("tag 5000".into()),
        };
        let e = TransactError::from_txn("set VLAN".into(), &bad, "someone else won");
        assert!(!e.conflict);
        assert_eq!(
            e.error.to_string(),
            "set VLAN: constraint violation: tag 5000"
        );
    }
}
