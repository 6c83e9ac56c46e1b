//! A minimal blocking netlink socket of one protocol: send a request and read its
//! replies to the end, send one nftables batch and collect its errors, or run several
//! requests in one round trip. No runtime, no reactor: the kernel answers rtnetlink
//! and nfnetlink requests inside `sendmsg` (a dump part inside `recvmsg`), so a reply
//! is always there to read, and a blocking read costs two system calls per request
//! where an async connection spent five (`epoll_wait` twice and a `recvfrom` that
//! finds nothing) plus its tasks and channels (docs/benchmarks.md, round 10).
//!
//! The socket is opened by the caller's thread, i.e. inside whatever netns that thread
//! joined, and closed when dropped. Its protocol is part of its type ([`NfSocket`],
//! [`RtSocket`]).

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `NLM_F_MULTI`: one of several replies; the last one is NLMSG_DONE.
const NLM_F_MULTI: u16 = 2;
/// Receive buffer capacity: a dump part the kernel sends fits (it sizes them to the
/// reader's buffer, up to 32 KiB by default).
const RECV_BUF: usize = 1 << 16;

thread_local! {
    /// The thread's receive buffer, lent to one exchange at a time ([`with_rbuf`]).
    static RBUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with the thread's receive buffer ([`RECV_BUF`] bytes of capacity). Why one
/// per thread and not one per socket or request: a process start pays a page fault for
/// each heap page it first writes, and every fresh 64 KiB buffer took at least two (the
/// page the reply lands in, and the next chunk's header 64 KiB on); a cold apply
/// allocated eight of them. A nested call (from inside `f`) finds the buffer lent and
/// gets a fresh one.
fn with_rbuf<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = RBUF.take();
    if buf.capacity() < RECV_BUF {
        buf.reserve(RECV_BUF);
    }
    let r = f(&mut buf);
    RBUF.set(buf);
    r
}

/// One netlink message received: type, flags and the whole message bytes (header
/// included, for libnftnl's parsers).
pub struct Msg<'a> {
    pub kind: u16,
    pub bytes: &'a [u8],
}

/// A batch the kernel refused (and aborted as a whole): the first error and the
/// sequence number of the message it is about (`None`: the socket failed).
#[derive(Debug)]
pub struct BatchError {
    pub err: io::Error,
    pub seq: Option<u32>,
}

impl From<io::Error> for BatchError {
    fn from(err: io::Error) -> Self {
        Self { err, seq: None }
    }
}

/// A netlink socket of protocol `PROTO` (`NETLINK_ROUTE`, `NETLINK_NETFILTER`, …).
pub struct NlSocket<const PROTO: i32> {
    fd: OwnedFd,
}

/// An nftables socket.
pub type NfSocket = NlSocket<{ libc::NETLINK_NETFILTER }>;
/// An rtnetlink socket.
pub type RtSocket = NlSocket<{ libc::NETLINK_ROUTE }>;

/// How the replies to one request end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ends {
    /// With NLMSG_DONE or NLMSG_ERROR (an ack, or the error): dumps, requests with
    /// NLM_F_ACK.
    AtDoneOrAck,
    /// Also with the first reply that is not part of a multipart one: a GET without
    /// NLM_F_ACK, which the kernel answers with the object or an error.
    AtFirstReply,
}

impl<const PROTO: i32> NlSocket<PROTO> {
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned immediately.
        let fd =
            unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, PROTO) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl zeroed = the kernel (pid 0); buf is valid for its length.
        let n = unsafe {
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one datagram into `buf` (emptied first; its capacity is the most read);
    /// `None` when `nonblocking` and nothing is queued.
    /// Into spare capacity, never a zeroed buffer: the kernel writes only what it
    /// sends, so a small reply touches one page of a 64 KiB buffer instead of sixteen
    /// (page faults were a tenth of a no-op apply's time).
    fn recv(&self, buf: &mut Vec<u8>, nonblocking: bool) -> io::Result<Option<usize>> {
        // MSG_TRUNC: the datagram's whole length even when it did not fit, so that a
        // cut reply is an error instead of messages that silently end early.
        let flags = libc::MSG_TRUNC | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        buf.clear();
        loop {
            let spare = buf.spare_capacity_mut();
            // SAFETY: spare is valid for writes of its length; recv initializes the
            // first n bytes it returns.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    flags,
                )
            };
            if n >= 0 {
                let n = n as usize;
                if n > spare.len() {
                    return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
                }
                // SAFETY: recv wrote n bytes (n <= spare.len() = capacity).
                unsafe { buf.set_len(n) };
                return Ok(Some(n));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) if nonblocking => return Ok(None),
                _ => return Err(e),
            }
        }
    }

    /// Makes the send buffer hold at least `len` bytes: a netlink datagram larger than
    /// the send buffer fails with EMSGSIZE, and a netfilter batch must be one datagram
    /// to be one transaction. SO_SNDBUFFORCE (CAP_NET_ADMIN, which changing nftables
    /// needs anyway) ignores `net.core.wmem_max`; SO_SNDBUF is the fallback (capped).
    fn ensure_sndbuf(&self, len: usize) -> io::Result<()> {
        // The kernel doubles the value it is given and keeps some room for its own
        // bookkeeping; ask for the batch plus slack.
        let want = i32::try_from(len.saturating_add(1 << 16)).unwrap_or(i32::MAX);
        let set = |opt: i32| {
            // SAFETY: plain setsockopt(2) with an int value.
            unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&want as *const i32).cast(),
                    std::mem::size_of::<i32>() as u32,
                )
            }
        };
        if set(libc::SO_SNDBUFFORCE) == 0 || set(libc::SO_SNDBUF) == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Sends a whole batch (begin, messages, end — already concatenated) in one
    /// datagram and returns the first error the kernel reported for any of its
    /// messages (the kernel then aborts the whole batch).
    ///
    /// The messages should not ask for acks: the kernel reports errors anyway, and one
    /// ack per message would overflow the receive buffer of a large batch (ENOBUFS).
    pub fn run_batch(&self, buf: &[u8]) -> Result<(), BatchError> {
        if buf.len() > 1 << 16 {
            self.ensure_sndbuf(buf.len())?;
        }
        self.send(buf)?;
        // nfnetlink processes the batch synchronously inside sendmsg: every reply is
        // queued by now, so drain without blocking.
        let mut first_err = None;
        with_rbuf(|rbuf| -> io::Result<()> {
            while let Some(n) = self.recv(rbuf, true)? {
                for m in messages(&rbuf[..n]) {
                    if m.kind == NLMSG_ERROR {
                        let code = error_code(m.bytes);
                        if code != 0 && first_err.is_none() {
                            // The payload is the errno and the failed message's header.
                            let seq = m.bytes.get(NLMSG_HDRLEN + 4..).map(seq_of);
                            first_err = Some((code, seq));
                        }
                    }
                }
            }
            Ok(())
        })?;
        match first_err {
            Some((e, seq)) => Err(BatchError {
                err: io::Error::from_raw_os_error(-e),
                seq,
            }),
            None => Ok(()),
        }
    }

    /// Sends several requests — GETs with NLM_F_ACK, dumps — in ONE datagram (one
    /// round trip for a small table) and returns, per request, its reply messages or
    /// the errno the kernel answered. Request `i` must carry sequence number `i + 1`.
    /// A GET ends with its NLMSG_ERROR (0 = the ack after the reply), a dump with
    /// NLMSG_DONE or an NLMSG_ERROR.
    ///
    /// The kernel runs the requests in order inside sendmsg; a dump whose first part
    /// does not hold all of it keeps the socket's one dump slot busy, so a later dump in
    /// the same datagram is answered EBUSY — the caller then runs that one alone
    /// ([`Self::dump`]). The rest of a long dump is produced as we receive.
    pub fn pipeline(&self, reqs: &[Vec<u8>]) -> io::Result<Vec<Result<Vec<Vec<u8>>, i32>>> {
        let buf: Vec<u8> = reqs.concat();
        self.send(&buf)?;
        let mut out: Vec<Result<Vec<Vec<u8>>, i32>> = vec![Ok(Vec::new()); reqs.len()];
        let mut pending = reqs.len();
        with_rbuf(|rbuf| -> io::Result<()> {
            while pending > 0 {
                let n = self.recv(rbuf, false)?.unwrap_or(0);
                for m in messages(&rbuf[..n]) {
                    let seq = seq_of(m.bytes) as usize;
                    let Some(slot) = seq.checked_sub(1).and_then(|i| out.get_mut(i)) else {
                        continue;
                    };
                    match m.kind {
                        NLMSG_ERROR => {
                            let code = error_code(m.bytes);
                            if code != 0 {
                                *slot = Err(-code);
                            }
                            pending -= 1;
                        }
                        NLMSG_DONE => pending -= 1,
                        _ => {
                            if let Ok(v) = slot {
                                v.push(m.bytes.to_vec());
                            }
                        }
                    }
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs one dump request and returns its messages.
    pub fn dump(&self, req: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        self.request(req, |m| out.push(m.bytes.to_vec()))?;
        Ok(out)
    }

    /// Sends one request and hands every reply message to `f` until the kernel ends it
    /// (NLMSG_DONE for a dump, the ack for a plain GET with NLM_F_ACK).
    pub fn request(&self, req: &[u8], f: impl FnMut(&Msg<'_>)) -> io::Result<()> {
        self.exchange(req, None, Ends::AtDoneOrAck, f)
    }

    /// Sends `req` and hands each reply message to `f` until the replies end as `ends`
    /// says; an NLMSG_ERROR with an errno, or an NLMSG_DONE carrying one, is that
    /// error. With `seq`, messages of other sequence numbers (left over from an earlier
    /// request) are skipped.
    pub fn exchange(
        &self,
        req: &[u8],
        seq: Option<u32>,
        ends: Ends,
        f: impl FnMut(&Msg<'_>),
    ) -> io::Result<()> {
        self.send(req)?;
        with_rbuf(|rbuf| self.replies(rbuf, seq, ends, f))
    }

    fn replies(
        &self,
        rbuf: &mut Vec<u8>,
        seq: Option<u32>,
        ends: Ends,
        mut f: impl FnMut(&Msg<'_>),
    ) -> io::Result<()> {
        loop {
            let n = self.recv(rbuf, false)?.unwrap_or(0);
            for m in messages(&rbuf[..n]) {
                if seq.is_some_and(|s| s != seq_of(m.bytes)) {
                    continue;
                }
                match m.kind {
                    NLMSG_DONE => {
                        // A dump that failed part-way says so in its NLMSG_DONE.
                        let code = if m.bytes.len() >= NLMSG_HDRLEN + 4 {
                            error_code(m.bytes)
                        } else {
                            0
                        };
                        return if code < 0 {
                            Err(io::Error::from_raw_os_error(-code))
                        } else {
                            Ok(())
                        };
                    }
                    NLMSG_ERROR => {
                        let code = error_code(m.bytes);
                        return if code == 0 {
                            Ok(())
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    _ => {
                        f(&m);
                        if ends == Ends::AtFirstReply && flags_of(m.bytes) & NLM_F_MULTI == 0 {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// The network namespace this socket lives in, as a new descriptor
    /// (`SIOCGSKNS`, Linux 4.9): no path lookup, and it names the netns the socket
    /// talks to, whatever thread or path names it otherwise.
    pub fn netns(&self) -> io::Result<std::fs::File> {
        // The request number from linux/sockios.h; the kernel opens the descriptor
        // close-on-exec.
        const SIOCGSKNS: libc::c_ulong = 0x894C;
        // SAFETY: an ioctl without an argument that returns a new descriptor or -1.
        let fd = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCGSKNS as _) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor owned from here on.
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }

    /// Asks the kernel to filter dumps by the header fields and attributes of the
    /// request (`NETLINK_GET_STRICT_CHK`, Linux 4.20) and to refuse what it cannot
    /// filter by, instead of returning everything.
    pub fn strict_check(&self) -> io::Result<()> {
        let on: i32 = 1;
        // SAFETY: plain setsockopt(2) with an int value.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_GET_STRICT_CHK,
                (&on as *const i32).cast(),
                std::mem::size_of::<i32>() as u32,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

fn seq_of(msg: &[u8]) -> u32 {
    msg.get(8..12)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

fn flags_of(msg: &[u8]) -> u16 {
    msg.get(6..8)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .unwrap_or(0)
}

fn error_code(msg: &[u8]) -> i32 {
    msg.get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(-libc::EPROTO)
}

/// A datagram split into messages when they cover it exactly (no truncated or trailing
/// bytes); `None` otherwise.
pub fn whole_messages(buf: &[u8]) -> Option<Vec<Msg<'_>>> {
    let mut msgs = Vec::new();
    let mut end = 0;
    for m in messages(buf) {
        end = (end + m.bytes.len() + 3) & !3;
        msgs.push(m);
    }
    (end.min(buf.len()) == buf.len()).then_some(msgs)
}

/// The attributes in `b` (a message's, or a nest's payload): (type without the
/// nested/byte-order bits, payload). Stops at the first malformed one.
pub fn attrs(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    attrs_checked(b).map_while(Result::ok)
}

/// [`attrs`], with a malformed attribute (shorter than its header, or longer than what
/// is left) as an error, after which it ends: for a reader that must not take a cut
/// list for a whole one.
pub fn attrs_checked(mut b: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), &'static str>> {
    std::iter::from_fn(move || {
        if b.is_empty() {
            return None;
        }
        if b.len() < 4 {
            b = &[];
            return Some(Err("attribute shorter than its header"));
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            b = &[];
            return Some(Err("attribute length out of bounds"));
        }
        let payload = &b[4..len];
        // The next one starts at the 4-byte boundary; the last may lack its padding.
        b = &b[((len + 3) & !3).min(b.len())..];
        Some(Ok((kind, payload)))
    })
}

/// The payload of the first attribute `kind` in `b`.
pub fn attr(b: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(b).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// Appends attribute `kind` with `val`, padded to 4 bytes.
pub fn put_attr(b: &mut Vec<u8>, kind: u16, val: &[u8]) {
    b.extend_from_slice(&((4 + val.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(val);
    while b.len() % 4 != 0 {
        b.push(0);
    }
}

/// Splits a datagram into netlink messages.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = Msg<'_>> {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let m = Msg {
            kind,
            bytes: &buf[..len],
        };
        let next = (len + 3) & !3;
        buf = &buf[next.min(buf.len())..];
        Some(m)
    })
}

/// Helpers for the kernel modules' tests that speak netlink themselves.
#[cfg(test)]
pub(crate) mod testing {
    use netlink_packet_core::{NetlinkMessage, NLM_F_REQUEST};

    /// Runs `f` on a thread of its own in a fresh, empty netns (only `lo`), which goes
    /// with the thread: nothing a test does there is seen outside.
    pub fn in_fresh_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// `msg` as a request's bytes: NLM_F_REQUEST and `flags`, sequence number `seq`.
    pub fn req(msg: netlink_packet_route::RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
        let mut m = NetlinkMessage::from(msg);
        m.header.flags = NLM_F_REQUEST | flags;
        m.header.sequence_number = seq;
        m.finalize();
        let mut b = vec![0; m.buffer_len()];
        m.serialize(&mut b);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{in_fresh_netns, req};
    use super::*;
    use netlink_packet_core::NLM_F_DUMP;

    /// A GET without an ack ends at its one reply or at its error; a dump at
    /// NLMSG_DONE; replies to an earlier request that was never read are skipped by
    /// sequence number; a datagram larger than the buffer is an error, not a cut reply.
    #[test]
    fn exchanges_end_where_the_kernel_ends_them() {
        use crate::kernel::link;
        in_fresh_netns(|| {
            let s = RtSocket::open().unwrap();
            s.strict_check().unwrap();
            let mut got = Vec::new();
            let lo = req(link::get_by_name("lo"), 0, 1);
            s.exchange(&lo, Some(1), Ends::AtFirstReply, |m| got.push(m.kind))
                .unwrap();
            assert_eq!(got, [libc::RTM_NEWLINK]);
            let none = req(link::get_by_name("nonexistent0"), 0, 2);
            let e = s
                .exchange(&none, Some(2), Ends::AtFirstReply, |_| ())
                .unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
            // Sent and never read: its reply is still queued when the next one comes.
            s.send(&req(link::get_by_name("lo"), 0, 3)).unwrap();
            let mut got = Vec::new();
            let dump = req(link::dump(), NLM_F_DUMP, 4);
            s.exchange(&dump, Some(4), Ends::AtDoneOrAck, |m| {
                got.push(seq_of(m.bytes))
            })
            .unwrap();
            assert_eq!(got, [4], "only lo, and only the dump's reply");
            s.send(&lo).unwrap();
            let mut small = Vec::with_capacity(64);
            let e = s.recv(&mut small, false).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE));
        });
    }

    #[test]
    fn splits_messages() {
        let mut b = Vec::new();
        for (kind, extra) in [(NLMSG_ERROR, 4usize), (NLMSG_DONE, 1)] {
            let len = NLMSG_HDRLEN + extra;
            b.extend_from_slice(&(len as u32).to_ne_bytes());
            b.extend_from_slice(&kind.to_ne_bytes());
            b.extend_from_slice(&[0u8; 10]);
            b.extend(std::iter::repeat_n(0u8, extra));
            while b.len() % 4 != 0 {
                b.push(0);
            }
        }
        let kinds: Vec<u16> = messages(&b).map(|m| m.kind).collect();
        assert_eq!(kinds, vec![NLMSG_ERROR, NLMSG_DONE]);
        assert_eq!(whole_messages(&b).map(|m| m.len()), Some(2));
        // The last message's padding may be missing; a cut one or stray bytes may not.
        assert_eq!(whole_messages(&b[..b.len() - 3]).map(|m| m.len()), Some(2));
        assert!(whole_messages(&b[..b.len() - 4]).is_none());
        let mut extra = b.clone();
        extra.extend_from_slice(&[1, 2, 3, 4]);
        assert!(whole_messages(&extra).is_none());
    }
}
