//! libnftnl objects (table, chain, rule, set) owned on the Rust side: allocated, given
//! attributes, serialized into a request or parsed from a message, and freed on drop.
//! Each use elsewhere is one safe call; the FFI contract is kept here, once.

use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;

use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::ProtoFamily;

use crate::nft::ffi::cstr_lossy;

/// One libnftnl object type and its functions, under one signature per operation.
///
/// # Safety
/// Implementations forward to libnftnl's own functions for that type; callers pass a
/// live object of that type (and, to `parse`, a whole netlink message).
pub unsafe trait Raw {
    unsafe fn alloc() -> *mut Self;
    unsafe fn free(p: *mut Self);
    unsafe fn set_str(p: *mut Self, attr: u16, v: *const c_char);
    unsafe fn set_u32(p: *mut Self, attr: u16, v: u32);
    unsafe fn get_str(p: *const Self, attr: u16) -> *const c_char;
    unsafe fn get_u32(p: *const Self, attr: u16) -> u32;
    unsafe fn build(nlh: *mut libc::nlmsghdr, p: *mut Self);
    unsafe fn parse(nlh: *const libc::nlmsghdr, p: *mut Self) -> c_int;
}

macro_rules! raw {
    ($t:ident: $alloc:ident, $free:ident, $set_str:ident, $set_u32:ident, $get_str:ident,
     $get_u32:ident, $build:ident, $parse:ident) => {
        // SAFETY: each function forwards to libnftnl's function of that name for
        // this type, with the caller's arguments: the caller keeps the trait's
        // contract (an `unsafe fn` body is an unsafe context in edition 2021).
        unsafe impl Raw for sys::$t {
            unsafe fn alloc() -> *mut Self {
                sys::$alloc()
            }
            unsafe fn free(p: *mut Self) {
                sys::$free(p)
            }
            unsafe fn set_str(p: *mut Self, attr: u16, v: *const c_char) {
                sys::$set_str(p, attr, v);
            }
            unsafe fn set_u32(p: *mut Self, attr: u16, v: u32) {
                sys::$set_u32(p, attr, v);
            }
            unsafe fn get_str(p: *const Self, attr: u16) -> *const c_char {
                sys::$get_str(p, attr)
            }
            unsafe fn get_u32(p: *const Self, attr: u16) -> u32 {
                sys::$get_u32(p, attr)
            }
            unsafe fn build(nlh: *mut libc::nlmsghdr, p: *mut Self) {
                sys::$build(nlh, p)
            }
            unsafe fn parse(nlh: *const libc::nlmsghdr, p: *mut Self) -> c_int {
                sys::$parse(nlh, p)
            }
        }
    };
}

raw!(nftnl_table: nftnl_table_alloc, nftnl_table_free, nftnl_table_set_str,
    nftnl_table_set_u32, nftnl_table_get_str, nftnl_table_get_u32,
    nftnl_table_nlmsg_build_payload, nftnl_table_nlmsg_parse);
raw!(nftnl_chain: nftnl_chain_alloc, nftnl_chain_free, nftnl_chain_set_str,
    nftnl_chain_set_u32, nftnl_chain_get_str, nftnl_chain_get_u32,
    nftnl_chain_nlmsg_build_payload, nftnl_chain_nlmsg_parse);
raw!(nftnl_rule: nftnl_rule_alloc, nftnl_rule_free, nftnl_rule_set_str,
    nftnl_rule_set_u32, nftnl_rule_get_str, nftnl_rule_get_u32,
    nftnl_rule_nlmsg_build_payload, nftnl_rule_nlmsg_parse);
raw!(nftnl_set: nftnl_set_alloc, nftnl_set_free, nftnl_set_set_str,
    nftnl_set_set_u32, nftnl_set_get_str, nftnl_set_get_u32,
    nftnl_set_nlmsg_build_payload, nftnl_set_nlmsg_parse);

/// An owned libnftnl object, freed on drop.
pub struct Obj<T: Raw>(NonNull<T>);

pub type TableObj = Obj<sys::nftnl_table>;
pub type ChainObj = Obj<sys::nftnl_chain>;
pub type RuleObj = Obj<sys::nftnl_rule>;
pub type SetObj = Obj<sys::nftnl_set>;

impl<T: Raw> Obj<T> {
    pub fn new() -> Self {
        // SAFETY: a plain constructor; NULL only when out of memory, which aborts as
        // Rust's own allocator does.
        let p = unsafe { T::alloc() };
        Self(NonNull::new(p).unwrap_or_else(|| std::process::abort()))
    }

    /// A new object with these string attributes (`NFTNL_*_TABLE`, `…_NAME`).
    pub fn with_strs(attrs: &[(u32, &CStr)]) -> Self {
        let o = Self::new();
        for (attr, v) in attrs {
            // SAFETY: live object; libnftnl copies the NUL-terminated string.
            unsafe { T::set_str(o.ptr(), *attr as u16, v.as_ptr()) };
        }
        o
    }

    /// The object one whole NEW* message describes (`None`: not parseable as one).
    pub fn parse(msg: &[u8]) -> Option<Self> {
        let o = Self::new();
        // SAFETY: live object; `msg` holds the whole message its header claims
        // (checked), which is all libnftnl reads.
        (whole_message(msg) && unsafe { T::parse(msg.as_ptr().cast(), o.ptr()) } >= 0).then_some(o)
    }

    pub fn ptr(&self) -> *mut T {
        self.0.as_ptr()
    }

    pub fn set_u32(&self, attr: u32, v: u32) {
        // SAFETY: live object; a plain integer.
        unsafe { T::set_u32(self.ptr(), attr as u16, v) }
    }

    pub fn u32(&self, attr: u32) -> u32 {
        // SAFETY: live object; an unset attribute reads 0.
        unsafe { T::get_u32(self.ptr(), attr as u16) }
    }

    /// A string attribute, copied (empty when unset).
    pub fn str(&self, attr: u32) -> String {
        // SAFETY: live object; the string (NULL when unset) lives as long as it.
        unsafe { cstr_lossy(T::get_str(self.ptr(), attr as u16)) }
    }

    /// One inet request or creation of type `kind` about this object.
    pub fn msg(&self, kind: i32, flags: i32, seq: u32) -> Vec<u8> {
        // SAFETY: live object; its payload is bounded by libnftnl's maximal message.
        nlmsg(kind, flags, seq, |nlh| unsafe { T::build(nlh, self.ptr()) })
    }
}

impl SetObj {
    /// The set's elements as one NEWSETELEM/GETSETELEM message.
    pub fn elems_msg(&self, kind: i32, flags: i32, seq: u32) -> Vec<u8> {
        // SAFETY: as in `msg`.
        nlmsg(kind, flags, seq, |nlh| unsafe {
            sys::nftnl_set_elems_nlmsg_build_payload(nlh, self.ptr())
        })
    }

    /// The set (name and elements) a NEWSETELEM message describes.
    pub fn parse_elems(msg: &[u8]) -> Option<Self> {
        let o = Self::new();
        // SAFETY: as in `parse`.
        (whole_message(msg)
            && unsafe { sys::nftnl_set_elems_nlmsg_parse(msg.as_ptr().cast(), o.ptr()) } >= 0)
            .then_some(o)
    }
}

impl<T: Raw> Drop for Obj<T> {
    fn drop(&mut self) {
        // SAFETY: allocated by `T::alloc`, freed exactly once.
        unsafe { T::free(self.ptr()) }
    }
}

/// `msg` holds at least a header and the whole length the header claims.
fn whole_message(msg: &[u8]) -> bool {
    msg.len() >= 16 && u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize <= msg.len()
}

/// One inet nf_tables message of `kind` whose payload `payload` writes.
fn nlmsg(kind: i32, flags: i32, seq: u32, payload: impl FnOnce(*mut libc::nlmsghdr)) -> Vec<u8> {
    written(|buf| {
        // SAFETY: buf is large enough for the header and any payload libnftnl writes
        // (its own maximal message size); the length is read back from the header it
        // wrote.
        unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                buf.as_mut_ptr().cast(),
                kind as u16,
                ProtoFamily::Inet as u16,
                flags as u16,
                seq,
            );
            payload(nlh);
            (*nlh).nlmsg_len as usize
        }
    })
}

/// Room for libnftnl's largest message ([`nftnl::nft_nlmsg_maxsize`]: 64 KiB and a
/// page) on pages of up to 64 KiB.
const SCRATCH_LEN: usize = 2 << 16;

/// The buffer libnftnl writes messages into, zero-initialised in `.bss`: the kernel
/// maps a page of it only when it is first touched, and a message touches one or two.
/// A zeroed heap buffer of the maximal size cost 17 page faults per process (glibc's
/// calloc clears heap memory it has handed out before), about 30 µs of every apply,
/// no-op included, since every observe builds host-table requests (docs/benchmarks.md,
/// "Round 8").
static SCRATCH: std::sync::Mutex<Scratch> = std::sync::Mutex::new(Scratch([0; SCRATCH_LEN]));

/// Aligned as malloc's memory is: libnftnl writes `struct nlmsghdr` and the attributes
/// at the start of the buffer.
#[repr(C, align(16))]
struct Scratch([u8; SCRATCH_LEN]);

/// The first `n` bytes `write` wrote into a buffer of libnftnl's largest message size
/// (it returns `n`). The buffer is [`SCRATCH`], and its first `n` bytes are zeroed again
/// after the copy. Nothing depends on the rest being zero: libnftnl builds every
/// message with libmnl, which writes every byte it counts in the message's length
/// (headers, attributes, padding), and only those `n` bytes are ever copied out. (A
/// writer may leave bytes past `n`, e.g. a nest it started and cancelled; the next
/// message overwrites what it uses.)
pub(super) fn written(write: impl FnOnce(&mut [u8]) -> usize) -> Vec<u8> {
    let max = nftnl::nft_nlmsg_maxsize() as usize;
    let mut guard = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    if max > SCRATCH_LEN {
        // Pages larger than 64 KiB: a zeroed buffer of the size libnftnl needs.
        let mut buf = vec![0u8; max];
        let n = write(&mut buf).min(max);
        buf.truncate(n);
        return buf;
    }
    let buf = &mut guard.0[..max];
    let n = write(buf).min(max);
    let out = buf[..n].to_vec();
    buf[..n].fill(0);
    out
}
