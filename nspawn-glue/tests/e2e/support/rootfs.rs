//! The containers' root filesystem: Debian bookworm minbase with iproute2 and ping,
//! made by debootstrap once and cached outside the repository
//! (`$NETPROV_TEST_CACHE`, default /var/cache/netprov-tests). It is built in a
//! temporary directory and renamed into place, so an interrupted build is never reused.
//!
//! The mirror is read from this machine's apt sources at run time.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

const SUITE: &str = "bookworm";

pub fn cache_dir() -> PathBuf {
    std::env::var_os("NETPROV_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/netprov-tests"))
}

/// The cached root filesystem, built first if missing (once per test process: the
/// tests of one binary run in parallel threads).
pub fn cached() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(build_if_missing).clone()
}

fn build_if_missing() -> PathBuf {
    let dir = cache_dir();
    let rootfs = dir.join(format!("rootfs-{SUITE}"));
    if rootfs.join("usr/bin/ping").exists() && rootfs.join("usr/bin/ip").exists() {
        return rootfs;
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let mirror = mirror().unwrap_or_else(|| {
        panic!("no apt source for {SUITE} in /etc/apt/sources.list{{,.d/*.sources,.d/*.list}}")
    });
    let tmp = dir.join(format!(".rootfs-{SUITE}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    eprintln!(
        "building {} with debootstrap from {mirror} (cached afterwards)",
        rootfs.display()
    );
    let started = Instant::now();
    let out = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=iproute2,iputils-ping",
            SUITE,
        ])
        .arg(&tmp)
        .arg(&mirror)
        .output()
        .expect("run debootstrap (Debian package debootstrap)");
    if !out.status.success() {
        let _ = fs::remove_dir_all(&tmp);
        panic!(
            "debootstrap failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Another run may have finished first; then keep its copy.
    if fs::rename(&tmp, &rootfs).is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    eprintln!("root filesystem built in {:.0?}", started.elapsed());
    rootfs
}

/// The first `deb` URI serving [`SUITE`] in the apt sources.
fn mirror() -> Option<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        more.sort();
        files.extend(more);
    }
    files.iter().find_map(|f| {
        let text = fs::read_to_string(f).ok()?;
        match f.extension().and_then(|e| e.to_str()) {
            Some("sources") => mirror_deb822(&text),
            _ if f.ends_with("sources.list") || f.extension().is_some_and(|e| e == "list") => {
                mirror_one_line(&text)
            }
            _ => None,
        }
    })
}

/// deb822 (`*.sources`): stanzas of `Key: value` lines separated by blank lines.
fn mirror_deb822(text: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |key: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().to_owned())
            })
        };
        let enabled = field("Enabled").is_none_or(|v| v != "no");
        let deb = field("Types")?.split_whitespace().any(|t| t == "deb");
        let suite = field("Suites")?.split_whitespace().any(|s| s == SUITE);
        let uri = field("URIs")?.split_whitespace().next()?.to_owned();
        (enabled && deb && suite).then_some(uri)
    })
}

/// One-line format: `deb [options] URI SUITE COMPONENTS...`.
fn mirror_one_line(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next()?.trim();
        let rest = line.strip_prefix("deb ")?.trim_start();
        let rest = match rest.strip_prefix('[') {
            Some(opts) => opts.split_once(']')?.1.trim_start(),
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let uri = words.next()?;
        (words.next()? == SUITE).then(|| uri.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Example hosts are reserved names (RFC 2606), not mirrors.
    #[test]
    fn deb822_picks_the_stanza_serving_the_suite() {
        let text = "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n\
                    Types: deb-src deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(
            mirror_deb822(text).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            mirror_deb822("Types: deb\nURIs: http://x.example/d\nSuites: trixie\n"),
            None
        );
        let disabled = "Types: deb\nEnabled: no\nURIs: http://x.example/d\nSuites: bookworm\n";
        assert_eq!(mirror_deb822(disabled), None);
    }

    #[test]
    fn one_line_format_with_and_without_options() {
        let text = "# deb http://old.example/debian bookworm main\n\
                    deb-src http://src.example/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            mirror_one_line(text).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            mirror_one_line("deb http://m.example/debian bookworm-updates main"),
            None
        );
    }
}
