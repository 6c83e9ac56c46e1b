//! What a netns contains, in a form two snapshots can be compared by: link names and
//! aliases, addresses, and main-table routes. Interface indexes, MACs and IPv6
//! link-local addresses are left out: they legitimately change when a container is
//! restarted (netprov destroys and recreates its links).

use std::process::Command;

use serde_json::Value;

use super::ok;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetState {
    /// `name` or `name alias`.
    pub links: Vec<String>,
    /// `ifname address/prefix`.
    pub addrs: Vec<String>,
    /// `dst [via gw] [dev ifname]`, IPv4 and IPv6 main table.
    pub routes: Vec<String>,
}

impl NetState {
    /// Snapshot through `ip -j`, run by `ip` (a closure building the command, so the
    /// same code reads the host netns and, with the container's own `ip`, a container).
    pub fn collect(ip: impl Fn(&[&str]) -> Command) -> Self {
        let json = |args: &[&str]| -> Vec<Value> {
            let text = ok(ip(args));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip {args:?}: {e}: {text}"))
        };
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);

        let mut links: Vec<String> = json(&["-j", "link", "show"])
            .iter()
            .map(|l| {
                let name = s(l, "ifname").expect("ifname");
                match s(l, "ifalias") {
                    Some(alias) => format!("{name} {alias}"),
                    None => name,
                }
            })
            .collect();
        let mut addrs = Vec::new();
        for l in json(&["-j", "addr", "show"]) {
            let name = s(&l, "ifname").expect("ifname");
            for a in l
                .get("addr_info")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if s(a, "scope").as_deref() == Some("link")
                    && s(a, "family").as_deref() == Some("inet6")
                {
                    continue;
                }
                let local = s(a, "local").expect("local");
                let prefix = a
                    .get("prefixlen")
                    .and_then(Value::as_u64)
                    .expect("prefixlen");
                addrs.push(format!("{name} {local}/{prefix}"));
            }
        }
        let mut routes = Vec::new();
        for family in ["-4", "-6"] {
            for r in json(&["-j", family, "route", "show", "table", "main"]) {
                let dst = s(&r, "dst").expect("dst");
                if dst.starts_with("fe80:") {
                    continue;
                }
                let mut route = dst;
                if let Some(gw) = s(&r, "gateway") {
                    route += &format!(" via {gw}");
                }
                if let Some(dev) = s(&r, "dev") {
                    route += &format!(" dev {dev}");
                }
                routes.push(route);
            }
        }
        links.sort();
        addrs.sort();
        routes.sort();
        Self {
            links,
            addrs,
            routes,
        }
    }

    /// Addresses of one interface.
    pub fn addrs_of(&self, ifname: &str) -> Vec<&str> {
        self.addrs
            .iter()
            .filter_map(|a| a.strip_prefix(ifname)?.strip_prefix(' '))
            .collect()
    }
}
