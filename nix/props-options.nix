# The netprov properties tree (props.json) as NixOS option declarations.
#
# This file is the single description of the options that mirror props.json: the module
# (./module.nix) uses it for `services.netprov.containers.<name>`, and
# ./option-paths.nix evaluates it with a stub `lib` to list the option paths, which
# vm-tests/check-nix compares with `netprov schema` — adding a property to one side
# without the other fails CI.
#
# It may only use `lib.mkOption`, `lib.mkDefault`, `lib.literalExpression` and the
# `lib.types` listed in ./option-paths.nix (the stub provides exactly those).
#
# Unset options are `null` and are left out of the generated JSON, so netprov applies
# its own defaults (documented in docs/properties.md).
{ lib }:
let
  inherit (lib) mkOption types;

  optStr = description: mkOption {
    type = types.nullOr types.str;
    default = null;
    inherit description;
  };

  ovsModule = {
    options = {
      bridge = mkOption {
        type = types.str;
        example = "br0";
        description = "Open vSwitch bridge the port is added to (at most 15 bytes). The bridge must exist.";
      };
      vlan = mkOption {
        type = types.int;
        default = 0;
        description = "Access VLAN tag, 0–4095 (0: untagged).";
      };
      trunks = mkOption {
        type = types.listOf types.int;
        default = [ ];
        example = [ 10 20 ];
        description = "VLAN tags (0–4095) trunked on the port.";
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
          `internal` (the default): an OVS internal port moved into the container, as NixUnits does;
          `veth`: a veth pair whose host end is the OVS port.
        '';
      };
      external_ids = mkOption {
        type = types.attrsOf types.str;
        default = { };
        example = { iface-id = "web1-lan"; };
        description = "`external_ids` of the OVSDB Interface row (for example `iface-id` for OVN).";
      };
    };
  };

  macvlanModule = {
    options = {
      ip4 = optStr "IPv4 address of the macvlan, `a.b.c.d[/prefix]`.";
      ip6 = optStr "IPv6 address of the macvlan, `x::y[/prefix]`.";
      vrid = mkOption {
        type = types.nullOr (types.either types.int types.str);
        default = null;
        example = 12;
        description = ''
          VRRP virtual router id, 1–255: the macvlan is named `mv-<if>-<vrid>` and gets the
          VRRP MAC `00:00:5e:00:01:<vrid>`. Without it the macvlan is `mv-<if>`.
        '';
      };
      mac = optStr "Explicit MAC address of the macvlan (overrides the VRRP MAC).";
    };
  };

  interfaceModule = {
    options = {
      ip4 = optStr "IPv4 address inside the container, `a.b.c.d[/prefix]` (no prefix: /32).";
      ip6 = optStr "IPv6 address inside the container, `x::y[/prefix]` (no prefix: /128).";
      hostIp4 = optStr ''
        IPv4 address of the host end. Setting `hostIp4` or `hostIp6` makes this interface a
        veth pair; each end gets a device route to the other end.
      '';
      hostIp6 = optStr "IPv6 address of the veth host end.";
      hostName = optStr "Name of the veth host end (at most 15 bytes; default derived from the container id and interface name).";
      hostBridge = optStr "Existing Linux bridge the veth host end is enslaved to.";
      mtu = mkOption {
        type = types.nullOr (types.ints.between 68 65535);
        default = null;
        description = "MTU of the interface (both ends of a veth).";
      };
      mac = optStr "Unicast MAC address `aa:bb:cc:dd:ee:ff` of the container end.";
      ovs = mkOption {
        type = types.nullOr (types.submodule ovsModule);
        default = null;
        description = "Make this interface an Open vSwitch port.";
      };
      macvlan = mkOption {
        type = types.nullOr (types.submodule macvlanModule);
        default = null;
        description = "A macvlan (mode bridge) on top of this interface, inside the container.";
      };
    };
  };

  routeModule = {
    options = {
      to = mkOption {
        type = types.str;
        example = "10.1.0.0/16";
        description = "Destination network (no prefix: a host route).";
      };
      via = optStr "Gateway address, same family as `to`.";
      dev = optStr "Output interface (a container interface or macvlan name).";
      metric = mkOption {
        type = types.nullOr types.int;
        default = null;
        description = "Route metric.";
      };
    };
  };

  forwardModule = {
    options = {
      proto = mkOption {
        type = types.enum [ "tcp" "udp" ];
        description = "Transport protocol.";
      };
      hostPort = mkOption {
        type = types.port;
        description = "Port on the host.";
      };
      port = mkOption {
        type = types.port;
        description = "Port in the container.";
      };
      to = optStr "Container address (default: its first IPv4 address).";
      hostIp = optStr "Only forward traffic addressed to this host address.";
    };
  };

  networkModule = {
    options = {
      netns_path = optStr ''
        Adopt this existing network namespace instead of creating `/run/netns/<id>`
        (netprov never deletes an adopted namespace).
      '';
      interfaces = mkOption {
        type = types.attrsOf (types.submodule interfaceModule);
        default = { };
        description = "Interfaces inside the container, by their name there (at most 15 bytes).";
      };
      ip4route = optStr "IPv4 default gateway; `addr%if` names the output interface.";
      ip6route = optStr "IPv6 default gateway; a link-local one needs `%if` unless there is one interface.";
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
        description = "Masquerade the container's traffic leaving the host (netprov's default: false).";
      };
      forwards = mkOption {
        type = types.listOf (types.submodule forwardModule);
        default = [ ];
        description = "Host ports forwarded (DNAT) to the container.";
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
  # The submodule of one container's properties; `name` is the attribute name.
  containerModule = { name, ... }: {
    options = {
      id = mkOption {
        type = types.str;
        default = name;
        defaultText = lib.literalExpression "<name>";
        description = "Container id: names `/run/netns/<id>` and the nspawn machine. Letters, digits, `_`, `.`, `-`; at most 64 bytes.";
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
