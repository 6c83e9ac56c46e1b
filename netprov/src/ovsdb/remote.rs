//! OVSDB server addresses as the OVS tools write them, parsed once for every client:
//! `unix:PATH` (the `Open_vSwitch` client, `--ovsdb`) and also `tcp:HOST:PORT` and
//! comma-separated lists (the OVN clients, `--ovn-nb` and a chassis' `ovn-remote`).
//!
//! `unix:` takes an absolute path only: ovs-vsctl and ovn-nbctl resolve a relative one
//! against the OVS run directory, netprov would resolve it against its own working
//! directory, so the same words would name two different sockets. `ssl:` is refused with
//! a message (netprov has no TLS stack), as are the listening forms (`punix:`, `ptcp:`).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::jsonrpc::Connection;

/// One server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Unix(PathBuf),
    /// `HOST:PORT` as `ToSocketAddrs` takes it (`[v6]:port` too).
    Tcp(String),
}

impl Remote {
    /// Parses `unix:PATH`, all the `Open_vSwitch` client takes (the local database).
    pub fn parse_unix(s: &str) -> Result<PathBuf, String> {
        unix_path(s).unwrap_or_else(|| {
            Err(format!(
                "{s:?}: only unix sockets are supported, written unix:/path/to/db.sock"
            ))
        })
    }

    /// Parses one remote, `unix:PATH` or `tcp:HOST:PORT` (`s` as given: no list, no
    /// trimming).
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(p) = unix_path(s) {
            return p.map(Remote::Unix);
        }
        if let Some(a) = s.strip_prefix("tcp:") {
            let port_ok = a
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !port_ok {
                return Err(format!("{s:?}: write tcp:HOST:PORT (tcp:[IPv6]:PORT)"));
            }
            return Ok(Remote::Tcp(a.to_owned()));
        }
        if s.starts_with("ssl:") {
            return Err(format!(
                "{s:?}: ssl: is not supported (netprov has no TLS client); use unix: or tcp: (e.g. to a local TLS tunnel)"
            ));
        }
        Err(format!(
            "{s:?}: write unix:PATH or tcp:HOST:PORT, as ovn-nbctl --db takes them"
        ))
    }

    /// Parses a comma-separated list (a clustered database: the first that answers is
    /// used); blanks around the parts are ignored, an empty list is refused.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        let out = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if out.is_empty() {
            return Err("empty OVN database endpoint".into());
        }
        Ok(out)
    }

    /// Opens a JSON-RPC connection; `timeout` bounds the connect and every request.
    pub fn connect(&self, timeout: Duration) -> io::Result<Connection> {
        match self {
            Remote::Unix(p) => Connection::connect(p, timeout),
            Remote::Tcp(a) => Connection::connect_tcp(a, timeout),
        }
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
            Remote::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// `Some` when `s` is a `unix:` remote: its path if absolute.
fn unix_path(s: &str) -> Option<Result<PathBuf, String>> {
    let p = s.strip_prefix("unix:")?;
    Some(if p.starts_with('/') {
        Ok(PathBuf::from(p))
    } else {
        Err(format!(
            "{s:?}: the socket path after \"unix:\" must be absolute"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form against both parsers: what each accepts, and that an accepted remote
    /// prints back as it was written.
    #[test]
    fn forms_by_client() {
        // (remote, accepted by the Open_vSwitch client, accepted by the OVN clients)
        let cases = [
            ("unix:/run/openvswitch/db.sock", true, true),
            ("unix:/", true, true),
            ("unix:/a b/c,d", true, true),
            ("unix:rel.sock", false, false),
            ("unix:", false, false),
            ("unix:./db.sock", false, false),
            ("tcp:127.0.0.1:6640", false, true),
            ("tcp:[fd00::1]:6641", false, true),
            ("tcp:ovn-central.example:6641", false, true),
            ("tcp:10.0.0.1", false, false),
            ("tcp::6641", false, false),
            ("tcp:10.0.0.1:65536", false, false),
            ("tcp:10.0.0.1:x", false, false),
            ("ssl:1.2.3.4:6641", false, false),
            ("punix:/x", false, false),
            ("ptcp:6641", false, false),
            ("/run/openvswitch/db.sock", false, false),
            ("", false, false),
        ];
        for (s, unix, any) in cases {
            let ovs = Remote::parse_unix(s).map(Remote::Unix);
            let ovn = Remote::parse(s);
            for (got, want) in [(ovs, unix), (ovn, any)] {
                assert_eq!(got.is_ok(), want, "{s:?}: {got:?}");
                if let Ok(r) = got {
                    assert_eq!(r.to_string(), s);
                }
            }
        }
    }

    #[test]
    fn refusals_say_what_to_write() {
        let unix = |s| Remote::parse_unix(s).unwrap_err();
        let any = |s| Remote::parse(s).unwrap_err();
        assert!(unix("unix:rel").contains("must be absolute"));
        assert!(any("unix:rel").contains("must be absolute"));
        assert!(unix("tcp:1.2.3.4:6640").contains("only unix sockets"));
        assert!(unix("ssl:1.2.3.4:6641").contains("only unix sockets"));
        assert!(any("ssl:1.2.3.4:6641").contains("not supported"));
        assert!(any("tcp:1.2.3.4").contains("tcp:HOST:PORT"));
        assert!(any("punix:/x").contains("ovn-nbctl --db"));
    }

    #[test]
    fn lists() {
        let l = Remote::parse_list(" tcp:10.0.0.1:6641 ,, unix:/run/ovn/nb.sock,").unwrap();
        assert_eq!(
            l,
            vec![
                Remote::Tcp("10.0.0.1:6641".into()),
                Remote::Unix("/run/ovn/nb.sock".into())
            ]
        );
        for bad in ["", " , ", "unix:/a,unix:rel", "unix:/a,tcp:x"] {
            assert!(Remote::parse_list(bad).is_err(), "{bad:?}");
        }
    }

    mod generated {
        use proptest::prelude::*;

        use super::super::Remote;

        fn host() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z0-9][a-z0-9.-]{0,20}",
                "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
                "\\[[0-9a-f:]{2,20}\\]",
            ]
        }

        fn remote() -> impl Strategy<Value = String> {
            prop_oneof![
                "/[!-+--~]{0,30}".prop_map(|p| format!("unix:{p}")),
                (host(), any::<u16>()).prop_map(|(h, p)| format!("tcp:{h}:{p}")),
            ]
        }

        proptest! {
            /// An absolute path (commas and blanks included) is taken verbatim by both
            /// parsers and printed back as written.
            #[test]
            fn absolute_unix_paths(p in "/[ -~]{0,40}") {
                let s = format!("unix:{p}");
                let path = Remote::parse_unix(&s).unwrap();
                prop_assert_eq!(path.to_str(), Some(p.as_str()));
                prop_assert_eq!(Remote::parse(&s).unwrap().to_string(), s);
            }

            /// A relative path is refused by both.
            #[test]
            fn relative_unix_paths(p in "[ -.0-~][ -~]{0,40}") {
                let s = format!("unix:{p}");
                prop_assert!(Remote::parse_unix(&s).is_err());
                prop_assert!(Remote::parse(&s).is_err());
            }

            /// `tcp:HOST:PORT` for every port number: the OVN parser takes it, the
            /// Open_vSwitch one refuses it; a port beyond 65535 is refused.
            #[test]
            fn tcp_ports(h in host(), port in any::<u16>(), big in 65536u32..1_000_000) {
                let s = format!("tcp:{h}:{port}");
                prop_assert_eq!(Remote::parse(&s).unwrap().to_string(), s.clone());
                prop_assert!(Remote::parse_unix(&s).is_err());
                let too_big = format!("tcp:{h}:{big}");
                prop_assert!(Remote::parse(&too_big).is_err());
            }

            /// A list keeps its order, whatever the blanks and empty parts around its
            /// members (which therefore cannot end in a blank or hold a comma).
            #[test]
            fn lists_keep_order(parts in prop::collection::vec(remote(), 1..5), pad in " {0,2}") {
                let joined = parts.join(&format!("{pad},{pad},"));
                let got: Vec<String> = Remote::parse_list(&joined)
                    .unwrap()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                prop_assert_eq!(got, parts);
            }
        }
    }
}
