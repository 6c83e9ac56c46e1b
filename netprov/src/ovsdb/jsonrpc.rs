//! JSON-RPC 1.0 over a stream socket, as OVSDB speaks it (RFC 7047 §4).
//!
//! OVSDB sends bare JSON texts back to back with no length prefix or delimiter, so a
//! read may end in the middle of a message or hold several: [`Framer`] keeps a buffer
//! and cuts complete JSON values off its front with a streaming deserializer.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Splits a byte stream into JSON values.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete value, `Ok(None)` if the buffer holds only part of one.
    pub fn next_value(&mut self) -> Result<Option<Value>, String> {
        let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) => {
                let used = stream.byte_offset();
                self.buf.drain(..used);
                Ok(Some(v))
            }
            // An incomplete text: wait for more bytes.
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(format!("malformed JSON from the server: {e}")),
            None => {
                // Only whitespace so far.
                self.buf.clear();
                Ok(None)
            }
        }
    }
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum RpcError {
    Io(io::Error),
    /// The server closed the connection.
    Closed,
    Protocol(String),
    /// The server answered with a JSON-RPC level `error`.
    Server(Value),
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                f.write_str("no answer from the server (timed out)")
            }
            RpcError::Io(e) => {
                let s = e.to_string();
                f.write_str(s.split(" (os error").next().unwrap_or(&s))
            }
            RpcError::Closed => f.write_str("the server closed the connection"),
            RpcError::Protocol(m) => f.write_str(m),
            RpcError::Server(v) => write!(f, "server error: {v}"),
        }
    }
}

impl RpcError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            RpcError::Io(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

/// A message the server sent on its own (e.g. a monitor `update`).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub method: String,
    pub params: Value,
}

/// A blocking JSON-RPC connection over a unix socket.
///
/// Every wait has a deadline, not just a per-read timeout: the server's `echo`
/// requests (answered here) would otherwise restart the read timeout forever.
#[derive(Debug)]
pub struct Connection {
    sock: Stream,
    framer: Framer,
    next_id: u64,
    /// How long [`Connection::call`] waits for its answer.
    timeout: Duration,
    notifications: VecDeque<Notification>,
}

fn timed_out() -> RpcError {
    RpcError::Io(io::Error::from(io::ErrorKind::TimedOut))
}

/// The socket under a [`Connection`]: unix (the local `Open_vSwitch` database) or TCP
/// (a remote OVN Northbound database, `tcp:HOST:PORT`).
#[derive(Debug)]
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(buf),
            Stream::Tcp(s) => s.write_all(buf),
        }
    }
}

impl Connection {
    pub fn connect(path: &Path, timeout: Duration) -> io::Result<Self> {
        let sock = UnixStream::connect(path)?;
        sock.set_write_timeout(Some(timeout))?;
        Ok(Self::from_stream(sock, timeout))
    }

    /// Connects to `addr` (`HOST:PORT`) over TCP, within `timeout` for each address.
    pub fn connect_tcp(addr: &str, timeout: Duration) -> io::Result<Self> {
        use std::net::ToSocketAddrs;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(sock) => {
                    sock.set_write_timeout(Some(timeout))?;
                    sock.set_nodelay(true)?;
                    return Ok(Self::with(Stream::Tcp(sock), timeout));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn from_stream(sock: UnixStream, timeout: Duration) -> Self {
        Self::with(Stream::Unix(sock), timeout)
    }

    fn with(sock: Stream, timeout: Duration) -> Self {
        Self {
            sock,
            framer: Framer::default(),
            next_id: 1,
            timeout,
            notifications: VecDeque::new(),
        }
    }

    fn send(&mut self, msg: &Value) -> Result<(), RpcError> {
        let text = serde_json::to_vec(msg).expect("a Value always serializes");
        self.sock.write_all(&text).map_err(RpcError::Io)
    }

    /// Reads the next message before `deadline`, answering `echo` requests on the way.
    fn recv(&mut self, deadline: Instant) -> Result<Value, RpcError> {
        loop {
            if let Some(v) = self.framer.next_value().map_err(RpcError::Protocol)? {
                if v.get("method").and_then(Value::as_str) == Some("echo") && !v["id"].is_null() {
                    // The server's liveness probe: reply with the same params and id.
                    let reply = json!({"result": v["params"], "error": null, "id": v["id"]});
                    self.send(&reply)?;
                    continue;
                }
                return Ok(v);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(RpcError::Io)?;
            let mut chunk = [0u8; 16 * 1024];
            let n = match self.sock.read(&mut chunk) {
                Ok(n) => n,
                // A signal handled by this process (by any of its threads' owners: a
                // library user's SIGCHLD, say) interrupts a read that has no
                // SA_RESTART; the read timeout ends as EAGAIN. Both: look at the
                // deadline again.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(RpcError::Io(e)),
            };
            if n == 0 {
                return Err(RpcError::Closed);
            }
            self.framer.push(&chunk[..n]);
        }
    }

    /// Sends a request and waits for the response with its id; notifications that
    /// arrive meanwhile are queued for [`Connection::next_notification`].
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let deadline = Instant::now() + self.timeout;
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"method": method, "params": params, "id": id}))?;
        loop {
            let msg = self.recv(deadline)?;
            if msg.get("method").is_some() {
                if msg["id"].is_null() {
                    self.notifications.push_back(Notification {
                        method: msg["method"].as_str().unwrap_or_default().to_owned(),
                        params: msg["params"].clone(),
                    });
                }
                continue;
            }
            if msg["id"] != json!(id) {
                // A late answer to a request we gave up on; not ours to handle.
                continue;
            }
            if !msg["error"].is_null() {
                return Err(RpcError::Server(msg["error"].clone()));
            }
            return Ok(msg["result"].clone());
        }
    }

    /// Forgets queued notifications (those of a cancelled monitor).
    pub fn drop_notifications(&mut self) {
        self.notifications.clear();
    }

    /// The next notification (queued or read from the socket) before `deadline`.
    pub fn next_notification(&mut self, deadline: Instant) -> Result<Notification, RpcError> {
        if let Some(n) = self.notifications.pop_front() {
            return Ok(n);
        }
        loop {
            let msg = self.recv(deadline)?;
            if msg.get("method").is_some() && msg["id"].is_null() {
                return Ok(Notification {
                    method: msg["method"].as_str().unwrap_or_default().to_owned(),
                    params: msg["params"].clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framer_splits_values_at_any_byte_boundary() {
        let text = br#"{"id":1,"result":[{"rows":[]}],"error":null}  {"method":"echo","params":[],"id":"echo"}[1,"a}"]"#;
        for cut in 0..text.len() {
            let mut f = Framer::default();
            let mut got = Vec::new();
            f.push(&text[..cut]);
            while let Some(v) = f.next_value().unwrap() {
                got.push(v);
            }
            f.push(&text[cut..]);
            while let Some(v) = f.next_value().unwrap() {
                got.push(v);
            }
            assert_eq!(got.len(), 3, "cut at {cut}");
            assert_eq!(got[2], json!([1, "a}"]));
        }
    }

    #[test]
    fn framer_rejects_garbage() {
        let mut f = Framer::default();
        f.push(b"{\"a\":1}} ");
        assert!(f.next_value().unwrap().is_some());
        assert!(f.next_value().is_err());
    }

    #[test]
    fn connection_answers_echo_and_queues_notifications() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut conn = Connection::from_stream(a, Duration::from_secs(5));
        let server = std::thread::spawn(move || {
            let mut framer = Framer::default();
            let mut read_one = |b: &mut UnixStream| loop {
                if let Some(v) = framer.next_value().unwrap() {
                    return v;
                }
                let mut c = [0u8; 3];
                let n = b.read(&mut c).unwrap();
                framer.push(&c[..n]);
            };
            let req = read_one(&mut b);
            assert_eq!(req["method"], "transact");
            // Split messages across writes, with an echo and a notification first.
            b.write_all(br#"{"method":"echo","params":["x"],"id":"echo"}{"method":"upd"#)
                .unwrap();
            b.write_all(br#"ate","params":[1],"id":null}"#).unwrap();
            let echo = read_one(&mut b);
            assert_eq!(echo, json!({"result":["x"],"error":null,"id":"echo"}));
            b.write_all(
                format!(r#"{{"id":{},"result":[{{}}],"error":null}}"#, req["id"]).as_bytes(),
            )
            .unwrap();
        });
        let r = conn.call("transact", json!(["Open_vSwitch"])).unwrap();
        assert_eq!(r, json!([{}]));
        let n = conn
            .next_notification(Instant::now() + Duration::from_secs(1))
            .unwrap();
        assert_eq!(n.method, "update");
        server.join().unwrap();
    }
}

#[cfg(test)]
mod deadline_tests {
    use super::*;

    #[test]
    fn echoes_do_not_extend_a_deadline() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut conn = Connection::from_stream(a, Duration::from_millis(300));
        let server = std::thread::spawn(move || {
            // Probe every 50 ms, never answer the request.
            for _ in 0..20 {
                if b.write_all(br#"{"method":"echo","params":[],"id":"echo"}"#)
                    .is_err()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let t = Instant::now();
        let e = conn.call("transact", json!([])).unwrap_err();
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(e.to_string(), "no answer from the server (timed out)");
        drop(conn);
        server.join().unwrap();
    }

    /// A read interrupted by a signal (a handler without SA_RESTART, as a program that
    /// embeds netprov may install) is read again, not a failed call.
    #[test]
    fn a_signal_during_a_read_is_not_an_error() {
        extern "C" fn nothing(_: libc::c_int) {}
        // SAFETY: a handler that does nothing, installed without SA_RESTART.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = nothing as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = 0;
            assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
        }
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut conn = Connection::from_stream(a, Duration::from_secs(5));
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tid_tx.send(unsafe { libc::pthread_self() }).unwrap();
            conn.call("get_schema", json!(["Open_vSwitch"]))
        });
        let tid = tid_rx.recv().unwrap();
        // Interrupt the read a few times while the answer is not there yet.
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            // SAFETY: the reader thread is alive until it got its answer, below.
            unsafe { libc::pthread_kill(tid, libc::SIGUSR2) };
        }
        let mut c = [0u8; 4096];
        let n = b.read(&mut c).unwrap();
        let req: Value = serde_json::from_slice(&c[..n]).unwrap();
        let reply = json!({"result": {"ok": true}, "error": null, "id": req["id"]});
        b.write_all(reply.to_string().as_bytes()).unwrap();
        assert_eq!(reader.join().unwrap().unwrap(), json!({"ok": true}));
    }
}
