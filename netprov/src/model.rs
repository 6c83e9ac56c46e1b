//! The validated model of one container's network: `Desired`.
//!
//! Everything here is pure data that has already passed validation (see `props`):
//! a value of these types cannot express an invalid kernel object. The engine, the
//! OVSDB client and the nftables layer consume only these types, never raw JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;
/// Longest container id; it becomes a file name, a link alias and an nft table name.
pub const ID_MAX: usize = 64;

/// A container id: path-safe, `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most [`ID_MAX`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// Checks the id; the error says what is allowed.
    pub fn new(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > ID_MAX {
            return Err(format!(
                "is {} bytes long, at most {ID_MAX} are allowed",
                s.len()
            ));
        }
        let first = s.as_bytes()[0];
        if !first.is_ascii_alphanumeric() {
            return Err("must start with a letter or digit".into());
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(format!(
                "contains {c:?}; only letters, digits, '_', '.' and '-' are allowed (it becomes /run/netns/<id>)"
            ));
        }
        if s.contains("..") {
            return Err("must not contain \"..\"".into());
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names the kernel reserves or that always exist: `lo` is in every netns, and `all` /
/// `default` are the directories `/proc/sys/net/ipv{4,6}/conf/{all,default}`, so
/// registering a device of that name fails (its sysctl directory cannot be created).
pub const RESERVED_IFNAMES: [&str; 3] = ["lo", "all", "default"];

/// A kernel interface name: 1–15 bytes, not `.`/`..`, no `/`, `:`, `%`, whitespace or
/// non-printable bytes (the rules of the kernel's `dev_valid_name`, restricted to ASCII),
/// and none of [`RESERVED_IFNAMES`]. `%` is refused because the kernel reads a name with
/// `%` as a template (`dev_alloc_name`): `x%d` becomes `x0` (which never matches what
/// was asked for) and any other `%` is EINVAL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfName(String);

impl IfName {
    pub fn new(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > IFNAME_MAX {
            return Err(format!(
                "is {} bytes long, the kernel allows at most {IFNAME_MAX}",
                s.len()
            ));
        }
        if s == "." || s == ".." {
            return Err("\".\" and \"..\" are not interface names".into());
        }
        if let Some(c) = s
            .chars()
            .find(|c| !c.is_ascii_graphic() || matches!(c, '/' | ':' | '%'))
        {
            return Err(format!(
                "contains {c:?}; interface names are printable ASCII without '/', ':', '%' or spaces"
            ));
        }
        if RESERVED_IFNAMES.contains(&s) {
            return Err("is reserved by the kernel (lo exists in every netns; all and default are /proc/sys/net/*/conf entries)".into());
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An 802.1Q VLAN id, 0–4095 (0 means untagged for an OVS access port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VlanTag(u16);

impl VlanTag {
    pub const MAX: u16 = 4095;
    pub fn new(v: i64) -> Result<Self, String> {
        if (0..=Self::MAX as i64).contains(&v) {
            Ok(Self(v as u16))
        } else {
            Err(format!(
                "VLAN tag {v} is out of range: a tag is 0–4095 (0 = untagged)"
            ))
        }
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Which network namespace the container uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsSpec {
    /// netprov creates (and destroy removes) the handle `/run/netns/<id>`.
    Owned { path: PathBuf },
    /// An existing namespace (`network.netns_path`); netprov never deletes it.
    Adopted { path: PathBuf },
}

impl NetnsSpec {
    pub fn path(&self) -> &PathBuf {
        match self {
            NetnsSpec::Owned { path } | NetnsSpec::Adopted { path } => path,
        }
    }
}

/// The whole validated network of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub id: ContainerId,
    pub netns: NetnsSpec,
    /// Sorted by name; names are unique, as are all derived (host-end, macvlan) names.
    pub interfaces: Vec<Interface>,
    /// Routes inside the container netns: the default routes from `ip4route`/`ip6route`
    /// and the explicit `routes`. Device routes of veth point-to-point links are not
    /// here; they are derived from the interface (see [`Interface::container_peer_routes`]).
    pub routes: Vec<Route>,
    /// Sorted by key, keys unique.
    pub sysctls: Vec<Sysctl>,
    /// The container's nftables ruleset text, loaded atomically inside its netns.
    pub nft: Option<Ruleset>,
    /// Rules netprov generates in the host netns for this container.
    pub host_rules: HostRules,
}

/// One interface inside the container netns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Name inside the container netns.
    pub name: IfName,
    pub kind: InterfaceKind,
    /// Addresses on the container side (`ip4`, `ip6`), prefix defaulted to /32 or /128.
    pub addrs: Vec<IpNetwork>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub macvlan: Option<Macvlan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceKind {
    /// A veth pair: peer (this interface) in the container netns, `host.name` in the host netns.
    Veth(VethHost),
    /// An Open vSwitch port.
    Ovs(OvsPort),
    /// A link netprov does not create: it is already in the container netns (adopted
    /// netns), or it exists in the host netns and is moved in (NixUnits'
    /// `--network-interface=`). netprov configures it, never deletes it, and `destroy`
    /// moves it back to the host netns.
    Existing,
}

/// The host end of a veth pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethHost {
    /// Derived (see `props::names`) or given with `hostName`.
    pub name: IfName,
    /// `hostIp4`, `hostIp6`.
    pub addrs: Vec<IpNetwork>,
    /// Enslave the host end to this existing Linux bridge (`hostBridge`).
    pub bridge: Option<IfName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VlanMode {
    Access,
    Trunk,
    NativeTagged,
    NativeUntagged,
}

impl VlanMode {
    /// The value of the OVSDB `Port.vlan_mode` column.
    pub fn as_ovsdb(self) -> &'static str {
        match self {
            VlanMode::Access => "access",
            VlanMode::Trunk => "trunk",
            VlanMode::NativeTagged => "native-tagged",
            VlanMode::NativeUntagged => "native-untagged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OvsStyle {
    /// An OVS internal port, created on the bridge then moved into the container netns
    /// under the interface's name (NixUnits' behaviour).
    Internal,
    /// A veth pair whose host end (`host`) is the OVS port.
    Veth { host: IfName },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvsPort {
    pub bridge: IfName,
    /// Access tag; `VlanTag(0)` = untagged.
    pub vlan: VlanTag,
    /// Sorted, unique.
    pub trunks: Vec<VlanTag>,
    pub vlan_mode: Option<VlanMode>,
    pub style: OvsStyle,
    /// Passed through to the Interface row's `external_ids` (e.g. `iface-id` for OVN).
    pub external_ids: BTreeMap<String, String>,
    /// The OVN logical switch port of this interface (`ovs.ovn`).
    pub ovn: Option<OvnPort>,
}

/// An OVN logical switch port netprov creates in the Northbound database and binds to
/// this OVS interface (`external_ids:iface-id`); see docs/ovn.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvnPort {
    /// `Logical_Switch.name`.
    pub switch: String,
    /// `Logical_Switch_Port.name` and the OVS Interface's `iface-id`: `<id>:<iface>`
    /// (neither part can contain `:`, so it is unambiguous).
    pub name: String,
    /// The interface's MAC: given, or derived (the interface gets it).
    pub mac: MacAddr,
    /// `Logical_Switch_Port.addresses`, sorted.
    pub addresses: Vec<String>,
    /// `Logical_Switch_Port.port_security`, sorted.
    pub port_security: Vec<String>,
}

impl OvsPort {
    /// Name of the OVS port / Interface row.
    pub fn port_name<'a>(&'a self, iface: &'a IfName) -> &'a IfName {
        match &self.style {
            OvsStyle::Internal => iface,
            OvsStyle::Veth { host } => host,
        }
    }
}

/// A macvlan (mode bridge) on top of its interface, inside the container netns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macvlan {
    /// `mv-<if>` or `mv-<if>-<vrid>` (or a derived short name, see `props::names`).
    pub name: IfName,
    pub addrs: Vec<IpNetwork>,
    /// VRRP virtual router id, 1–255.
    pub vrid: Option<u8>,
    /// The VRRP MAC for `vrid`, or an explicit `mac`.
    pub mac: Option<MacAddr>,
}

/// A route inside the container netns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dest: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Output interface; required for a link-local gateway.
    pub dev: Option<IfName>,
    pub metric: Option<u32>,
}

/// One sysctl under `net.`, written inside the container netns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sysctl {
    /// Dotted key as written by the user, e.g. `net.ipv4.ip_forward`.
    pub key: String,
    /// Path relative to `/proc/sys`, e.g. `net/ipv4/ip_forward`.
    pub path: String,
    pub value: String,
}

/// The container's nftables ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub text: String,
}

/// Host-side nftables rules netprov generates for one container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostRules {
    /// Drop traffic entering the host from a veth host end whose source address is not
    /// one of the container's addresses on that link. On by default for veth links.
    pub anti_spoof: bool,
    /// Masquerade the container's egress (its addresses as source) leaving the host.
    pub masquerade: bool,
    pub forwards: Vec<PortForward>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4Proto {
    Tcp,
    Udp,
}

/// Host port → container address:port (DNAT in the host netns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    pub proto: L4Proto,
    pub host_port: u16,
    /// Restrict to traffic addressed to this host address.
    pub host_addr: Option<IpAddr>,
    pub to_addr: IpAddr,
    pub to_port: u16,
}

/// The route each end of a veth gets to the other end: the bare address for /31 and
/// /127, the other end's network with its prefix otherwise (NixUnits' semantics, so two
/// prefix-less addresses in different subnets are joined by /32 device routes).
pub fn peer_route(other_end: &IpNetwork) -> IpNetwork {
    let bare = match other_end {
        IpNetwork::V4(n) => n.prefix() == 31 || n.prefix() == 32,
        IpNetwork::V6(n) => n.prefix() == 127 || n.prefix() == 128,
    };
    if bare {
        IpNetwork::new(other_end.ip(), if other_end.is_ipv4() { 32 } else { 128 })
            .expect("host prefix is valid")
    } else {
        IpNetwork::new(other_end.network(), other_end.prefix()).expect("same prefix is valid")
    }
}

impl Interface {
    /// Device routes inside the container towards the host end of a veth.
    pub fn container_peer_routes(&self) -> Vec<IpNetwork> {
        match &self.kind {
            InterfaceKind::Veth(h) => h.addrs.iter().map(peer_route).collect(),
            _ => Vec::new(),
        }
    }
    /// Device routes in the host netns towards the container end of a veth.
    pub fn host_peer_routes(&self) -> Vec<IpNetwork> {
        match &self.kind {
            InterfaceKind::Veth(h) if !h.addrs.is_empty() => {
                self.addrs.iter().map(peer_route).collect()
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(ContainerId::new("router1").is_ok());
        assert!(ContainerId::new("web-2.prod_x").is_ok());
        for bad in [
            "",
            "..",
            "a/b",
            "-x",
            ".x",
            "a..b",
            "a b",
            "a\nb",
            &"x".repeat(65),
        ] {
            assert!(ContainerId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ifnames() {
        assert!(IfName::new("lan").is_ok());
        assert!(IfName::new("ve-router1-wan").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a%b",
            "x%d",
            "lo",
            "all",
            "default",
            "a\tb",
            "é",
            "sixteen_chars_xx",
        ] {
            assert!(IfName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vlan_range() {
        assert!(VlanTag::new(0).is_ok());
        assert!(VlanTag::new(4095).is_ok());
        assert!(VlanTag::new(4356).is_err());
        assert!(VlanTag::new(-1).is_err());
    }

    #[test]
    fn peer_routes_follow_nixunits() {
        let r = |s: &str| peer_route(&s.parse().unwrap()).to_string();
        assert_eq!(r("70.0.0.1/31"), "70.0.0.1/32");
        assert_eq!(r("10.0.1.1/32"), "10.0.1.1/32");
        assert_eq!(r("10.0.0.1/24"), "10.0.0.0/24");
        assert_eq!(r("2001:bc8::b/127"), "2001:bc8::b/128");
        assert_eq!(r("a:b:c:d::1/64"), "a:b:c:d::/64");
    }
}
