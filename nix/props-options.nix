# The netprov properties tree (props.json) as NixOS option declarations.
#
# This file is the single description of the options that mirror props.json: the module
# (./module.nix) uses it for `services.netprov.containers.<name>`, and
# ./option-paths.nix evaluates it with a stub `lib` to list the option paths, which
# vm-tests/check-nix compares with `netprov schema` — adding a property to one side
# without the other fails CI.
#
# It may only use `lib.mkOption`, `lib.mkDefault`, `lib.literalExpression`,
# `lib.literalMD` and the `lib.types` listed in ./option-paths.nix (the stub provides
# exactly those).
#
# The option types carry the ranges and formats, so a bad value fails at the definition
# ("A definition for option `…ovs.vlan' is not of type `VLAN tag 0–4095'. Definition
# values: - In `/etc/nixos/configuration.nix': 4356") and the manual shows them. What
# a type cannot see (address families, derived names, conflicts between containers) is
# checked by `netprov validate` when the system is built (see ./module.nix).
#
# Unset options are `null` and are left out of the generated JSON, so netprov applies
# its own defaults (documented in docs/properties.md).
{ lib }:
let
  inherit (lib) mkOption types;

  described = description: t: t // { inherit description; };
  pattern = description: re: described description (types.strMatching re);
  # `t`, and `ok` holds too (the description stays `t`'s).
  refine = t: ok: described t.description (types.addCheck t ok);

  # ---- formats (POSIX extended regular expressions, matched against the whole string) ----
  octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  ipv4 = "${octet}(\\.${octet}){3}";
  hex = "[0-9A-Fa-f]{0,4}";
  # The shape of an IPv6 address (2–8 groups, `::`, an embedded IPv4 tail); netprov
  # parses it exactly when the props are validated at build time.
  ipv6 = "(${hex}(:${hex}){2,7}|(${hex}:){2,6}${ipv4})";
  prefix4 = "(/(3[0-2]|[12]?[0-9]))?";
  prefix6 = "(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?";
  # Interface names: what the kernel accepts (1–15 bytes of printable ASCII without
  # '/', ':' or space) and netprov too (no '%', which separates `addr%if`).
  ifnameChars = "[!-$&-.0-9;-~]";

  ifname = refine
    (pattern "interface name (1–15 printable ASCII bytes without '/', ':', '%' or space; not `.`, `..`, `lo`, `all`, `default`)"
      "${ifnameChars}{1,15}")
    (s: !(builtins.elem s [ "." ".." "lo" "all" "default" ]));
  addr4 = pattern "IPv4 address with optional prefix (a.b.c.d[/0-32])" "${ipv4}${prefix4}";
  addr6 = pattern "IPv6 address with optional prefix (x:y::z[/0-128])" "${ipv6}${prefix6}";
  host4 = pattern "IPv4 address (a.b.c.d)" ipv4;
  host6 = pattern "IPv6 address (x:y::z)" ipv6;
  gateway4 = pattern "IPv4 gateway address (a.b.c.d[%interface])" "${ipv4}(%${ifnameChars}{1,15})?";
  gateway6 = pattern "IPv6 gateway address (x:y::z[%interface])" "${ipv6}(%${ifnameChars}{1,15})?";
  network = pattern "IPv4 or IPv6 network (a.b.c.d[/0-32] or x:y::z[/0-128])" "${ipv4}${prefix4}|${ipv6}${prefix6}";
  host = pattern "IPv4 or IPv6 address" "${ipv4}|${ipv6}";
  # Unicast: the least significant bit of the first octet is 0.
  mac = pattern "unicast MAC address (aa:bb:cc:dd:ee:ff)" "[0-9A-Fa-f][02468AaCcEe](:[0-9A-Fa-f]{2}){5}";
  vlanTag = described "VLAN tag 0–4095" (types.ints.between 0 4095);
  port = described "port 1–65535" (types.ints.between 1 65535);
  vrid = described "VRRP router id 1–255 (a number, or a decimal string as NixUnits writes it)"
    (types.either (types.ints.between 1 255)
      (types.strMatching "([1-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5])?"));
  absolutePath = pattern "absolute path" "/.+";

  nullable = type: description: mkOption {
    type = types.nullOr type;
    default = null;
    inherit description;
  };

  ovsModule = {
    options = {
      bridge = mkOption {
        type = ifname;
        example = "br0";
        description = "Open vSwitch bridge the port is added to. The bridge must exist.";
      };
      vlan = mkOption {
        type = vlanTag;
        default = 0;
        description = "Access VLAN tag (0: untagged).";
      };
      trunks = mkOption {
        type = types.listOf vlanTag;
        default = [ ];
        example = [ 10 20 ];
        description = "VLAN tags trunked on the port.";
      };
      vlan_mode = mkOption {
        type = types.nullOr (types.enum [ "access" "trunk" "native-tagged" "native-untagged" ]);
        default = null;
        description = "OVSDB `Port.vlan_mode`; null lets Open vSwitch decide from `vlan` and `trunks`.";
      };
      style = mkOption {
        type = types.nullOr (types.enum [ "internal" "veth" ]);
        default = null;
        description = ''
          `veth`: a veth pair whose host end (named like other veth host ends) is the
          OVS port; `internal`: an OVS internal port moved into the container, as
          NixUnits does (its name is host-wide). Null (not written to the props file):
          netprov's default, `veth`.
        '';
      };
      external_ids = mkOption {
        type = types.attrsOf types.str;
        default = { };
        example = { iface-id = "web1-lan"; };
        description = "`external_ids` of the OVSDB Interface row (for example `iface-id` for OVN).";
      };
      ovn = mkOption {
        type = types.nullOr (types.submodule ovnModule);
        default = null;
        description = ''
          Make the port an OVN logical switch port `<id>:<interface>` in the OVN
          Northbound database, bound to this chassis; apply waits for ovn-controller
          to install it (see docs/ovn.md).
        '';
      };
    };
  };

  ovnModule = {
    options = {
      switch = mkOption {
        type = types.str;
        example = "tenant-a";
        description = "OVN logical switch (must exist in the Northbound database).";
      };
      addresses = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = [ "0a:58:0a:00:01:02 10.0.1.2" ];
        description = "`Logical_Switch_Port.addresses`; null: the interface's MAC and `ip4`/`ip6`.";
      };
      port_security = mkOption {
        type = types.nullOr (types.either types.bool (types.listOf types.str));
        default = null;
        description = "`Logical_Switch_Port.port_security`: true (null) = the addresses, false = none, or explicit entries.";
      };
    };
  };

  macvlanModule = {
    options = {
      ip4 = nullable addr4 "IPv4 address of the macvlan.";
      ip6 = nullable addr6 "IPv6 address of the macvlan.";
      vrid = mkOption {
        type = types.nullOr vrid;
        default = null;
        example = 12;
        description = ''
          VRRP virtual router id: the macvlan is named `mv-<if>-<vrid>` and gets the VRRP
          MAC `00:00:5e:00:01:<vrid>`. Without it the macvlan is `mv-<if>`.
        '';
      };
      mac = nullable mac "Explicit MAC address of the macvlan (overrides the VRRP MAC).";
    };
  };

  interfaceModule = {
    options = {
      ip4 = nullable addr4 "IPv4 address inside the container (no prefix: /32).";
      ip6 = nullable addr6 "IPv6 address inside the container (no prefix: /128).";
      hostIp4 = nullable addr4 ''
        IPv4 address of the host end. Setting `hostIp4` or `hostIp6` makes this interface a
        veth pair; each end gets a device route to the other end.
      '';
      hostIp6 = nullable addr6 "IPv6 address of the veth host end.";
      hostName = nullable ifname "Name of the veth host end (default derived from the container id and interface name).";
      hostBridge = nullable ifname "Existing Linux bridge the veth host end is enslaved to.";
      mtu = nullable (described "MTU 68–65535" (types.ints.between 68 65535)) "MTU of the interface (both ends of a veth).";
      mac = nullable mac "MAC address of the container end.";
      ovs = mkOption {
        type = types.nullOr (types.submodule ovsModule);
        default = null;
        description = "Make this interface an Open vSwitch port.";
      };
      macvlan = mkOption {
        type = types.nullOr (types.submodule macvlanModule);
        default = null;
        example = lib.literalExpression "{ }";
        description = "A macvlan (mode bridge) on top of this interface, inside the container; `{ }` for one without address.";
      };
    };
  };

  routeModule = {
    options = {
      to = mkOption {
        type = network;
        example = "10.1.0.0/16";
        description = "Destination network (no prefix: a host route).";
      };
      via = nullable host "Gateway address, same family as `to`.";
      dev = nullable ifname "Output interface (a container interface or macvlan name).";
      metric = nullable (described "route metric 0–4294967295" (types.ints.between 0 4294967295)) "Route metric.";
    };
  };

  forwardModule = {
    options = {
      proto = mkOption {
        type = types.enum [ "tcp" "udp" ];
        description = "Transport protocol.";
      };
      hostPort = mkOption {
        type = port;
        description = "Port on the host.";
      };
      port = mkOption {
        type = port;
        description = "Port in the container.";
      };
      to = nullable host "Container address (default: its first IPv4 address).";
      hostIp = nullable host "Only forward traffic addressed to this host address.";
    };
  };

  networkModule = {
    options = {
      netns_path = nullable absolutePath ''
        Adopt this existing network namespace instead of creating `/run/netns/<id>`
        (netprov never deletes an adopted namespace).
      '';
      interfaces = mkOption {
        type = types.attrsOf (types.submodule interfaceModule);
        default = { };
        example = lib.literalExpression ''{ wan = { ip4 = "10.0.0.2/31"; hostIp4 = "10.0.0.3/31"; }; eth1 = { }; }'';
        description = ''
          Interfaces inside the container, by their name there (1–15 bytes). An interface
          with neither `ovs` nor a veth field is an existing host link moved into the
          container (`eth1 = { };`).
        '';
      };
      ip4route = nullable gateway4 "IPv4 default gateway; `addr%if` names the output interface.";
      ip6route = nullable gateway6 "IPv6 default gateway; a link-local one needs `%if` unless there is one interface.";
      nft = mkOption {
        type = types.nullOr types.lines;
        default = null;
        description = "nftables ruleset of the container's network namespace, replaced atomically on every apply.";
      };
      routes = mkOption {
        type = types.listOf (types.submodule routeModule);
        default = [ ];
        description = "Explicit routes inside the container.";
      };
      masquerade = mkOption {
        type = types.nullOr types.bool;
        default = null;
        description = ''
          Masquerade the container's traffic leaving the host (netprov's default: false).
          Turns on the host's forwarding (`mkDefault`).
        '';
      };
      forwards = mkOption {
        type = types.listOf (types.submodule forwardModule);
        default = [ ];
        description = "Host ports forwarded (DNAT) to the container. Turns on the host's forwarding (`mkDefault`).";
      };
      antiSpoof = mkOption {
        type = types.nullOr types.bool;
        default = null;
        description = "Drop packets from a veth host end whose source is not the container's address (netprov's default: true).";
      };
    };
  };
in
{
  # The formats, for the module's assertions on attribute names (which no type checks).
  formats = { inherit ifname; };

  # The submodule of one container's properties; `name` is the attribute name.
  containerModule = { name, ... }: {
    options = {
      id = mkOption {
        type = refine
          (pattern "container id (1–64 bytes of letters, digits, `_`, `.`, `-`, starting with a letter or digit, without `..`)"
            "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
          (s: builtins.match ".*[.][.].*" s == null);
        default = name;
        defaultText = lib.literalMD "the attribute name `<name>`";
        description = "Container id: names the network namespace `/run/netns/<id>`.";
      };
      network = mkOption {
        type = types.submodule networkModule;
        default = { };
        description = "The container's network.";
      };
      sysctl = mkOption {
        type = types.nullOr (types.either types.lines (types.attrsOf (types.oneOf [ types.bool types.int types.str ])));
        default = null;
        example = "net.ipv4.ip_forward=1";
        description = "Per-netns sysctls under `net.`: `key=value` lines, or an attribute set.";
      };
    };
  };
}
