//! Link settings of the `netprov` executable (the library is unaffected).
//!
//! * Exports the executable's `sendmsg` and `getaddrinfo` to the libraries it loads
//!   (see src/main.rs and src/nft/capture.rs): an executable exports no symbols unless
//!   told to.
//! * Links the unwinder statically instead of loading `libgcc_s.so.1`. Rust's std asks
//!   for `-lgcc_s` by name (for `_Unwind_*`, used here only to print a backtrace, as
//!   netprov aborts on panic); a `libgcc_s.a` that is a copy of gcc's own static
//!   unwinder (`libgcc_eh.a`, what `gcc -static-libgcc` links) found first on the
//!   search path satisfies it. Why: every process start then maps one library less
//!   and skips libgcc_s's constructor, whose CPUID instructions are VM exits (~6 µs
//!   each here): 0.06–0.11 ms of a 0.9 ms process start, measured A/B
//!   (docs/benchmarks.md, "Round 5"). If gcc or its `libgcc_eh.a` cannot be found, the
//!   build links libgcc_s as before.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    for sym in ["sendmsg", "getaddrinfo"] {
        println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol={sym}");
    }
    static_unwinder();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
}

fn static_unwinder() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let Ok(out) = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let eh = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // `-print-file-name` echoes the bare name when it does not find the file.
    if !out.status.success() || !eh.is_absolute() || !eh.is_file() {
        return;
    }
    let dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("unwind");
    std::fs::create_dir_all(&dir).expect("create OUT_DIR/unwind");
    std::fs::copy(&eh, dir.join("libgcc_s.a")).expect("copy libgcc_eh.a");
    println!("cargo:rustc-link-search=native={}", dir.display());
}
