fn main() {
    // netprov does each container's in-netns work on a short-lived thread, and glibc
    // gives new threads their own malloc arenas (up to 8 per core) and keeps them: peak
    // RSS grew with the number of containers (45 MiB for 300). One arena keeps it flat
    // (16 MiB); allocation is not where netprov spends its time.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called before any other thread exists; only tunes the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    std::process::exit(netprov::cli::main());
}
