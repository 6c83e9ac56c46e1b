//! Seeing the batch libnftables sends, so that it can be sent again without
//! libnftables ([`super::ruleset::compiled`]), and whether building it looked up a host.
//!
//! libnftables has no API that hands out the netlink batch it built: it writes the
//! batch to its own netfilter socket with one `sendmsg(2)`. The netprov executable
//! exports a `sendmsg` and a `getaddrinfo` of its own (main.rs; build.rs links them
//! with `--export-dynamic-symbol`), and the dynamic loader binds every library's
//! references to the executable's definitions before libc's — libnftables' included,
//! though it is `dlopen`ed with `RTLD_LOCAL` (that flag hides what it defines, not how
//! its own references resolve). Those functions call [`on_sendmsg`] /
//! [`on_getaddrinfo`] and then do exactly what libc's would: the `sendmsg` system
//! call, libc's own `getaddrinfo`.
//!
//! The hooks do nothing unless the calling thread is inside [`capturing`]. Only the
//! thread that runs libnftables opens a capture, and only around one run, so nothing
//! else is ever copied. A binary without the exported symbols (the unit-test harness)
//! captures nothing, and a capture that saw nothing is simply not cached.

use std::cell::RefCell;

/// What one thread did during [`capturing`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Every datagram sent with `sendmsg` on a netlink socket, in order.
    pub sent: Vec<Vec<u8>>,
    /// `getaddrinfo` was asked for a node that is not a numeric address: a host name,
    /// resolved through /etc/hosts or DNS.
    pub looked_up_hosts: bool,
}

thread_local! {
    static CAPTURE: RefCell<Option<Seen>> = const { RefCell::new(None) };
}

/// Runs `f` and returns what it returned together with what the calling thread sent
/// and looked up meanwhile.
pub fn capturing<T>(f: impl FnOnce() -> T) -> (T, Seen) {
    CAPTURE.with(|c| *c.borrow_mut() = Some(Seen::default()));
    // Reset even if `f` unwinds (netprov aborts on panic, but a test harness may not).
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CAPTURE.with(|c| c.borrow_mut().take());
        }
    }
    let reset = Reset;
    let out = f();
    let sent = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    drop(reset);
    (out, sent)
}

/// The hook of the executable's `sendmsg`: copies the datagram when the calling thread
/// is capturing and `fd` is a netlink socket. Never fails and never changes the call.
///
/// # Safety
/// `msg` is what the caller of `sendmsg(2)` passed: NULL or a valid `msghdr` whose
/// `msg_iov` points to `msg_iovlen` valid `iovec`s.
pub unsafe fn on_sendmsg(fd: libc::c_int, msg: *const libc::msghdr) {
    if msg.is_null() {
        return;
    }
    if !active() || !is_netlink(fd) {
        return;
    }
    // SAFETY: per the contract, msg and its iovecs are valid for reads.
    let datagram = unsafe {
        let m = &*msg;
        let iovs: &[libc::iovec] = if m.msg_iov.is_null() || m.msg_iovlen == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(m.msg_iov, m.msg_iovlen)
        };
        let mut d = Vec::with_capacity(iovs.iter().map(|v| v.iov_len).sum());
        for v in iovs.iter().filter(|v| !v.iov_base.is_null()) {
            d.extend_from_slice(std::slice::from_raw_parts(
                v.iov_base.cast::<u8>(),
                v.iov_len,
            ));
        }
        d
    };
    record(|seen| seen.sent.push(datagram));
}

/// The hook of the executable's `getaddrinfo`: notes a host-name lookup when the
/// calling thread is capturing. Never fails and never changes the call.
///
/// # Safety
/// `node` is NULL or a NUL-terminated string (the `getaddrinfo(3)` contract).
pub unsafe fn on_getaddrinfo(node: *const libc::c_char) {
    if node.is_null() || !active() {
        return;
    }
    // SAFETY: per the contract.
    let node = unsafe { std::ffi::CStr::from_ptr(node) };
    let numeric = node
        .to_str()
        .is_ok_and(|s| s.parse::<std::net::IpAddr>().is_ok());
    if !numeric {
        record(|seen| seen.looked_up_hosts = true);
    }
}

fn active() -> bool {
    CAPTURE
        .try_with(|c| c.try_borrow().map(|c| c.is_some()).unwrap_or(false))
        .unwrap_or(false)
}

fn record(f: impl FnOnce(&mut Seen)) {
    let _ = CAPTURE.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if let Some(seen) = c.as_mut() {
                f(seen);
            }
        }
    });
}

fn is_netlink(fd: libc::c_int) -> bool {
    // SAFETY: getsockname into a zeroed sockaddr_storage of the length we pass.
    unsafe {
        let mut sa: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        libc::getsockname(
            fd,
            (&mut sa as *mut libc::sockaddr_storage).cast(),
            &mut len,
        ) == 0
            && sa.ss_family == libc::AF_NETLINK as libc::sa_family_t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_on(fd: libc::c_int, parts: &[&[u8]]) {
        let mut iovs: Vec<libc::iovec> = parts
            .iter()
            .map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            })
            .collect();
        // SAFETY: zeroed msghdr with iovecs that outlive the call.
        unsafe {
            let mut m: libc::msghdr = std::mem::zeroed();
            m.msg_iov = iovs.as_mut_ptr();
            m.msg_iovlen = iovs.len() as _;
            on_sendmsg(fd, &m);
        }
    }

    #[test]
    fn notes_host_names_not_numeric_addresses() {
        let look = |nodes: &[&std::ffi::CStr]| {
            capturing(|| {
                for n in nodes {
                    // SAFETY: NUL-terminated literals.
                    unsafe { on_getaddrinfo(n.as_ptr()) };
                }
                // SAFETY: NULL is allowed (a service-only lookup).
                unsafe { on_getaddrinfo(std::ptr::null()) };
            })
            .1
            .looked_up_hosts
        };
        assert!(!look(&[c"10.0.0.1", c"fd00::1", c"::"]));
        assert!(look(&[c"10.0.0.1", c"example.com"]));
        assert!(look(&[c"localhost"]));
        // SAFETY: as above; outside a capture nothing is noted anywhere.
        unsafe { on_getaddrinfo(c"example.com".as_ptr()) };
        assert!(!look(&[]));
    }

    #[test]
    fn copies_only_netlink_datagrams_of_a_capturing_thread() {
        // SAFETY: plain socket(2) calls; closed below.
        let (nl, udp) = unsafe {
            (
                libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
                libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0),
            )
        };
        assert!(nl >= 0 && udp >= 0);
        send_on(nl, &[b"not captured"]);
        let ((), seen) = capturing(|| {
            send_on(nl, &[b"ab", b"", b"cd"]);
            send_on(udp, &[b"udp"]);
            std::thread::scope(|s| {
                s.spawn(|| send_on(nl, &[b"other thread"]));
            });
        });
        assert_eq!(seen.sent, vec![b"abcd".to_vec()]);
        assert!(!seen.looked_up_hosts);
        let ((), seen) = capturing(|| ());
        assert_eq!(seen, Seen::default());
        // SAFETY: closing the two sockets made above.
        unsafe {
            libc::close(nl);
            libc::close(udp);
        }
    }
}
