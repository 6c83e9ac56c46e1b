# NixOS module: containers declared as netprov properties, provisioned before their
# systemd-nspawn (or NixUnits-style) unit starts and torn down after it stops.
#
#   services.netprov.containers.web = {
#     network.interfaces.wan = { ip4 = "10.0.0.2/31"; hostIp4 = "10.0.0.3/31"; };
#   };
#
# becomes /etc/netprov/web.json (the same tree, as JSON) and a drop-in for
# systemd-nspawn@web.service that runs `netprov apply` before nspawn starts, joins nspawn
# to the prepared namespace, and runs `netprov destroy` after it stops.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkIf types mapAttrs' mapAttrsToList nameValuePair filterAttrs
    concatLists optional optionals;

  cfg = config.services.netprov;
  props = import ./props-options.nix { inherit lib; };

  # Unit-level settings of a container, next to its properties.
  unitModule = { name, ... }: {
    options = {
      unit = mkOption {
        type = types.enum [ "systemd-nspawn" "nixunits" ];
        default = "systemd-nspawn";
        description = ''
          Which container unit provisions the network:
          `systemd-nspawn` adds a drop-in to `systemd-nspawn@<name>.service` (root filesystem
          in `/var/lib/machines/<name>`); `nixunits` adds one to a NixUnits-style
          `nixunits@<name>.service`, whose own `network` options must then stay empty
          (nspawn refuses `--network-veth` together with `--network-namespace-path`).
        '';
      };
      autoStart = mkOption {
        type = types.bool;
        default = false;
        description = "Start the container at boot (`machines.target` for nspawn, `multi-user.target` for nixunits).";
      };
      nspawnArgs = mkOption {
        type = types.listOf types.str;
        default = [ "--quiet" "--keep-unit" "--boot" "--link-journal=try-guest" "--settings=override" ];
        description = ''
          Arguments of `systemd-nspawn` in the `systemd-nspawn@` drop-in, after
          `--network-namespace-path=` and `--machine=<name>` which the module adds (so they
          may end with a command to run instead of `--boot`). The default is the upstream
          template's without `--network-veth` and without `-U` (as the nspawn-glue's
          drop-in: the container's root must keep its capabilities over the namespace
          netprov made, which the host's user namespace owns).
        '';
      };
    };
  };

  containerType = types.submodule [ props.containerModule unitModule ];

  # props.json: the property options only, without nulls and empty collections (netprov
  # applies its own defaults to what is absent).
  clean = v:
    if builtins.isAttrs v then
      filterAttrs (_: x: x != null && x != [ ] && x != { }) (builtins.mapAttrs (_: clean) v)
    else if builtins.isList v then map clean v
    else v;
  propsOf = c: clean { inherit (c) id network sysctl; };

  netprov = "${cfg.package}/bin/netprov";
  nspawn = "${config.systemd.package}/bin/systemd-nspawn";

  usesOvs = c: lib.any (i: i.ovs != null) (builtins.attrValues c.network.interfaces);
  anyOvs = lib.any usesOvs (builtins.attrValues cfg.containers);

  netnsPath = c:
    if c.network.netns_path != null && c.network.netns_path != "" then c.network.netns_path
    else "/run/netns/${c.id}";

  # As the nspawn-glue's drop-ins do: netprov runs as root but keeps only the two
  # capabilities it needs (netlink/OVS/nft: CAP_NET_ADMIN; entering and binding network
  # namespaces: CAP_SYS_ADMIN), and cannot gain others.
  confined = cmd: "${pkgs.util-linux}/bin/setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all,+net_admin,+sys_admin -- ${cmd}";

  # What both unit kinds get: provision before start, tear down after stop. A failed
  # apply fails the start with netprov's error in the journal.
  provisionConfig = name: c: {
    ExecStartPre = [ (confined "${netprov} apply /etc/netprov/${name}.json") ];
    # Idempotent: exits 0 when everything is already gone, so a failure here is real
    # (left-over state) and shows as a failed unit.
    ExecStopPost = [ (confined "${netprov} destroy ${c.id}") ];
  } // lib.optionalAttrs (cfg.ovsdb != null) {
    Environment = [ "NETPROV_OVSDB=${cfg.ovsdb}" ];
  };

  ovsDeps = c: optionals (usesOvs c) [ "ovs-vswitchd.service" "ovsdb.service" ];

  nspawnUnit = name: c: nameValuePair "systemd-nspawn@${name}" {
    overrideStrategy = "asDropin";
    after = ovsDeps c;
    wants = ovsDeps c;
    wantedBy = optional c.autoStart "machines.target";
    # Re-provisioning is `netprov apply`; a changed props file restarts the container
    # only when the operator restarts it.
    restartIfChanged = false;
    serviceConfig = provisionConfig name c // {
      # The template's ExecStart has --network-veth, which nspawn refuses together with
      # --network-namespace-path: reset it and start nspawn in the prepared namespace.
      ExecStart = [
        ""
        (lib.concatStringsSep " " ([ nspawn "--network-namespace-path=${netnsPath c}" "--machine=${name}" ]
          ++ c.nspawnArgs))
      ];
    };
  };

  nixunitsUnit = name: c: nameValuePair "nixunits@${name}" {
    overrideStrategy = "asDropin";
    after = ovsDeps c;
    wants = ovsDeps c;
    wantedBy = optional c.autoStart "multi-user.target";
    restartIfChanged = false;
    serviceConfig = provisionConfig name c // {
      # NixUnits' own command line (NSPAWN_ARGS and SYSTEM_PATH come from its
      # per-container EnvironmentFile) joined to the prepared namespace, as the
      # nspawn-glue's nixunits@ drop-in does.
      ExecStart = [
        ""
        "${nspawn} --machine=${name} -D /var/lib/nixunits/containers/${name}/root --notify-ready=yes --kill-signal=SIGRTMIN+3 $NSPAWN_ARGS --private-users=no --network-namespace-path=${netnsPath c} \${SYSTEM_PATH}/init"
      ];
    };
  };

  # ---- assertions: what Nix can check, each naming the option ----
  opt = name: rest: "services.netprov.containers.${lib.strings.escapeNixIdentifier name}.${rest}";
  validIfName = s: builtins.stringLength s >= 1 && builtins.stringLength s <= 15
    && builtins.match "[!-.0-9;-~]+" s != null && s != "." && s != "..";
  validId = s: builtins.stringLength s <= 64
    && builtins.match "[A-Za-z0-9][A-Za-z0-9_.-]*" s != null
    && !lib.hasInfix ".." s;
  validVlan = v: v >= 0 && v <= 4095;
  vridValue = v:
    if builtins.isInt v then v
    else if v == "" then null
    else if builtins.match "[0-9]{1,3}" v != null then lib.toInt v
    else -1;

  ifnameCheck = path: s: {
    assertion = validIfName s;
    message = "${path} = \"${s}\": an interface name is 1–15 bytes of printable ASCII without '/', ':' or spaces (the kernel's limit).";
  };

  interfaceAssertions = name: ifname: i:
    let p = opt name "network.interfaces.${ifname}"; in
    [ (ifnameCheck p ifname) ]
    ++ optional (i.hostName != null) (ifnameCheck "${p}.hostName" i.hostName)
    ++ optional (i.hostBridge != null) (ifnameCheck "${p}.hostBridge" i.hostBridge)
    ++ optionals (i.ovs != null) ([
      (ifnameCheck "${p}.ovs.bridge" i.ovs.bridge)
      {
        assertion = validVlan i.ovs.vlan;
        message = "${p}.ovs.vlan = ${toString i.ovs.vlan}: a VLAN tag is 0–4095 (0 = untagged).";
      }
    ] ++ map
      (t: {
        assertion = validVlan t;
        message = "${p}.ovs.trunks contains ${toString t}: a VLAN tag is 0–4095.";
      })
      i.ovs.trunks)
    ++ optional (i.macvlan != null && i.macvlan.vrid != null) (
      let v = vridValue i.macvlan.vrid; in {
        assertion = v == null || (v >= 1 && v <= 255);
        message = "${p}.macvlan.vrid = ${builtins.toJSON i.macvlan.vrid}: a VRRP router id is 1–255.";
      });

  containerAssertions = name: c:
    [
      {
        assertion = validId c.id;
        message = "${opt name "id"} = \"${c.id}\": an id is 1–64 bytes of letters, digits, '_', '.', '-', starting with a letter or digit, without \"..\" (it becomes /run/netns/<id>).";
      }
      {
        assertion = validId name;
        message = "services.netprov.containers.${lib.strings.escapeNixIdentifier name}: the container name becomes /etc/netprov/<name>.json and a unit instance; use letters, digits, '_', '.', '-'.";
      }
      {
        assertion = !(usesOvs c) || config.virtualisation.vswitch.enable;
        message = "${opt name "network.interfaces"}: OVS ports need Open vSwitch; set virtualisation.vswitch.enable = true.";
      }
    ]
    ++ concatLists (mapAttrsToList (interfaceAssertions name) c.network.interfaces);

  ids = mapAttrsToList (_: c: c.id) cfg.containers;
in
{
  options.services.netprov = {
    package = mkOption {
      type = types.package;
      defaultText = lib.literalExpression "netprov from this flake";
      description = "The netprov package.";
    };
    ovsdb = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "unix:/run/openvswitch/db.sock";
      description = "OVSDB socket netprov talks to (`NETPROV_OVSDB`); null: netprov's default.";
    };
    containers = mkOption {
      type = types.attrsOf containerType;
      default = { };
      description = ''
        Containers whose network netprov provisions. Each becomes
        `/etc/netprov/<name>.json` (the netprov properties file: the `id`, `network` and
        `sysctl` options below, as JSON) and a drop-in for its unit.
      '';
      example = lib.literalExpression ''
        {
          router1 = {
            network = {
              interfaces.lan = { ip4 = "10.0.0.2/16"; ovs = { bridge = "br0"; vlan = 356; }; };
              interfaces.wan = { ip4 = "70.0.0.2/31"; hostIp4 = "70.0.0.1/31"; };
              ip4route = "70.0.0.1";
              nft = "table inet filter { chain input { type filter hook input priority 0; accept; }; }";
            };
            sysctl = "net.ipv4.ip_forward=1";
            autoStart = true;
          };
        }
      '';
    };
  };

  config = mkIf (cfg.containers != { }) {
    assertions = concatLists (mapAttrsToList containerAssertions cfg.containers) ++ [{
      assertion = lib.length ids == lib.length (lib.unique ids);
      message = "services.netprov.containers: two containers have the same id (${toString ids}).";
    }];

    environment.systemPackages = [ cfg.package ];

    environment.etc = mapAttrs'
      (name: c: nameValuePair "netprov/${name}.json" {
        text = builtins.toJSON (propsOf c);
      })
      cfg.containers;

    systemd.services =
      mapAttrs' nspawnUnit (filterAttrs (_: c: c.unit == "systemd-nspawn") cfg.containers)
      // mapAttrs' nixunitsUnit (filterAttrs (_: c: c.unit == "nixunits") cfg.containers);

    systemd.targets.machines.wantedBy = mkIf
      (lib.any (c: c.autoStart && c.unit == "systemd-nspawn") (builtins.attrValues cfg.containers))
      [ "multi-user.target" ];

    boot.kernelModules = optionals anyOvs [ "openvswitch" ];
  };
}
