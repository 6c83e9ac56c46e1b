//! Expressions nftnl 0.9 lacks or builds differently from what the kernel dumps back,
//! written from libnftnl attributes directly.

use std::ffi::CStr;
use std::ptr::NonNull;

use nftnl::expr::Expression;
use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{ProtoFamily, Rule};

/// `[ip|ip6] saddr` loaded into `reg` (a 128-bit register number). In a concatenation
/// the interface name fills register 1 (16 bytes) and the address follows in 2.
pub(super) fn saddr(fam: i32, reg: i32) -> Payload {
    let (offset, len) = if fam == libc::NFPROTO_IPV4 {
        (12, 4)
    } else {
        (8, 16)
    };
    Payload {
        offset,
        len,
        dreg: reg as u32,
    }
}

/// A network-header payload load into a chosen register (the crate's always uses 1).
pub(super) struct Payload {
    offset: u32,
    len: u32,
    dreg: u32,
}

impl Expression for Payload {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        expr(
            c"payload",
            &[
                (sys::NFTNL_EXPR_PAYLOAD_DREG, self.dreg),
                (
                    sys::NFTNL_EXPR_PAYLOAD_BASE,
                    libc::NFT_PAYLOAD_NETWORK_HEADER as u32,
                ),
                (sys::NFTNL_EXPR_PAYLOAD_OFFSET, self.offset),
                (sys::NFTNL_EXPR_PAYLOAD_LEN, self.len),
            ],
        )
    }
}

/// `lookup reg 1 @set` by name (the set is in the same table, possibly created in the
/// same batch: the kernel finds it by name in the next generation).
pub(super) struct Lookup {
    set: &'static CStr,
}

impl Lookup {
    pub(super) fn new(set: &'static CStr) -> Self {
        Self { set }
    }
}

impl Expression for Lookup {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = expr(
            c"lookup",
            &[
                (sys::NFTNL_EXPR_LOOKUP_SREG, libc::NFT_REG_1 as u32),
                // The kernel always dumps the flags; send them so both sides compare
                // equal.
                (sys::NFTNL_EXPR_LOOKUP_FLAGS, 0),
            ],
        );
        // SAFETY: a live expression; the set name is copied.
        unsafe {
            sys::nftnl_expr_set_str(
                e.as_ptr(),
                sys::NFTNL_EXPR_LOOKUP_SET as u16,
                self.set.as_ptr(),
            )
        };
        e
    }
}

/// `NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED` (`<linux/netfilter/nf_nat.h>`).
pub(super) const NAT_FLAGS: u32 = 0x1 | 0x2;

/// `dnat to <reg 1>:<reg 2>` with every attribute the kernel dumps back (the max
/// registers equal to the min ones, the range flags it would add itself), so the
/// generated rule and the kernel's compare equal. The crate's `Nat` sends only the mins.
pub(super) struct DNat {
    pub(super) family: ProtoFamily,
}

impl Expression for DNat {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        expr(
            c"nat",
            &[
                (sys::NFTNL_EXPR_NAT_TYPE, libc::NFT_NAT_DNAT as u32),
                (sys::NFTNL_EXPR_NAT_FAMILY, self.family as u32),
                (sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, libc::NFT_REG_1 as u32),
                (sys::NFTNL_EXPR_NAT_REG_ADDR_MAX, libc::NFT_REG_1 as u32),
                (sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, libc::NFT_REG_2 as u32),
                (sys::NFTNL_EXPR_NAT_REG_PROTO_MAX, libc::NFT_REG_2 as u32),
                (sys::NFTNL_EXPR_NAT_FLAGS, NAT_FLAGS),
            ],
        )
    }
}

/// `RTN_LOCAL` from `<linux/rtnetlink.h>`, the address type `fib` reports.
pub(super) const RTN_LOCAL: u32 = 2;
/// `NFT_FIB_RESULT_ADDRTYPE`, `NFTA_FIB_F_DADDR` from `<linux/netfilter/nf_tables.h>`.
pub(super) const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
pub(super) const NFTA_FIB_F_DADDR: u32 = 1 << 1;

/// `fib daddr type` into register 1 — nftnl 0.9 has no fib expression, so this builds
/// it from the libnftnl attributes directly.
pub(super) struct FibDaddrType;

impl Expression for FibDaddrType {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        expr(
            c"fib",
            &[
                (sys::NFTNL_EXPR_FIB_DREG, libc::NFT_REG_1 as u32),
                (sys::NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE),
                (sys::NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR),
            ],
        )
    }
}

/// A libnftnl expression `name` with these integer attributes, for a rule to take over
/// (`Expression::to_expr`).
fn expr(name: &CStr, attrs: &[(u32, u32)]) -> NonNull<sys::nftnl_expr> {
    // SAFETY: nftnl_expr_alloc returns an owned expression (NULL only when out of
    // memory: abort, as Rust's allocator does); the setters copy plain integers.
    unsafe {
        let e = NonNull::new(sys::nftnl_expr_alloc(name.as_ptr()))
            .unwrap_or_else(|| std::process::abort());
        for &(attr, v) in attrs {
            sys::nftnl_expr_set_u32(e.as_ptr(), attr as u16, v);
        }
        e
    }
}
