//! `sysctl`: keys, values and the `/proc/sys` path they write.
//!
//! Only per-netns subtrees of `net.` are accepted. Everything else under
//! `/proc/sys` (and `net.core.*` except `somaxconn` and `xfrm_*`) is global: it either
//! does not exist in a container's `/proc/sys/net` or would change the whole host.

use std::collections::BTreeMap;

use super::errors::{key_path, problem};
use super::raw::{SysctlValue, Sysctls};
use crate::error::Invalid;
use crate::model::Sysctl;

const PER_NETNS: &[&str] = &[
    "net.ipv4.",
    "net.ipv6.",
    "net.netfilter.",
    "net.unix.",
    "net.mptcp.",
];
const VALUE_MAX: usize = 4096;

/// What validation knows about the container a sysctl is for.
pub struct Container<'a> {
    /// Its interface names (container side, macvlans included).
    pub ifnames: Vec<&'a str>,
    /// It runs in an adopted netns, which may hold interfaces netprov does not manage.
    pub adopted: bool,
}

/// Checks every entry against the kernel's side as `probe` reads it (the host's
/// `/proc/sys` through [`with_host_probe`]; a fake in tests, see [`kernel`]); `Err`
/// holds all problems.
pub(super) fn validate_with(
    raw: &Sysctls,
    c: &Container,
    probe: &Probe<'_>,
) -> Result<Vec<Sysctl>, Vec<Invalid>> {
    let mut out: BTreeMap<String, Sysctl> = BTreeMap::new();
    let mut errs = Vec::new();
    let mut add =
        |path: String, key: &str, value: String, errs: &mut Vec<Invalid>| match entry(key, value)
            .and_then(|s| kernel(s, c, probe))
        {
            Ok(s) => {
                if out.insert(s.key.clone(), s).is_some() {
                    errs.push(problem(path, format!("{key:?} is set twice")));
                }
            }
            Err(m) => errs.push(problem(path, m)),
        };
    match raw {
        Sysctls::Text(text) => {
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                    continue;
                }
                let at = |m: String| problem("sysctl", format!("line {}: {m}", n + 1));
                let Some((k, v)) = line.split_once('=') else {
                    errs.push(at(format!("{line:?} is not key=value")));
                    continue;
                };
                let k = k.trim();
                if k.starts_with('-') {
                    errs.push(at(format!(
                        "{k:?}: netprov applies every sysctl; drop the leading '-'"
                    )));
                    continue;
                }
                let before = errs.len();
                add("sysctl".into(), k, v.trim().to_owned(), &mut errs);
                for e in &mut errs[before..] {
                    e.message = format!("line {}: {}", n + 1, e.message);
                }
            }
        }
        Sysctls::Map(map) => {
            for (k, v) in map {
                let value = match v {
                    SysctlValue::Bool(b) => u8::from(*b).to_string(),
                    SysctlValue::Number(n) => n.to_string(),
                    SysctlValue::Text(s) => s.trim().to_owned(),
                };
                add(key_path("sysctl", k), k, value, &mut errs);
            }
        }
    }
    if errs.is_empty() {
        Ok(out.into_values().collect())
    } else {
        Err(errs)
    }
}

fn entry(key: &str, value: String) -> Result<Sysctl, String> {
    let path = proc_path(key)?;
    let per_netns = PER_NETNS.iter().any(|p| key.starts_with(p))
        || key == "net.core.somaxconn"
        || key.starts_with("net.core.xfrm_");
    if !per_netns {
        return Err(format!(
            "{key:?} is not a per-network-namespace sysctl: only net.ipv4.*, net.ipv6.*, \
             net.netfilter.*, net.unix.*, net.mptcp.*, net.core.somaxconn and \
             net.core.xfrm_* are accepted; other keys are global to the host and do not \
             exist in the container's /proc/sys/net"
        ));
    }
    if value.is_empty() {
        return Err(format!("{key:?} has an empty value"));
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err(format!(
            "the value of {key:?} contains a newline or NUL; a value is one line"
        ));
    }
    if value.len() > VALUE_MAX {
        return Err(format!(
            "the value of {key:?} is {} bytes, at most {VALUE_MAX}",
            value.len()
        ));
    }
    Ok(Sysctl {
        key: key.to_owned(),
        path,
        value,
    })
}

/// What reading `/proc/sys/<path>` on this host gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probed {
    /// The value as the kernel prints it.
    Value(String),
    /// No such file: the key does not exist in this kernel.
    Missing,
    /// EACCES even for root: a write-only key (e.g. `net.ipv4.route.flush`).
    WriteOnly,
    /// A directory of keys (`net.ipv4.conf.all`), not a key.
    Directory,
    /// Anything else (e.g. EIO for an unset `stable_secret`); nothing can be concluded.
    Unknown,
    /// `/proc/sys/net` itself is not there (no procfs): the check is skipped.
    NoProc,
}

pub(super) type Probe<'a> = dyn Fn(&str) -> Probed + 'a;

/// Runs `f` with a probe of the host's `/proc/sys` that reads each path at most once:
/// a multi-file apply names the same keys in every file. The memo lives for this one
/// call: the files of one invocation are checked against one reading of the host.
pub(super) fn with_host_probe<T>(f: impl FnOnce(&Probe<'_>) -> T) -> T {
    with_memo(&host_probe, f)
}

/// Runs `f` with `inner`, each path asked of `inner` at most once.
fn with_memo<T>(inner: &Probe<'_>, f: impl FnOnce(&Probe<'_>) -> T) -> T {
    let memo = std::cell::RefCell::new(std::collections::HashMap::<String, Probed>::new());
    let probe = |path: &str| -> Probed {
        if let Some(p) = memo.borrow().get(path) {
            return p.clone();
        }
        let p = inner(path);
        memo.borrow_mut().insert(path.to_owned(), p.clone());
        p
    };
    f(&probe)
}

fn host_probe(path: &str) -> Probed {
    use std::io::Read;
    // One path lookup, not three (is /proc/sys/net a directory, is the key one, read
    // it): each lookup of `…/sys/net` may compare one dentry per netns (see
    // kernel::procsys). So open first, and ask whether `sys/net` exists only when the
    // open failed.
    let Ok(sys) = crate::kernel::procsys::for_netns("") else {
        return Probed::NoProc;
    };
    let no_proc = || {
        sys.open("net", false)
            .and_then(|f| f.metadata())
            .map(|m| !m.is_dir())
            .unwrap_or(true)
    };
    match sys.open(path, false) {
        Ok(mut f) => {
            if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                return Probed::Directory;
            }
            let mut v = String::new();
            match f.read_to_string(&mut v) {
                Ok(_) => Probed::Value(v),
                Err(_) => Probed::Unknown,
            }
        }
        Err(_) if no_proc() => Probed::NoProc,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Probed::Missing,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && is_root() => {
            Probed::WriteOnly
        }
        Err(_) => Probed::Unknown,
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Checks `s` against what the kernel will do with it, without creating a netns: the
/// host's `/proc/sys/net` stands in for the container's (the per-netns subtrees are
/// the same; a key the host kernel lacks, the container's lacks too).
///
/// * The key must exist. A per-interface key (`net.ipv{4,6}.{conf,neigh}.<if>.*`) is
///   looked up under `default` instead, and `<if>` must be one of the container's
///   interfaces (or `all`, `default`, `lo`) — unless the netns is adopted, where other
///   interfaces may exist.
/// * A write-only key is refused: its value can never be read back, so it never
///   converges.
/// * A key whose value the kernel prints as integers takes the same number of integers,
///   written the way the kernel prints them back (decimal, no sign `+`, no leading
///   zeros): `01` would be written as 1 and read back as `1`, and never match; the
///   kernel parses `010` as octal 8 and `0x10` as 16. `true`, `yes` are not integers.
///   Other keys (strings like `tcp_congestion_control`) are taken as written.
fn kernel(s: Sysctl, c: &Container, probe: &Probe<'_>) -> Result<Sysctl, String> {
    let key = &s.key;
    let comps: Vec<&str> = s.path.split('/').collect();
    let probe_path = match comps.as_slice() {
        ["net", "ipv4" | "ipv6", "conf" | "neigh", ifname, _, ..] => {
            let known = matches!(*ifname, "all" | "default" | "lo") || c.ifnames.contains(ifname);
            if !known && !c.adopted {
                return Err(format!(
                    "{key:?} is for interface {ifname:?}, which this container does not have (have: {}); netprov creates the netns, so no other interface will exist in it",
                    if c.ifnames.is_empty() { "none".to_owned() } else { c.ifnames.join(", ") }
                ));
            }
            let mut p = comps.clone();
            if !matches!(*ifname, "all" | "default") {
                p[3] = "default";
            }
            p.join("/")
        }
        _ => s.path.clone(),
    };
    match probe(&probe_path) {
        Probed::Missing => Err(format!(
            "{key:?} does not exist: there is no /proc/sys/{probe_path} in this kernel"
        )),
        Probed::Directory => Err(format!(
            "{key:?} is a group of sysctls (/proc/sys/{probe_path} is a directory), not one key"
        )),
        Probed::WriteOnly => Err(format!(
            "{key:?} is write-only (/proc/sys/{probe_path} cannot be read back), so netprov could never tell whether it is set"
        )),
        Probed::Value(current) => {
            let current: Vec<&str> = current.split_whitespace().collect();
            let integers = !current.is_empty() && current.iter().all(|w| w.parse::<i64>().is_ok());
            if !integers {
                return Ok(s);
            }
            let wanted: Vec<&str> = s.value.split_whitespace().collect();
            if let Some(w) = wanted.iter().find(|w| !canonical_integer(w)) {
                return Err(match w.parse::<i64>() {
                    Ok(n) => format!(
                        "{key:?} = {w:?}: the kernel reads this back as {n}, so it would never match; write {n}"
                    ),
                    Err(_) => format!(
                        "{key:?} takes {} (the kernel prints {:?}); {w:?} is not a decimal integer",
                        if current.len() == 1 { "an integer".to_owned() } else { format!("{} integers", current.len()) },
                        current.join(" ")
                    ),
                });
            }
            if wanted.len() != current.len() {
                return Err(format!(
                    "{key:?} takes {} integers (the kernel prints {:?}), not {}",
                    current.len(),
                    current.join(" "),
                    wanted.len()
                ));
            }
            Ok(s)
        }
        Probed::Unknown | Probed::NoProc => Ok(s),
    }
}

/// `0`, `-5`, `42`: how the kernel prints an integer sysctl.
fn canonical_integer(w: &str) -> bool {
    let digits = w.strip_prefix('-').unwrap_or(w);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && w != "-0"
        && w.parse::<i64>().is_ok()
}

/// `net.ipv4.conf.eth0/100.forwarding` → `net/ipv4/conf/eth0.100/forwarding`: `.`
/// separates components and `/` inside one stands for a literal dot, as in sysctl(8).
pub fn proc_path(key: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for comp in key.split('.') {
        let comp = comp.replace('/', ".");
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(format!(
                "{key:?} has an empty, \".\" or \"..\" component; keys look like net.ipv4.ip_forward"
            ));
        }
        if let Some(c) = comp.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!("{key:?} contains {c:?}"));
        }
        parts.push(comp);
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel with a few keys, as the host's /proc/sys would show them.
    fn fake(path: &str) -> Probed {
        let v = match path {
            "net/ipv4/ip_forward" | "net/ipv6/conf/all/forwarding" => "0\n",
            "net/ipv4/conf/default/forwarding" | "net/ipv4/conf/all/forwarding" => "0\n",
            "net/ipv4/neigh/default/gc_stale_time" => "60\n",
            "net/ipv4/tcp_fin_timeout" => "60\n",
            "net/core/somaxconn" => "4096\n",
            "net/core/xfrm_acq_expires" => "30\n",
            "net/ipv4/tcp_rmem" => "4096\t131072\t6291456\n",
            "net/ipv4/tcp_congestion_control" => "cubic\n",
            "net/ipv4/ip_local_reserved_ports" => "\n",
            "net/ipv4/route/flush" => return Probed::WriteOnly,
            "net/ipv4/conf/all" | "net/ipv4/route" => return Probed::Directory,
            "net/ipv6/conf/default/stable_secret" => return Probed::Unknown,
            _ => return Probed::Missing,
        };
        Probed::Value(v.into())
    }

    fn container() -> Container<'static> {
        Container {
            ifnames: vec!["eth0", "mv-eth0"],
            adopted: false,
        }
    }

    fn validate(raw: &Sysctls) -> Result<Vec<Sysctl>, Vec<Invalid>> {
        validate_with(raw, &container(), &fake)
    }

    fn text(s: &str) -> Result<Vec<Sysctl>, Vec<Invalid>> {
        validate(&Sysctls::Text(s.into()))
    }

    fn one(line: &str) -> Result<Sysctl, String> {
        text(line)
            .map(|mut v| v.remove(0))
            .map_err(|e| e[0].message.clone())
    }

    #[test]
    fn keys_must_exist_and_be_readable() {
        let e = one("net.ipv4.no_such_key=1").unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        let e = one("net.ipv4.route.flush=1").unwrap_err();
        assert!(e.contains("write-only"), "{e}");
        let e = one("net.ipv4.route=1").unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
        assert!(one("net.ipv6.conf.default.stable_secret=::1").is_ok());
    }

    #[test]
    fn per_interface_keys_need_the_containers_interfaces() {
        for ok in [
            "net.ipv4.conf.eth0.forwarding=1",
            "net.ipv4.conf.mv-eth0.forwarding=1",
            "net.ipv4.conf.lo.forwarding=1",
            "net.ipv4.conf.all.forwarding=1",
            "net.ipv4.neigh.eth0.gc_stale_time=30",
        ] {
            assert!(one(ok).is_ok(), "{ok}");
        }
        let e = one("net.ipv4.conf.wan.forwarding=1").unwrap_err();
        assert!(e.contains("does not have (have: eth0, mv-eth0)"), "{e}");
        let e = one("net.ipv4.conf.eth0.nope=1").unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        // An adopted netns may hold interfaces netprov does not manage.
        let adopted = Container {
            ifnames: vec![],
            adopted: true,
        };
        let raw = Sysctls::Text("net.ipv4.conf.eth0/100.forwarding=1".into());
        assert!(validate_with(&raw, &adopted, &fake).is_ok());
    }

    #[test]
    fn integer_values_in_the_kernels_form() {
        for ok in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.tcp_rmem=4096 87380 6291456",
            "net.ipv4.tcp_rmem=1\t2\t3",
        ] {
            assert!(one(ok).is_ok(), "{ok}");
        }
        let e = one("net.ipv4.ip_forward=01").unwrap_err();
        assert!(
            e.contains("reads this back as 1") && e.contains("write 1"),
            "{e}"
        );
        let e = one("net.ipv4.ip_forward=true").unwrap_err();
        assert!(
            e.contains("takes an integer") && e.contains("\"true\" is not a decimal integer"),
            "{e}"
        );
        let e = one("net.ipv4.tcp_rmem=4096").unwrap_err();
        assert!(e.contains("takes 3 integers"), "{e}");
        // Strings and empty-valued keys are taken as written.
        assert!(one("net.ipv4.tcp_congestion_control=reno").is_ok());
        assert!(one("net.ipv4.ip_local_reserved_ports=8080,9000-9010").is_ok());
    }

    proptest::proptest! {
        /// Every integer in its kernel form is accepted; every other spelling of it is
        /// refused with the canonical form in the message.
        #[test]
        fn integer_spellings(n in -100_000i64..100_000, zeros in 1usize..3, plus in proptest::bool::ANY) {
            let canonical = n.to_string();
            let line = format!("net.ipv4.tcp_fin_timeout={canonical}");
            proptest::prop_assert!(one(&line).is_ok());
            let digits = n.unsigned_abs().to_string();
            let sign = if n < 0 { "-" } else if plus { "+" } else { "" };
            let spelled = format!("{sign}{}{digits}", "0".repeat(zeros));
            let e = one(&format!("net.ipv4.tcp_fin_timeout={spelled}")).unwrap_err();
            proptest::prop_assert!(e.contains("would never match") || e.contains("not a decimal integer"), "{}", e);
        }
    }

    #[test]
    fn text_form_like_sysctl_p() {
        let v =
            text("# c\n; c\n\nnet.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding=1\n").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].path, "net/ipv4/ip_forward");
        assert_eq!(v[0].value, "1");
    }

    #[test]
    fn slash_is_a_literal_dot() {
        assert_eq!(
            proc_path("net.ipv4.conf.eth0/100.forwarding").unwrap(),
            "net/ipv4/conf/eth0.100/forwarding"
        );
        assert!(proc_path("net.ipv4..x").is_err());
        assert!(proc_path("net.ipv4.conf.//.x").is_err());
    }

    #[test]
    fn global_and_malformed_keys_are_refused() {
        let e = text("kernel.panic=1\nnet.core.rmem_max=1\nfoo\nnet.ipv4.ip_forward=1\nnet.ipv4.ip_forward=0")
            .unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0]
            .message
            .starts_with("line 1: \"kernel.panic\" is not a per-network"));
        assert!(e[3].message.contains("set twice"));
        assert!(text("net.core.somaxconn=1024\nnet.core.xfrm_acq_expires=3").is_ok());
    }

    #[test]
    fn object_form_values() {
        let mut m = BTreeMap::new();
        m.insert("net.ipv4.ip_forward".into(), SysctlValue::Bool(true));
        m.insert(
            "net.ipv4.tcp_fin_timeout".into(),
            SysctlValue::Number(30.into()),
        );
        let v = validate(&Sysctls::Map(m)).unwrap();
        assert_eq!(v[0].value, "1");
        assert_eq!(v[1].value, "30");
        let mut m = BTreeMap::new();
        m.insert(
            "net.ipv4.ip_forward".into(),
            SysctlValue::Text("1\n2".into()),
        );
        let e = validate(&Sysctls::Map(m)).unwrap_err();
        assert_eq!(e[0].path, "sysctl[\"net.ipv4.ip_forward\"]");
    }

    #[test]
    fn one_load_asks_the_kernel_once_per_path() {
        let asked = std::cell::Cell::new(0);
        let inner = |p: &str| {
            asked.set(asked.get() + 1);
            fake(p)
        };
        with_memo(&inner, |probe| {
            for _ in 0..3 {
                validate_with(
                    &Sysctls::Text("net.ipv4.ip_forward=1".into()),
                    &container(),
                    probe,
                )
                .unwrap();
            }
        });
        assert_eq!(asked.get(), 1);
    }
}
