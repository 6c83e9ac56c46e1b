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
//! * Links libnftnl statically where the C compiler finds `libnftnl.a` (Debian's
//!   libnftnl-dev ships it), else as a shared library. The libmnl functions a static
//!   libnftnl calls come from netprov itself (`src/nft/libmnl.rs`, compiled only then:
//!   `cfg(netprov_libmnl)`) when that file defines every one the archive calls (`nm`
//!   lists them), else from the shared libmnl (libmnl-dev has no archive): one more
//!   library less to map at every start (docs/benchmarks.md, "Round 14");
//!   `NETPROV_LIBMNL=shared` keeps the shared one. nftnl-sys's and mnl-sys's own
//!   linking is turned off in .cargo/config.toml. Why static: a process start then
//!   maps one library less and skips libnftnl's symbol lookups and relocations — 21
//!   page faults and 0.1–0.2 ms of a 1.7 ms no-op apply, measured A/B
//!   (docs/benchmarks.md, "Round 8"). libnftables,
//!   which netprov loads only for container rulesets, brings its own shared libnftnl:
//!   the executable exports none of its copy's symbols, so the two never meet.
//!   `NETPROV_NFTNL=shared` links the shared library instead.
//! * Packs the executable's relative relocations (`-z pack-relative-relocs`, DT_RELR;
//!   glibc 2.36 and later load it): its 3,000 relative relocations are a 1 KB bitmap
//!   instead of a 76 KB table that the loader reads at every process start. Measured
//!   A/B, a cold apply 55–140 µs faster and 10 page faults fewer (docs/benchmarks.md,
//!   "Round 13"). `NETPROV_RELR=off` links the plain table (a glibc before 2.36, a
//!   linker without the option).
//! * Release builds on Linux lay out the code a cold apply, a no-op and a destroy run
//!   together, first in the executable (`link/hot-text.ld`, a linker script that adds
//!   an output section `.text.hot` before `.text`). Why: a process start faults its
//!   code in 64 KiB windows; with the run's functions spread over 3 MB of code a cold
//!   apply took 47 such faults, gathered 33 (docs/benchmarks.md, "Round 11"). The
//!   script names functions by their mangled names *without* the hash suffix, as
//!   patterns, so a dependency or toolchain update keeps it valid (an unmatched
//!   pattern only means that function stays where it was); `bench/hot-text generate`
//!   rewrites it from callgrind runs and `bench/hot-text check` (run by CI) reports how
//!   much of it still matches. `NETPROV_HOT_TEXT=off` links without it.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(netprov_libmnl)");
    for sym in ["sendmsg", "getaddrinfo"] {
        println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol={sym}");
    }
    static_unwinder();
    libnftnl();
    hot_text();
    packed_relocations();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rerun-if-env-changed=NETPROV_NFTNL");
    println!("cargo:rerun-if-env-changed=NETPROV_LIBMNL");
    println!("cargo:rerun-if-env-changed=NM");
    println!("cargo:rerun-if-env-changed=NETPROV_HOT_TEXT");
    println!("cargo:rerun-if-env-changed=NETPROV_RELR");
}

/// A build-script variable or setting, empty when unset.
fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_default()
}

fn hot_text() {
    // Debug builds (the tests) skip it: their layout does not matter, and matching the
    // patterns against a debug build's many more sections only slows the link.
    if env("PROFILE") != "release"
        || env("CARGO_CFG_TARGET_OS") != "linux"
        || env("NETPROV_HOT_TEXT") == "off"
    {
        return;
    }
    let script = PathBuf::from(env("CARGO_MANIFEST_DIR")).join("link/hot-text.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    if script.is_file() {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}

fn packed_relocations() {
    if env("CARGO_CFG_TARGET_OS") != "linux"
        || env("CARGO_CFG_TARGET_ENV") != "gnu"
        || env("NETPROV_RELR") == "off"
    {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}

/// The C compiler's path of library file `name` (e.g. `libgcc_eh.a`), if it has one.
fn cc_file(name: &str) -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .arg(format!("-print-file-name={name}"))
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // `-print-file-name` echoes the bare name when it does not find the file.
    (out.status.success() && p.is_absolute() && p.is_file()).then_some(p)
}

fn libnftnl() {
    let archive = match std::env::var("NETPROV_NFTNL").as_deref() {
        Ok("shared") => None,
        _ => cc_file("libnftnl.a"),
    };
    match archive {
        // As linker arguments, which come after every crate and library on the link
        // line: a static archive only resolves what is undefined before it, and the
        // crates that call libnftnl come in any order.
        Some(a) => {
            println!("cargo:rustc-link-arg={}", a.display());
            match own_libmnl(&a) {
                // Undefined from the start, so that the linker takes them from the
                // netprov library, which it reads before the archive that calls them.
                Some(names) => {
                    println!("cargo:rustc-cfg=netprov_libmnl");
                    for n in names {
                        println!("cargo:rustc-link-arg=-Wl,--undefined={n}");
                    }
                }
                None => println!("cargo:rustc-link-arg=-lmnl"),
            }
        }
        None => {
            println!("cargo:rustc-link-lib=nftnl");
            println!("cargo:rustc-link-lib=mnl");
        }
    }
}

/// The libmnl functions that the libnftnl `archive` calls, if src/nft/libmnl.rs defines
/// every one of them; `None` (link the shared libmnl) when one is missing — a libnftnl
/// newer than that file — when `nm` cannot tell, or with `NETPROV_LIBMNL=shared`. Never
/// some of each: a batch or socket made by one copy must not meet the other's code.
fn own_libmnl(archive: &Path) -> Option<Vec<String>> {
    // Only the targets whose mnl-sys linking .cargo/config.toml turns off: elsewhere
    // libmnl.so is on the link line anyway, and the executable would export these.
    let overridden = matches!(env("CARGO_CFG_TARGET_ARCH").as_str(), "x86_64" | "aarch64");
    if env("NETPROV_LIBMNL") == "shared" || !overridden || env("CARGO_CFG_TARGET_ENV") != "gnu" {
        return None;
    }
    let src = PathBuf::from(env("CARGO_MANIFEST_DIR")).join("src/nft/libmnl.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    let text = std::fs::read_to_string(&src).ok()?;
    let ours: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("unsafe extern \"C\" fn mnl_"))
        .filter_map(|rest| rest.split('(').next())
        .collect();
    let nm = std::env::var("NM").unwrap_or_else(|_| "nm".into());
    let out = Command::new(nm)
        .arg("--undefined-only")
        .arg(archive)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    let needed: BTreeSet<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("mnl_"))
        .collect();
    let all_ours = needed.iter().all(|n| ours.contains(&n["mnl_".len()..]));
    (!needed.is_empty() && all_ours).then(|| needed.into_iter().map(String::from).collect())
}

fn static_unwinder() {
    let Some(eh) = cc_file("libgcc_eh.a") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("unwind");
    std::fs::create_dir_all(&dir).expect("create OUT_DIR/unwind");
    std::fs::copy(&eh, dir.join("libgcc_s.a")).expect("copy libgcc_eh.a");
    println!("cargo:rustc-link-search=native={}", dir.display());
}
