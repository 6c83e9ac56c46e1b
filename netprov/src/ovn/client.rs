//! A client for the OVN databases (`OVN_Northbound`, and `OVN_Southbound` for
//! diagnostics), over the same JSON-RPC layer as the `Open_vSwitch` client.
//!
//! Endpoints are written as `ovn-nbctl --db` takes them: `unix:PATH`, `tcp:HOST:PORT`
//! (`tcp:[IPv6]:PORT`), several separated by commas (a clustered database: the first
//! that answers is used). `ssl:` is refused with a message: netprov has no TLS stack.

use std::fmt;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::error::OpError;
use crate::ovsdb::client::{TransactError, Txn};
use crate::ovsdb::jsonrpc::{Connection, RpcError};
use crate::ovsdb::ops::{check_results, TxnError};

pub const NB_DB: &str = "OVN_Northbound";
pub const SB_DB: &str = "OVN_Southbound";
/// Where Debian's `ovn-central` puts the Northbound socket (ovn-nbctl's default).
pub const DEFAULT_NB: &str = "unix:/run/ovn/ovnnb_db.sock";

/// One server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Unix(PathBuf),
    /// `HOST:PORT` as `ToSocketAddrs` takes it (`[v6]:port` too).
    Tcp(String),
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
            Remote::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// An OVN database endpoint: one or more remotes tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvnEndpoint(Vec<Remote>);

impl OvnEndpoint {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let r = if let Some(p) = part.strip_prefix("unix:") {
                if !p.starts_with('/') {
                    return Err(format!(
                        "{part:?}: the socket path after \"unix:\" must be absolute"
                    ));
                }
                Remote::Unix(PathBuf::from(p))
            } else if let Some(a) = part.strip_prefix("tcp:") {
                let port_ok = a
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !port_ok {
                    return Err(format!("{part:?}: write tcp:HOST:PORT (tcp:[IPv6]:PORT)"));
                }
                Remote::Tcp(a.to_owned())
            } else if part.starts_with("ssl:") {
                return Err(format!(
                    "{part:?}: ssl: is not supported (netprov has no TLS client); use unix: or tcp: (e.g. to a local TLS tunnel)"
                ));
            } else {
                return Err(format!(
                    "{part:?}: write unix:PATH or tcp:HOST:PORT, as ovn-nbctl --db takes them"
                ));
            };
            out.push(r);
        }
        if out.is_empty() {
            return Err("empty OVN database endpoint".into());
        }
        Ok(Self(out))
    }

    /// `--ovn-nb` / `NETPROV_OVN_NB` if given, else [`DEFAULT_NB`].
    pub fn resolve_nb(override_: Option<&str>) -> Result<Self, String> {
        Self::parse(override_.filter(|s| !s.is_empty()).unwrap_or(DEFAULT_NB))
    }

    /// Whether it is only local sockets that do not exist (no OVN central here).
    pub fn absent(&self) -> bool {
        self.0
            .iter()
            .all(|r| matches!(r, Remote::Unix(p) if !p.exists()))
    }
}

impl fmt::Display for OvnEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// A connection to one OVN database.
#[derive(Debug)]
pub struct OvnClient {
    conn: Connection,
    db: &'static str,
    remote: Remote,
    mutating: u64,
}

impl OvnClient {
    pub fn connect(endpoint: &OvnEndpoint, db: &'static str) -> Result<Self, OpError> {
        let mut errs = Vec::new();
        for r in &endpoint.0 {
            let c = match r {
                Remote::Unix(p) => Connection::connect(p, crate::ovsdb::client::RPC_TIMEOUT),
                Remote::Tcp(a) => Connection::connect_tcp(a, crate::ovsdb::client::RPC_TIMEOUT),
            };
            match c {
                Ok(conn) => {
                    return Ok(Self {
                        conn,
                        db,
                        remote: r.clone(),
                        mutating: 0,
                    })
                }
                Err(e) => errs.push(format!("{r}: {}", RpcError::Io(e))),
            }
        }
        Err(OpError::new(
            format!("{db} database at {endpoint}"),
            format!("{} — is ovsdb-server running there?", errs.join("; ")),
        ))
    }

    pub fn mutating_transactions(&self) -> u64 {
        self.mutating
    }

    /// Runs a transaction on this client's database (see `ovsdb::Client::transact`).
    pub fn transact(&mut self, what: &str, txn: &Txn) -> Result<Vec<Value>, TransactError> {
        if txn.is_empty() {
            return Ok(Vec::new());
        }
        let mut params = vec![json!(self.db)];
        params.extend(txn.ops().iter().map(|o| o.to_json()));
        if txn.is_mutating() {
            self.mutating += 1;
        }
        let result = self
            .conn
            .call("transact", Value::Array(params))
            .map_err(|e| TransactError {
                error: OpError::new(
                    what,
                    format!("{} database at {}: {e}", self.db, self.remote),
                ),
                conflict: false,
            })?;
        check_results(txn.ops().len(), &result).map_err(|e: TxnError| {
            let cause = if e.is_conflict() {
                "another client changed the same rows meanwhile".to_owned()
            } else {
                e.to_string()
            };
            TransactError {
                conflict: e.is_conflict(),
                error: OpError::new(what, cause),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_as_ovn_nbctl_takes_them() {
        let e = OvnEndpoint::parse("tcp:10.0.0.1:6641,unix:/run/ovn/nb.sock").unwrap();
        assert_eq!(e.to_string(), "tcp:10.0.0.1:6641,unix:/run/ovn/nb.sock");
        assert!(OvnEndpoint::parse("tcp:[fd00::1]:6641").is_ok());
        for bad in [
            "tcp:10.0.0.1",
            "unix:rel",
            "ssl:1.2.3.4:6641",
            "punix:/x",
            "",
        ] {
            assert!(OvnEndpoint::parse(bad).is_err(), "{bad}");
        }
        assert!(OvnEndpoint::parse("ssl:1.2.3.4:6641")
            .unwrap_err()
            .contains("not supported"));
        assert_eq!(
            OvnEndpoint::resolve_nb(None).unwrap().to_string(),
            DEFAULT_NB
        );
        assert!(OvnEndpoint::parse("unix:/nonexistent/nb.sock")
            .unwrap()
            .absent());
    }
}
