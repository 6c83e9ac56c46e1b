//! A client for the OVN databases (`OVN_Northbound`, and `OVN_Southbound` for
//! diagnostics), over the same JSON-RPC layer as the `Open_vSwitch` client.
//!
//! Endpoints are written as `ovn-nbctl --db` takes them: `unix:PATH`, `tcp:HOST:PORT`
//! (`tcp:[IPv6]:PORT`), several separated by commas (a clustered database: the first
//! that answers is used), parsed by [`crate::ovsdb::remote`]. `ssl:` is refused with a
//! message: netprov has no TLS stack.

use std::fmt;

use serde_json::Value;

use crate::error::OpError;
use crate::ovsdb::client::{Failure, TransactError, Txn, RPC_TIMEOUT};
use crate::ovsdb::jsonrpc::{Connection, RpcError};
use crate::ovsdb::remote::Remote;

pub const NB_DB: &str = "OVN_Northbound";
pub const SB_DB: &str = "OVN_Southbound";
/// Where Debian's `ovn-central` puts the Northbound socket (ovn-nbctl's default).
pub const DEFAULT_NB: &str = "unix:/run/ovn/ovnnb_db.sock";

/// An OVN database endpoint: one or more remotes tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvnEndpoint(Vec<Remote>);

impl OvnEndpoint {
    /// Parses `ovn-nbctl --db`'s forms (see [`Remote::parse_list`]).
    pub fn parse(s: &str) -> Result<Self, String> {
        Remote::parse_list(s).map(Self)
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
            match r.connect(RPC_TIMEOUT) {
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

    /// Runs a transaction on this client's database (see `ovsdb::Client::transact`);
    /// errors are named by `what` (not by the operations' labels).
    pub fn transact(&mut self, what: &str, txn: &Txn) -> Result<Vec<Value>, TransactError> {
        let sent = txn.send(&mut self.conn, self.db, &mut self.mutating);
        sent.map_err(|f| match f {
            Failure::Rpc(e) => TransactError {
                error: OpError::new(
                    what,
                    format!("{} database at {}: {e}", self.db, self.remote),
                ),
                conflict: false,
            },
            Failure::Txn(e) => TransactError::from_txn(
                what.to_owned(),
                &e,
                "another client changed the same rows meanwhile",
            ),
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
