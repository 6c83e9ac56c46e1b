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
