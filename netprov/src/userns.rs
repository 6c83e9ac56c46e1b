//! Containers that run in a user namespace (`systemd-nspawn -U`) on a netns netprov made.
//!
//! The netns netprov creates is owned by the host's user namespace, and stays so when
//! the container joins it from its own user namespace (systemd ≥ 261 can; see
//! docs/nspawn.md). The container's root then has no capability over its network:
//! raw sockets (`ping`), binding ports below 1024 and changing addresses, links, routes
//! or the ruleset are all refused — the last ones on purpose, the network is netprov's.
//! Two per-netns sysctls give ordinary services back what they need without granting
//! anything over the network itself:
//!
//! - `net.ipv4.ping_group_range` = `0 2147483647`: any group may open ICMP echo
//!   (datagram) sockets, which is how `ping` works without `CAP_NET_RAW`;
//! - `net.ipv4.ip_unprivileged_port_start` = `0`: any process may bind any port (a web
//!   server on port 80).
//!
//! Both are per netns, so the host is not affected. A props file's own value for
//! either key wins.

use crate::model::{Desired, Sysctl};

/// The sysctls set for a container running in a user namespace, and their values.
pub const SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv4.ip_unprivileged_port_start", "0"),
];

/// Adds [`SYSCTLS`] to `d` where its props do not set the same key (compared by
/// `/proc/sys` path, so `net/ipv4/...` spellings count too).
pub fn add_sysctls(d: &mut Desired) {
    for (key, value) in SYSCTLS {
        let path = crate::props::proc_path(key).expect("constant key is valid");
        if d.sysctls.iter().any(|s| s.path == path) {
            continue;
        }
        d.sysctls.push(Sysctl {
            key: key.to_owned(),
            path,
            value: value.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_both_unless_the_props_set_them() {
        let text = |sysctl: &str| {
            format!(
                r#"{{"id":"c1","network":{{}},"sysctl":{}}}"#,
                serde_json::json!(sysctl)
            )
        };
        let mut d = crate::props::parse_str(&text(""), None).unwrap();
        add_sysctls(&mut d);
        let got: Vec<(&str, &str)> = d
            .sysctls
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(got, SYSCTLS);
        add_sysctls(&mut d);
        assert_eq!(d.sysctls.len(), 2, "idempotent");

        let mut d =
            crate::props::parse_str(&text("net.ipv4.ip_unprivileged_port_start=1024"), None)
                .unwrap();
        add_sysctls(&mut d);
        let port: Vec<&str> = d
            .sysctls
            .iter()
            .filter(|s| s.path == "net/ipv4/ip_unprivileged_port_start")
            .map(|s| s.value.as_str())
            .collect();
        assert_eq!(port, ["1024"], "the props' value wins");
        assert_eq!(d.sysctls.len(), 2);
    }
}
