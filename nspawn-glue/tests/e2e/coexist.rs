//! Coexistence with host network managers: the derived host-end names (`np-…`) match
//! none of this machine's stock systemd-networkd `.network` files (which would configure
//! them: `80-container-ve.network` matches `ve-*`), and every shipped "leave these
//! alone" snippet (networkd, NetworkManager, dhcpcd) covers all of them. Names come from
//! a seeded generator of ids and interface names, long ones (hashed) included.

use std::fs;
use std::path::Path;

use netprov::model::{ContainerId, IfName};
use netprov::props::names::veth_host;

const COEXIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/coexist");
const STOCK_NETWORKD: &str = "/usr/lib/systemd/network";

/// fnmatch(3) for the patterns these files use: `*`, `?` and literal characters.
fn glob(pat: &str, s: &str) -> bool {
    match pat.split_at_checked(1) {
        None => s.is_empty(),
        Some(("*", rest)) => (0..=s.len()).any(|i| s.is_char_boundary(i) && glob(rest, &s[i..])),
        Some(("?", rest)) => {
            !s.is_empty() && glob(rest, &s[s.chars().next().unwrap().len_utf8()..])
        }
        Some((c, rest)) => s.starts_with(c) && glob(rest, &s[c.len()..]),
    }
}

/// A small deterministic generator (xorshift64*).
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn word(&mut self, max: usize, extra: &[u8]) -> String {
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let len = 1 + (self.next() as usize) % max;
        (0..len)
            .map(|i| {
                let set: Vec<u8> = if i == 0 {
                    ALNUM.to_vec()
                } else {
                    ALNUM.iter().chain(extra).copied().collect()
                };
                set[(self.next() as usize) % set.len()] as char
            })
            .collect()
    }
}

/// Derived host-end names for generated (valid) ids and interface names.
fn derived_names() -> Vec<String> {
    let mut g = Gen(0x6e70_2d6e_616d_6573);
    let mut out = Vec::new();
    while out.len() < 2000 {
        let (Ok(id), Ok(ifn)) = (
            ContainerId::new(&g.word(40, b"-_.")),
            IfName::new(&g.word(15, b"-_")),
        ) else {
            continue;
        };
        out.push(veth_host(&id, &ifn).as_str().to_owned());
    }
    assert!(
        out.iter().any(|n| n.len() == 15),
        "hashed names generated too"
    );
    out
}

/// `Name=` patterns of the `[Match]` section of a .network file (space-separated).
fn match_names(text: &str) -> Vec<String> {
    let mut in_match = false;
    let mut out = Vec::new();
    for l in text.lines().map(str::trim) {
        if l.starts_with('[') {
            in_match = l == "[Match]";
        } else if let Some(v) = l.strip_prefix("Name=").filter(|_| in_match) {
            out.extend(v.split_whitespace().map(str::to_owned));
        }
    }
    out
}

#[test]
fn glob_matches_like_fnmatch() {
    assert!(glob("ve-*", "ve-web-wan"));
    assert!(!glob("ve-*", "np-web-wan"));
    assert!(glob("np-*", "np-"));
    assert!(glob("host0", "host0") && !glob("host0", "host01"));
    assert!(glob("a?c*", "abcde") && !glob("a?c", "ac"));
}

#[test]
fn no_stock_networkd_file_matches_a_derived_host_end() {
    let names = derived_names();
    let mut checked = 0;
    for e in fs::read_dir(STOCK_NETWORKD).expect("systemd's stock .network files") {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "network") {
            continue;
        }
        for pat in match_names(&fs::read_to_string(&p).unwrap()) {
            checked += 1;
            if let Some(n) = names.iter().find(|n| glob(&pat, n)) {
                panic!("{} (Name={pat}) matches derived host end {n}", p.display());
            }
        }
    }
    // The file the rename is about is among them.
    let ve = fs::read_to_string(Path::new(STOCK_NETWORKD).join("80-container-ve.network")).unwrap();
    assert_eq!(match_names(&ve), ["ve-*"]);
    assert!(checked >= 3, "{checked}");
}

#[test]
fn shipped_snippets_cover_every_derived_host_end() {
    let names = derived_names();
    let read = |p: &str| fs::read_to_string(Path::new(COEXIST).join(p)).unwrap();

    let networkd = read("systemd-networkd/10-netprov.network");
    let pats = match_names(&networkd);
    assert_eq!(pats, ["np-*"]);
    assert!(networkd.lines().any(|l| l == "Unmanaged=yes"));

    let nm = read("NetworkManager/90-netprov.conf");
    let nm_pats: Vec<&str> = nm
        .lines()
        .filter_map(|l| l.strip_prefix("unmanaged-devices+="))
        .flat_map(|v| v.split(';'))
        .filter_map(|v| v.strip_prefix("interface-name:"))
        .collect();
    assert!(nm.contains("[keyfile]"));

    let dhcpcd = read("dhcpcd.conf");
    let dh_pats: Vec<&str> = dhcpcd
        .lines()
        .filter_map(|l| l.strip_prefix("denyinterfaces "))
        .flat_map(|v| v.split_whitespace())
        .collect();

    for (what, pats) in [
        (
            "networkd",
            pats.iter().map(String::as_str).collect::<Vec<_>>(),
        ),
        ("NetworkManager", nm_pats),
        ("dhcpcd", dh_pats),
    ] {
        assert!(!pats.is_empty(), "{what}: no pattern");
        for n in &names {
            assert!(pats.iter().any(|p| glob(p, n)), "{what} does not cover {n}");
        }
        // And not nspawn's own veths, which networkd's stock file is for.
        assert!(!pats.iter().any(|p| glob(p, "ve-web")), "{what}");
    }
}
