//! One rtnetlink connection bound to one network namespace.
//!
//! A netlink socket belongs to the netns it was created in, whatever thread later uses
//! it. So [`Netlink::open`] creates the socket while the calling thread is inside the
//! target netns (`netns::in_netns`) and hands it to the tokio runtime; every request on
//! it then acts in that netns. `NETLINK_GET_STRICT_CHK` is on so the kernel filters
//! dumps by the header fields and attributes we send (ifindex, table, protocol, oif)
//! instead of returning everything.
//!
//! Every request that can change the kernel goes through [`Netlink::mutate`], which
//! counts it: "an unchanged apply sends zero mutating messages" is checked on that count.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::OpError;
use crate::kernel::netns;

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

/// A strict-checking rtnetlink connection living in one netns.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    /// Every request sent on this socket (reads too): lets tests prove that the work
    /// for one container does not grow with the number of containers.
    requests: std::sync::Arc<AtomicUsize>,
    /// "host" or "netns <id>", for messages.
    pub label: String,
}

/// A failed request: the errno the kernel answered (or EIO when the connection broke).
pub type Errno = i32;

impl Netlink {
    /// Opens a connection in the netns at `ns` (`None`: this process's netns) and drives
    /// it on `rt`.
    pub fn open(
        ns: Option<&Path>,
        rt: &tokio::runtime::Handle,
        label: String,
    ) -> Result<Self, OpError> {
        let rt2 = rt.clone();
        let make = move || {
            // The socket registers with the runtime's reactor, so enter it on this thread.
            let _guard = rt2.enter();
            rtnetlink::new_connection_with_strict_check()
        };
        let what = format!("open netlink socket in {label}");
        let made = match ns {
            Some(p) => netns::in_netns(p, make)?,
            None => make(),
        };
        let (conn, handle, _) = made.map_err(|e| OpError::io(what, &e))?;
        rt.spawn(conn);
        Ok(Self {
            handle,
            requests: Default::default(),
            label,
        })
    }

    /// Requests sent so far on this socket.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// A dump request (`NLM_F_DUMP`); the kernel filters by what `msg` carries.
    pub async fn dump(&self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, Errno> {
        self.request(msg, NLM_F_REQUEST | NLM_F_DUMP).await
    }

    /// A single-object get; `Ok(None)` when the kernel says it does not exist.
    pub async fn get(
        &self,
        msg: RouteNetlinkMessage,
    ) -> Result<Option<RouteNetlinkMessage>, Errno> {
        match self.request(msg, NLM_F_REQUEST).await {
            Ok(mut v) => Ok(v.pop()),
            Err(e) if e == libc::ENODEV || e == libc::ENOENT || e == libc::ESRCH => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A request that changes the kernel, acknowledged; counted in `count`.
    pub async fn mutate(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        count: &MutationCount,
    ) -> Result<(), Errno> {
        count.bump();
        self.request(msg, NLM_F_REQUEST | NLM_F_ACK | flags)
            .await
            .map(|_| ())
    }

    async fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Errno> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        let mut handle = self.handle.clone();
        let mut replies = handle.request(req).map_err(|_| libc::EIO)?;
        let mut out = Vec::new();
        while let Some(reply) = replies.next().await {
            match reply.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Error(e) => {
                    if let Some(code) = e.code {
                        return Err(-code.get());
                    }
                }
                NetlinkPayload::Done(d) if d.code < 0 => return Err(-d.code),
                _ => {}
            }
        }
        Ok(out)
    }
}
