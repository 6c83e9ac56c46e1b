//! One rtnetlink connection bound to one network namespace.
//!
//! A netlink socket belongs to the netns it was created in, whatever thread later uses
//! it. So [`Netlink::open`] creates the socket while the calling thread is inside the
//! target netns (`netns::in_netns`); every request on it then acts in that netns.
//! `NETLINK_GET_STRICT_CHK` is on so the kernel filters dumps by the header fields and
//! attributes we send (ifindex, table, protocol, oif) instead of returning everything.
//!
//! Requests are blocking exchanges on the socket ([`RtSocket`]): the kernel answers
//! inside the system calls, so there is nothing to wait for that an event loop could
//! overlap. While a process works on several containers at once ([`interleaving`]),
//! the `async` methods yield once after each request, which is where the async
//! connection this replaced let the other containers run: without it, a process
//! applying many containers starts their blocking work (rulesets, netns creation) later
//! and uses the second CPU less — 1.25–1.33 against 1.69–1.73 ms per container at
//! N = 100 (docs/benchmarks.md, round 10). With one container there is nothing to let
//! run, and a yield costs about 1,400 instructions and an `epoll_wait`.
//!
//! Every request that can change the kernel goes through [`Netlink::mutate`], which
//! counts it: "an unchanged apply sends zero mutating messages" is checked on that count.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_ECHO, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;

use tokio::task::yield_now;

use crate::error::OpError;
use crate::kernel::link::LinkState;
use crate::kernel::link_reply;
use crate::kernel::netns;
use crate::kernel::nlsock::{Ends, Msg, RtSocket};

/// Mutating netlink messages sent, for one apply.
#[derive(Debug, Default)]
pub struct MutationCount(AtomicUsize);

impl MutationCount {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
    /// One more mutating message (also used for an nftables transaction).
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A strict-checking rtnetlink connection living in one netns. Clones share it.
#[derive(Clone)]
pub struct Netlink {
    conn: Arc<Conn>,
    /// "host" or "netns <id>", for messages.
    pub label: String,
}

struct Conn {
    /// One request at a time: its replies are read to the end before the next is sent.
    io: Mutex<Io>,
    /// Every request sent on this socket (reads too): lets tests prove that the work
    /// for one container does not grow with the number of containers.
    requests: AtomicUsize,
}

struct Io {
    sock: RtSocket,
    seq: u32,
}

/// A failed request: the errno the kernel answered (or of the failed system call).
pub type Errno = i32;

/// Sections of this process that work on several containers at once (see the module
/// doc): requests yield while there is one.
static INTERLEAVING: AtomicUsize = AtomicUsize::new(0);

/// While the returned guard lives, requests yield to the runtime after each exchange,
/// so that the other containers in flight run between them.
pub fn interleaving() -> Interleaving {
    INTERLEAVING.fetch_add(1, Ordering::Relaxed);
    Interleaving(())
}

/// See [`interleaving`].
pub struct Interleaving(());

impl Drop for Interleaving {
    fn drop(&mut self) {
        INTERLEAVING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Lets the other containers in flight run, if there are any.
async fn let_others_run() {
    if INTERLEAVING.load(Ordering::Relaxed) > 0 {
        yield_now().await;
    }
}

impl Netlink {
    /// Opens a connection in the netns at `ns` (`None`: the calling thread's netns).
    pub fn open(ns: Option<&Path>, label: String) -> Result<Self, OpError> {
        let make = || -> std::io::Result<RtSocket> {
            let sock = RtSocket::open()?;
            sock.strict_check()?;
            Ok(sock)
        };
        let made = match ns {
            Some(p) => netns::in_netns(p, make)?,
            None => make(),
        };
        let sock = made.map_err(|e| OpError::io(format!("open netlink socket in {label}"), &e))?;
        Ok(Self {
            conn: Arc::new(Conn {
                io: Mutex::new(Io { sock, seq: 0 }),
                requests: AtomicUsize::new(0),
            }),
            label,
        })
    }

    /// The same connection under another label (for messages).
    pub fn labelled(self, label: String) -> Self {
        Self { label, ..self }
    }

    /// The network namespace of this connection's socket, as a new descriptor.
    pub fn netns(&self) -> std::io::Result<std::fs::File> {
        match self.conn.io.lock() {
            Ok(io) => io.sock.netns(),
            Err(_) => Err(std::io::Error::other("netlink connection poisoned")),
        }
    }

    /// Requests sent so far on this socket.
    pub fn requests(&self) -> usize {
        self.conn.requests.load(Ordering::Relaxed)
    }

    /// A dump; see [`gone_is_empty`] for the errors that read as nothing to list.
    pub async fn dump(&self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, Errno> {
        let r = self.request_now(msg, NLM_F_REQUEST | NLM_F_DUMP);
        let_others_run().await;
        gone_is_empty(r)
    }

    /// A single-object get; `Ok(None)` when the kernel says it does not exist.
    pub async fn get(
        &self,
        msg: RouteNetlinkMessage,
    ) -> Result<Option<RouteNetlinkMessage>, Errno> {
        let r = self.request_now(msg, NLM_F_REQUEST);
        let_others_run().await;
        gone_is_none(r)
    }

    /// [`Self::dump`] of links (`link::dump()`), read as [`LinkState`]s.
    pub async fn dump_links(&self, msg: RouteNetlinkMessage) -> Result<Vec<LinkState>, Errno> {
        let r = self.links_now(msg, NLM_F_REQUEST | NLM_F_DUMP);
        let_others_run().await;
        gone_is_empty(r)
    }

    /// [`Self::get`] of one link (`link::get_by_name`/`get_by_index`).
    pub async fn get_link(&self, msg: RouteNetlinkMessage) -> Result<Option<LinkState>, Errno> {
        let r = self.get_link_now(msg);
        let_others_run().await;
        r
    }

    /// [`Self::get_link`], for code that is not async.
    pub fn get_link_now(&self, msg: RouteNetlinkMessage) -> Result<Option<LinkState>, Errno> {
        gone_is_none(self.links_now(msg, NLM_F_REQUEST))
    }

    /// A request that changes the kernel, acknowledged; counted in `count`.
    pub async fn mutate(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        count: &MutationCount,
    ) -> Result<(), Errno> {
        count.bump();
        let r = self.request_now(msg, NLM_F_REQUEST | NLM_F_ACK | flags);
        let_others_run().await;
        r.map(|_| ())
    }

    /// A request that makes one link, acknowledged and counted as [`Self::mutate`], with
    /// `NLM_F_ECHO`: the kernel (Linux 6.3 and later) also sends this socket the link it
    /// made, read here as a [`LinkState`], so that its index need not be asked for
    /// again. Empty where the kernel does not echo.
    pub async fn mutate_echo(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        count: &MutationCount,
    ) -> Result<Vec<LinkState>, Errno> {
        count.bump();
        let r = self.links_now(msg, NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO | flags);
        let_others_run().await;
        r
    }

    /// One request (`flags` include NLM_F_REQUEST) and its replies, read to the end
    /// before this returns; for callers outside an async context too (a thread in a
    /// netns it just made). A GET without NLM_F_ACK ends at its one reply.
    pub fn request_now(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Errno> {
        let mut out = Vec::new();
        let label = &self.label;
        self.exchange_now(msg, flags, |m| {
            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(m.bytes) {
                Ok(NetlinkMessage {
                    payload: NetlinkPayload::InnerMessage(r),
                    ..
                }) => out.push(r),
                Ok(_) => {}
                // What the async connection this replaced did too: a message the
                // parser refuses is skipped, not the whole reply.
                Err(e) => tracing::warn!(
                    "netlink reply in {label}: message of type {} skipped: {e}",
                    m.kind
                ),
            }
        })?;
        Ok(out)
    }

    /// [`Self::request_now`] of links, read by [`link_reply::parse`] instead of the
    /// full message parser.
    fn links_now(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<Vec<LinkState>, Errno> {
        let mut out = Vec::new();
        let label = &self.label;
        self.exchange_now(msg, flags, |m| {
            if m.kind != libc::RTM_NEWLINK {
                return;
            }
            match link_reply::parse(m.bytes) {
                Ok(l) => out.push(l),
                Err(e) => tracing::warn!("netlink reply in {label}: link skipped: {e}"),
            }
        })?;
        Ok(out)
    }

    /// Sends `msg` with `flags` and hands each reply message to `f`.
    fn exchange_now(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        f: impl FnMut(&Msg<'_>),
    ) -> Result<(), Errno> {
        self.conn.requests.fetch_add(1, Ordering::Relaxed);
        // A panic while the lock was held cannot leave the socket mid-exchange in a
        // way the sequence numbers do not handle: take the lock regardless.
        let mut io = self.conn.io.lock().unwrap_or_else(|e| e.into_inner());
        let io = &mut *io;
        io.seq = io.seq.wrapping_add(1).max(1);
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        req.header.sequence_number = io.seq;
        req.finalize();
        let mut bytes = vec![0u8; req.buffer_len()];
        req.serialize(&mut bytes);
        let ends = if flags & (NLM_F_DUMP | NLM_F_ACK) == 0 {
            Ends::AtFirstReply
        } else {
            Ends::AtDoneOrAck
        };
        io.sock
            .exchange(&bytes, Some(io.seq), ends, f)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// What a filtered dump says (in its NLMSG_DONE) when what it is filtered by does not
/// exist, which is nothing to list: ENOENT for a table (IPv4's main table is made with
/// its first route, so a netns without an IPv4 route has none), ENODEV for a link that
/// went away since it was read (a netns the kernel is cleaning up takes its veths' host
/// ends with it). The next read of that link, or the plan's request on it, sees the
/// rest.
fn gone_is_empty<T>(r: Result<Vec<T>, Errno>) -> Result<Vec<T>, Errno> {
    match r {
        Err(libc::ENOENT | libc::ENODEV) => Ok(Vec::new()),
        r => r,
    }
}

/// A get of what does not exist: `Ok(None)`.
fn gone_is_none<T>(r: Result<Vec<T>, Errno>) -> Result<Option<T>, Errno> {
    match r {
        Ok(mut v) => Ok(v.pop()),
        Err(libc::ENODEV | libc::ENOENT | libc::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}
