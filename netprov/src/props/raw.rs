//! The properties file as written: serde types that mirror the NixUnits option tree.
//!
//! These types only check the JSON *shape* (field names, JSON types); every value is
//! checked by `validate`. They also generate the JSON Schema (`netprov schema`), so the
//! doc comments below are the schema's descriptions. Nix's `builtins.toJSON` emits every
//! default, so `""` and `null` mean "absent" throughout.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Schema pattern of an IPv4 address with optional prefix (`""`: unset).
const IP4_ADDR: &str = r"^$|^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$";
/// Schema pattern of an IPv6 address with optional prefix (`""`: unset).
const IP6_ADDR: &str = r"^$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/[0-9]{1,3})?$";

/// The network of one systemd-nspawn container (a netprov properties file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "netprov properties")]
pub struct Props {
    /// Container id: 1–64 bytes of letters, digits, `_`, `.`, `-`, starting with a
    /// letter or digit, without `..`. It names `/run/netns/<id>`.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    )]
    pub id: String,
    /// The container's network; absent or null: a netns with only `lo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Per-netns sysctls under `net.`: `key=value` lines as `sysctl -p` reads them, or
    /// an object `{"net.ipv4.ip_forward": "1"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysctl: Option<Sysctls>,
}

/// `sysctl`: NixUnits' text form or an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Sysctls {
    /// `key=value` lines; blank lines and `#`/`;` comments are ignored.
    Text(String),
    /// Key to value.
    Map(BTreeMap<String, SysctlValue>),
}

/// A sysctl value: numbers and booleans (as 1/0) are written as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SysctlValue {
    Bool(bool),
    Number(serde_json::Number),
    Text(String),
}

/// `network`: namespace, interfaces, routes, ruleset and host-side rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// `""`: netprov creates `/run/netns/<id>`. An absolute path: adopt that existing
    /// netns (netprov never deletes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_path: Option<String>,
    /// Interfaces inside the container, keyed by their name there (1–15 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("propertyNames" = { "minLength": 1, "maxLength": 15, "pattern": "^(?!(lo|all|default|\\.|\\.\\.)$)[!-$&-.0-9;-~]+$" }))]
    pub interfaces: Option<BTreeMap<String, Interface>>,
    /// IPv4 default gateway; `addr%if` names the output interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^$|^[0-9]{1,3}(\.[0-9]{1,3}){3}(%[!-~]+)?$"))]
    pub ip4route: Option<String>,
    /// IPv6 default gateway; a link-local one needs `%if` unless there is one interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[!-~]+)?$"))]
    pub ip6route: Option<String>,
    /// nftables ruleset of the container netns (at most 1 MiB), replaced atomically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1048576))]
    pub nft: Option<String>,
    /// Extension: explicit routes inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    /// Extension: masquerade the container's traffic leaving the host (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masquerade: Option<bool>,
    /// Extension: host ports forwarded (DNAT) to the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwards: Option<Vec<Forward>>,
    /// Extension: drop packets from a veth host end whose source address is not the
    /// container's (default true; only meaningful with veth interfaces).
    #[serde(default, rename = "antiSpoof", skip_serializing_if = "Option::is_none")]
    pub anti_spoof: Option<bool>,
}

/// One interface. Its kind follows from the fields: `ovs.bridge` → OVS port;
/// `hostIp4`/`hostIp6`/`hostName`/`hostBridge` → veth pair; otherwise an existing link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// IPv4 address, `a.b.c.d[/prefix]` (no prefix: /32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IP4_ADDR))]
    pub ip4: Option<String>,
    /// IPv6 address, `x:y::z[/prefix]` (no prefix: /128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IP6_ADDR))]
    pub ip6: Option<String>,
    /// IPv4 address of the veth host end.
    #[serde(default, rename = "hostIp4", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IP4_ADDR))]
    pub host_ip4: Option<String>,
    /// IPv6 address of the veth host end.
    #[serde(default, rename = "hostIp6", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IP6_ADDR))]
    pub host_ip6: Option<String>,
    /// Open vSwitch port; `bridge: ""` means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovs: Option<Ovs>,
    /// A macvlan (mode bridge) on top of this interface; null means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan: Option<Macvlan>,
    /// Extension: name of the veth host end (default derived, see docs).
    #[serde(default, rename = "hostName", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    pub host_name: Option<String>,
    /// Extension: enslave the veth host end to this existing Linux bridge.
    #[serde(
        default,
        rename = "hostBridge",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 15))]
    pub host_bridge: Option<String>,
    /// Extension: MTU, 68–65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<u32>,
    /// Extension: unicast MAC address `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// `ovs`: Open vSwitch port settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ovs {
    /// Bridge to add the port to; `""`: no OVS port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    pub bridge: Option<String>,
    /// Access VLAN tag 0–4095 (absent or 0: the untagged VLAN; tagged frames from the
    /// container are dropped unless `trunks` or `vlan_mode` make the port a trunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4095))]
    pub vlan: Option<i64>,
    /// Extension: trunked VLAN tags (0–4095).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(range(min = 0, max = 4095)))]
    pub trunks: Option<Vec<i64>>,
    /// Extension: `access`, `trunk`, `native-tagged` or `native-untagged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = [null, "", "access", "trunk", "native-tagged", "native-untagged"]))]
    pub vlan_mode: Option<String>,
    /// Extension: `veth` (default: a veth pair whose host end, named like other veth
    /// host ends, is the OVS port) or `internal` (an OVS internal port named after the
    /// interface and moved into the container, as NixUnits does; the name is host-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = [null, "", "internal", "veth"]))]
    pub style: Option<String>,
    /// Extension: `external_ids` of the OVSDB Interface row (e.g. `iface-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ids: Option<BTreeMap<String, String>>,
    /// Extension: attach the port to an OVN logical switch (see docs/ovn.md); null: no OVN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovn: Option<Ovn>,
}

/// `ovs.ovn`: the OVN logical switch port netprov creates for this interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ovn {
    /// Logical switch (OVN Northbound `Logical_Switch.name`, must exist); `""`: no OVN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub switch: Option<String>,
    /// `Logical_Switch_Port.addresses`: `"MAC [IP...]"` entries, or `["unknown"]`.
    /// Absent or empty: one entry from the interface's MAC and its `ip4`/`ip6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<String>>,
    /// `Logical_Switch_Port.port_security`: `true` (default) = the addresses, `false` =
    /// none, or explicit `"MAC [IP/prefix...]"` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_security: Option<PortSecurity>,
}

/// `ovs.ovn.port_security`: on/off, or explicit entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortSecurity {
    /// `true`: the logical port's addresses; `false`: none.
    Enabled(bool),
    /// Explicit `Logical_Switch_Port.port_security` entries.
    Entries(Vec<String>),
}

/// `macvlan`: a macvlan named `mv-<if>` or `mv-<if>-<vrid>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Macvlan {
    /// IPv4 address of the macvlan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IP4_ADDR))]
    pub ip4: Option<String>,
    /// IPv6 address of the macvlan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IP6_ADDR))]
    pub ip6: Option<String>,
    /// VRRP virtual router id 1–255 (a string as NixUnits writes it, or a number);
    /// sets the VRRP MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrid: Option<Vrid>,
    /// Extension: explicit MAC address (overrides the VRRP MAC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// A VRRP id as a number or as a decimal string (`""`: none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Vrid {
    Number(#[schemars(range(min = 1, max = 255))] i64),
    Text(#[schemars(regex(pattern = r"^([1-9][0-9]{0,2})?$"))] String),
}

/// Extension: a route inside the container (`via` or `dev` required).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination network, e.g. `10.1.0.0/16` (no prefix: a host route).
    pub to: String,
    /// Gateway address (same family as `to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Output interface (a container interface or macvlan name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Route metric (priority).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// Extension: forward a host port to the container (DNAT in the host netns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// `tcp` or `udp`.
    pub proto: Proto,
    /// Port on the host, 1–65535.
    #[serde(rename = "hostPort")]
    #[schemars(range(min = 1, max = 65535))]
    pub host_port: u32,
    /// Port in the container, 1–65535.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u32,
    /// Container address (default: its first IPv4 address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Only traffic addressed to this host address.
    #[serde(default, rename = "hostIp", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

/// NixUnits writes `""` for an unset string.
pub fn given(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}
