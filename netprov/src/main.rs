fn main() {
    // netprov does each container's in-netns work on a short-lived thread, and glibc
    // gives new threads their own malloc arenas (up to 8 per core) and keeps them: peak
    // RSS grew with the number of containers (45 MiB for 300). One arena keeps it flat
    // (16 MiB); allocation is not where netprov spends its time.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called before any other thread exists; only tunes the allocator.
    //
    // The heap is never trimmed and grows in 1 MiB steps: netprov frees and allocates
    // 64 KiB message buffers (its own, libnftnl's, libnftables') over and over, and
    // glibc's default (trim when 128 KiB are free at the top) gave each one back to the
    // kernel and faulted it in again — 16 page faults each time, a fifth of a no-op
    // apply's page faults. Peak RSS is unchanged: untouched pages cost nothing, and the
    // high-water mark is what it was.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TOP_PAD, 1 << 20);
        // From the heap, not mmap, up to 4 MiB: libnftables allocates a 128 KiB hash
        // table per cache (see nft::ffi's heap prefault), and a fresh mapping for each
        // is 32 page faults every time.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
    std::process::exit(netprov::cli::main());
}

/// libc's `sendmsg`, interposed for libnftables: every library's `sendmsg` binds to
/// this definition (exported by build.rs), which lets `nft::capture` copy the batch
/// libnftables builds so that a later load of the same ruleset can send it without
/// loading libnftables (see netprov/src/nft/capture.rs). The system call is made
/// directly, as glibc's wrapper makes it; nothing else changes.
///
/// # Safety
/// The `sendmsg(2)` contract.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(
    fd: libc::c_int,
    msg: *const libc::msghdr,
    flags: libc::c_int,
) -> libc::ssize_t {
    // SAFETY: the caller's arguments, passed on as they came.
    unsafe {
        netprov::nft::capture::on_sendmsg(fd, msg);
        // Passed as longs: `syscall` reads every argument as one.
        libc::syscall(
            libc::SYS_sendmsg,
            libc::c_long::from(fd),
            msg,
            libc::c_long::from(flags),
        ) as libc::ssize_t
    }
}

/// libc's `getaddrinfo`, interposed for libnftables like `sendmsg` above: notes a host
/// name looked up while a ruleset is compiled (such a batch is never cached), then
/// calls libc's own.
///
/// # Safety
/// The `getaddrinfo(3)` contract.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const libc::c_char,
    service: *const libc::c_char,
    hints: *const libc::addrinfo,
    res: *mut *mut libc::addrinfo,
) -> libc::c_int {
    type GetAddrInfo = unsafe extern "C" fn(
        *const libc::c_char,
        *const libc::c_char,
        *const libc::addrinfo,
        *mut *mut libc::addrinfo,
    ) -> libc::c_int;
    static NEXT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: RTLD_NEXT from the executable finds the next definition in load order,
    // libc's; the address is that function, of the type above.
    let next = *NEXT
        .get_or_init(|| unsafe { libc::dlsym(libc::RTLD_NEXT, c"getaddrinfo".as_ptr()) as usize });
    // Not found, or this very function (a statically linked build has no libc after
    // it): fail the lookup rather than recurse.
    if next == 0 || next == getaddrinfo as *const () as usize {
        return libc::EAI_SYSTEM;
    }
    // SAFETY: the caller's arguments, passed on; `next` is libc's getaddrinfo.
    unsafe {
        netprov::nft::capture::on_getaddrinfo(node);
        std::mem::transmute::<usize, GetAddrInfo>(next)(node, service, hints, res)
    }
}
