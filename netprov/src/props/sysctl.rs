//! `sysctl`: keys, values and the `/proc/sys` path they write.
//!
//! Only per-netns subtrees of `net.` are accepted. Everything else under
//! `/proc/sys` (and `net.core.*` except `somaxconn` and `xfrm_*`) is global: it either
//! does not exist in a container's `/proc/sys/net` or would change the whole host.

use std::collections::BTreeMap;

use super::raw::{SysctlValue, Sysctls};
use super::{key_path, problem};
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

/// Checks every entry; `Err` holds all problems.
pub fn validate(raw: &Sysctls) -> Result<Vec<Sysctl>, Vec<Invalid>> {
    let mut out: BTreeMap<String, Sysctl> = BTreeMap::new();
    let mut errs = Vec::new();
    let mut add =
        |path: String, key: &str, value: String, errs: &mut Vec<Invalid>| match entry(key, value) {
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

    fn text(s: &str) -> Result<Vec<Sysctl>, Vec<Invalid>> {
        validate(&Sysctls::Text(s.into()))
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
}
