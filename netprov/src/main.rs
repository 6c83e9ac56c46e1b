// netprov's own `main` (C's), not std's runtime start: see `start` below.
#![cfg_attr(not(test), no_main)]

/// The process entry, called by glibc's `__libc_start_main`.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    start();
    tune_allocator();
    // std::process::exit runs std's exit cleanup (flushes stdout).
    std::process::exit(netprov::cli::main());
}

/// What std's runtime start (`lang_start`) does that matters to netprov, without the
/// rest. The rest is a stack-overflow handler (an alternate signal stack and two signal
/// handlers) and finding the main thread's stack guard, which glibc answers
/// (`pthread_getattr_np`) by reading and parsing `/proc/self/maps`: together 0.07 ms of
/// a 1.1 ms `--version` and 0.12 ms of a 1.7 ms no-op here (perf stat,
/// docs/benchmarks.md round 7). Without them a stack overflow ends the process with
/// SIGSEGV instead of a message and SIGABRT, and a panic names the thread `<unnamed>`
/// instead of `main`. Arguments need nothing: on glibc std takes them from
/// `.init_array`.
#[cfg(not(test))]
fn start() {
    // SAFETY: single-threaded start; fcntl/open/signal on fds 0-2 and SIGPIPE only.
    unsafe {
        // fds 0-2 open, as std ensures: started with one closed, the first file netprov
        // opens would take its number and receive its output.
        for fd in 0..3 {
            if libc::fcntl(fd, libc::F_GETFD) == -1
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
                && libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) != fd
            {
                libc::abort();
            }
        }
        // A closed pipe is an EPIPE error, not death by SIGPIPE (std's default).
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

#[cfg(not(test))]
fn tune_allocator() {
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
