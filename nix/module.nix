# NixOS module: containers declared as netprov properties, provisioned before their
# container unit starts, re-applied live on `nixos-rebuild switch`, torn down after the
# container stops.
#
#   services.netprov.enable = true;
#   services.netprov.containers.web = {
#     network.interfaces.wan = { ip4 = "10.0.0.2/31"; hostIp4 = "10.0.0.3/31"; };
#   };
#
# becomes /etc/netprov/web.json (the same tree, as JSON, checked by `netprov validate`
# when the system is built) and a drop-in for the container's unit
# (systemd-nspawn@web, nixunits@web or NixOS's container@web) that runs
# `netprov apply` before the container starts and on reload, joins the container to the
# prepared namespace, and runs `netprov destroy` after it stops.
{ config, options, lib, pkgs, utils, ... }:
let
  inherit (lib) mkOption mkIf mkBefore types mapAttrs' mapAttrsToList
    nameValuePair filterAttrs concatLists optional optionals optionalAttrs any attrValues;

  cfg = config.services.netprov;
  props = import ./props-options.nix { inherit lib; };

  # systemd-nspawn's machine names are host names (machine_name_is_valid): dot-separated
  # labels of letters, digits and '-', no label starting or ending with '-', at most 64
  # bytes. The name is also the unit instance and /etc/netprov/<name>.json.
  label = "[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?";
  validMachineName = s: builtins.stringLength s <= 64 && builtins.match "${label}([.]${label})*" s != null;

  # Unit-level settings of a container, next to its properties.
  unitModule = { name, config, ... }: {
    options = {
      unit = mkOption {
        type = types.enum [ "systemd-nspawn" "nixunits" "nixos-container" ];
        default = "systemd-nspawn";
        description = ''
          Which container unit gets the network:
          `systemd-nspawn`: a drop-in for `systemd-nspawn@<name>.service` (root file system
          in `/var/lib/machines/<name>`);
          `nixunits`: a drop-in for a NixUnits-style `nixunits@<name>.service`, whose own
          `network` options must then stay empty (nspawn refuses `--network-veth` together
          with `--network-namespace-path`);
          `nixos-container`: NixOS's own declarative container `containers.<name>`, whose
          {option}`containers.<name>.networkNamespace` this module sets; its
          `privateNetwork`, `interfaces`, `macvlans` and `extraVeths` must stay unset.
        '';
      };
      autoStart = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Start the container at boot (`machines.target` for nspawn, `multi-user.target`
          for nixunits). For `unit = "nixos-container"` use
          {option}`containers.<name>.autoStart` instead.
        '';
      };
      nspawnArgs = mkOption {
        type = types.listOf types.str;
        default = [ "--quiet" "--keep-unit" "--boot" "--link-journal=try-guest" "--settings=override" ];
        description = ''
          Arguments of `systemd-nspawn` in the `systemd-nspawn@` drop-in, after
          `--network-namespace-path=` and `--machine=<name>` which the module adds (so they
          may end with a command to run instead of `--boot`). Each is one argument (escaped
          for systemd). The default is the upstream template's without `--network-veth`
          and without `-U` (as the nspawn-glue's drop-in: nspawn joins the namespace from
          inside the container's new user namespace, which has no rights over a namespace
          the host's user namespace owns).
        '';
      };
      netnsPath = mkOption {
        type = types.str;
        readOnly = true;
        default =
          if config.network.netns_path != null then config.network.netns_path
          else "/run/netns/${config.id}";
        defaultText = lib.literalMD "`network.netns_path`, or `/run/netns/<id>`";
        description = "The network namespace the container joins (read-only).";
      };
    };
  };

  containerType = types.submodule [ props.containerModule unitModule ];

  # props.json: the property options only, without nulls and empty lists (netprov applies
  # its own defaults to what is absent). Empty attribute sets stay: `interfaces.eth1 = { }`
  # is an existing host link moved into the container, `macvlan = { }` a macvlan without
  # address.
  clean = v:
    if builtins.isAttrs v then
      filterAttrs (_: x: x != null && x != [ ]) (builtins.mapAttrs (_: clean) v)
    else if builtins.isList v then map clean v
    else v;
  propsOf = c: clean { inherit (c) id network sysctl; };

  # One value per line, so `netprov validate`'s FILE:LINE points at the value.
  toPrettyJSON = indent: v:
    let inner = indent + "  "; in
    if builtins.isAttrs v && v != { } then
      "{\n" + lib.concatMapStringsSep ",\n"
        (k: "${inner}${builtins.toJSON k}: ${toPrettyJSON inner v.${k}}")
        (builtins.attrNames v) + "\n${indent}}"
    else if builtins.isList v && v != [ ] then
      "[\n" + lib.concatMapStringsSep ",\n" (x: inner + toPrettyJSON inner x) v + "\n${indent}]"
    else builtins.toJSON v;

  propsText = c: toPrettyJSON "" (propsOf c) + "\n";

  # Every props file, checked together by `netprov validate` when the system is built
  # (as networking.nftables' checkRuleset): a bad value or a conflict between two
  # containers fails `nixos-rebuild` with the option path and the file line.
  checkedProps = pkgs.runCommand "netprov-props"
    {
      # util-linux: unshare, for netprov's scratch network namespace (see the script).
      nativeBuildInputs = [ cfg.package pkgs.jq pkgs.util-linux ];
      preferLocalBuild = true;
    }
    (''
      mkdir -p "$out"
    '' + lib.concatStrings (mapAttrsToList
      (name: text: ''
        cp ${pkgs.writeText "netprov-${name}.json" text} "$out"/${lib.escapeShellArg "${name}.json"}
      '')
      cfg.generatedProps) + ''
      bash ${./validate-props.sh} "$out"
    '');

  propsSource = name:
    if cfg.checkProps then "${checkedProps}/${name}.json"
    else pkgs.writeText "netprov-${name}.json" cfg.generatedProps.${name};

  netprov = lib.getExe' cfg.package "netprov";
  nspawn = "${config.systemd.package}/bin/systemd-nspawn";
  exec = utils.escapeSystemdExecArgs;

  interfaces = c: attrValues c.network.interfaces;
  usesOvs = c: any (i: i.ovs != null) (interfaces c);
  anyOvs = any usesOvs (attrValues cfg.containers);
  # Plain veths only: netprov keeps no host rules for an OVS port's veth (any style).
  isVeth = i: i.ovs == null
    && (i.hostIp4 != null || i.hostIp6 != null || i.hostName != null || i.hostBridge != null);
  # Containers for which netprov keeps tables in the host's nftables ruleset.
  hostRules = c: c.network.masquerade == true || c.network.forwards != [ ]
    || (c.network.antiSpoof != false && any isVeth (interfaces c));
  forwarding = c: c.network.masquerade == true || c.network.forwards != [ ];
  usesIp6 = c: any (i: i.ip6 != null || (i.macvlan != null && i.macvlan.ip6 != null)) (interfaces c);
  forwards6 = c: any (f: lib.hasInfix ":" (toString f.to) || lib.hasInfix ":" (toString f.hostIp)) c.network.forwards;

  # As the nspawn-glue's drop-ins do: netprov runs as root but keeps only the two
  # capabilities it needs (netlink/OVS/nft: CAP_NET_ADMIN; entering and binding network
  # namespaces: CAP_SYS_ADMIN), and cannot gain others.
  confined = args: exec ([ "${pkgs.util-linux}/bin/setpriv" "--no-new-privs" "--inh-caps=-all"
    "--ambient-caps=-all" "--bounding-set=-all,+net_admin,+sys_admin" "--" netprov ] ++ args);
  apply = name: confined [ "apply" "/etc/netprov/${name}.json" ];

  # What every unit kind gets: provision before start, re-apply on reload, tear down after
  # stop. A failed apply fails the start (or the reload, and so `nixos-rebuild switch`)
  # with netprov's error in the journal.
  provision = name: c: {
    # A changed props file changes only X-Reload-Triggers, so switch-to-configuration
    # reloads a running container (`netprov apply` converges its namespace live: a VLAN
    # tag, a ruleset, an address) instead of restarting it; an unchanged one is left
    # alone. A stopped container gets the new file at its next start.
    # (The props file's hash, not its store path: the checked files share one
    # derivation, whose path changes whenever any container's props change.)
    reloadTriggers = [ (builtins.hashString "sha256" cfg.generatedProps.${name}) ];
    after = ovsDeps c ++ [ "netprov-preload.service" ];
    wants = ovsDeps c ++ [ "netprov-preload.service" ];
    serviceConfig = {
      ExecStartPre = mkBefore [ (apply name) ];
      ExecReload = mkBefore [ (apply name) ];
      # Idempotent: exits 0 when everything is already gone, so a failure here is real
      # (left-over state) and shows as a failed unit.
      ExecStopPost = [ (confined [ "destroy" c.id ]) ];
    } // optionalAttrs (cfg.ovsdb != null) {
      Environment = [ "NETPROV_OVSDB=${cfg.ovsdb}" ];
    };
  };

  ovsDeps = c: optionals (usesOvs c) [ "ovs-vswitchd.service" "ovsdb.service" ];

  nspawnUnit = name: c: nameValuePair "systemd-nspawn@${name}" (lib.recursiveUpdate (provision name c) {
    overrideStrategy = "asDropin";
    wantedBy = optional c.autoStart "machines.target";
    # Anything but the props (nspawnArgs, the package) restarts the container only when
    # the operator restarts it.
    restartIfChanged = false;
    serviceConfig.ExecStart = [
      ""
      (exec ([ nspawn "--network-namespace-path=${c.netnsPath}" "--machine=${name}" ] ++ c.nspawnArgs))
    ];
  });

  nixunitsUnit = name: c: nameValuePair "nixunits@${name}" (lib.recursiveUpdate (provision name c) {
    overrideStrategy = "asDropin";
    wantedBy = optional c.autoStart "multi-user.target";
    restartIfChanged = false;
    serviceConfig.ExecStart = [
      ""
      # NixUnits' own command line (NSPAWN_ARGS and SYSTEM_PATH come from its
      # per-container EnvironmentFile, and are expanded by systemd: left unescaped)
      # joined to the prepared namespace, as the nspawn-glue's nixunits@ drop-in does.
      "${exec [ nspawn "--machine=${name}" "-D" "/var/lib/nixunits/containers/${name}/root" "--notify-ready=yes" "--kill-signal=SIGRTMIN+3" ]} $NSPAWN_ARGS ${exec [ "--private-users=no" "--network-namespace-path=${c.netnsPath}" ]} \${SYSTEM_PATH}/init"
    ];
  });

  # NixOS's declarative container: its own module writes container@<name>.service (and
  # runs nspawn with --network-namespace-path from `networkNamespace`); this adds the
  # provisioning around it. Its own ExecReload (switch-to-configuration inside the
  # container) runs after netprov's.
  nixosContainerUnit = name: c: nameValuePair "container@${name}" (provision name c);

  byUnit = kind: filterAttrs (_: c: c.unit == kind) cfg.containers;

  # ---- assertions: what the types cannot see, each naming the option ----
  opt = name: rest: "services.netprov.containers.${lib.strings.escapeNixIdentifier name}${rest}";

  # Interface names are attribute names, which no option type checks.
  interfaceAssertions = name: ifname: {
    assertion = props.formats.ifname.check ifname;
    message = "${opt name ".network.interfaces.${lib.strings.escapeNixIdentifier ifname}"}: \"${ifname}\" is not an ${props.formats.ifname.description}.";
  };

  # Whether a module other than this one declares the NixOS container (this one only
  # sets its networkNamespace).
  declaredElsewhere = name: any (d: builtins.isAttrs d.value && d.value ? ${name})
    (lib.filter (d: d.file != toString ./module.nix) (options.containers.definitionsWithLocations or [ ]));

  containerAssertions = name: c:
    let
      nspawnFile = config.systemd.nspawn.${name} or { };
      nc = if declaredElsewhere name then config.containers.${name} else null;
    in
    map (interfaceAssertions name) (builtins.attrNames c.network.interfaces)
    ++ [
      {
        assertion = validMachineName name;
        message = "${opt name ""}: \"${name}\" is not a machine name systemd-nspawn accepts: it names the machine, the unit instance and /etc/netprov/<name>.json; use dot-separated labels of letters, digits and '-' (no label starting or ending with '-', no '_'), at most 64 bytes.";
      }
      {
        assertion = !(usesOvs c) || config.virtualisation.vswitch.enable;
        message = "${opt name ".network.interfaces"}: OVS ports need Open vSwitch; set virtualisation.vswitch.enable = true.";
      }
      {
        assertion = (nspawnFile.networkConfig or { }) == { };
        message = "systemd.nspawn.${lib.strings.escapeNixIdentifier name}.networkConfig: the container joins the network namespace netprov prepares (${opt name ""}); a [Network] section in its .nspawn file would give it a second network setup. Leave networkConfig empty.";
      }
      {
        assertion = !(hostRules c) || !config.networking.nftables.enable || !config.networking.nftables.flushRuleset;
        message = "${opt name ".network"}: netprov keeps this container's host rules (anti-spoofing, masquerade, forwards) in its own nftables tables, and networking.nftables.flushRuleset = true would delete them on every firewall reload. Set networking.nftables.flushRuleset = false (networking.nftables then replaces only its own tables).";
      }
    ]
    ++ optionals (c.unit == "nixos-container") [
      {
        assertion = config.boot.enableContainers && nc != null;
        message = "${opt name ".unit"} = \"nixos-container\": declare the NixOS container containers.${lib.strings.escapeNixIdentifier name} (with boot.enableContainers).";
      }
      {
        assertion = nc == null || (!nc.privateNetwork && nc.interfaces == [ ] && (nc.macvlans or [ ]) == [ ] && (nc.extraVeths or { }) == { });
        message = "containers.${lib.strings.escapeNixIdentifier name}: its network comes from ${opt name ""}; leave privateNetwork, interfaces, macvlans and extraVeths unset (nspawn refuses them together with --network-namespace-path).";
      }
      {
        assertion = nc == null || (nc.privateUsers or "no") == "no";
        message = "containers.${lib.strings.escapeNixIdentifier name}.privateUsers: must be \"no\" for a container networked by netprov (nspawn joins the namespace from inside a new user namespace, which has no rights over one the host owns).";
      }
      {
        assertion = !c.autoStart;
        message = "${opt name ".autoStart"}: for a NixOS container use containers.${lib.strings.escapeNixIdentifier name}.autoStart.";
      }
    ];

in
{
  options.services.netprov = {
    enable = lib.mkEnableOption "netprov, which provisions the network of the containers in {option}`services.netprov.containers`";

    package = lib.mkPackageOption pkgs "netprov" {
      extraDescription = "The netprov flake's `overlays.default` provides it (its `nixosModules.default` sets it by itself).";
    };

    ovsdb = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "unix:/run/openvswitch/db.sock";
      description = "OVSDB socket netprov talks to (`NETPROV_OVSDB`); null: netprov's default.";
    };

    checkProps = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Check all generated props files together with `netprov validate` when the system is
        built, so a bad value or a conflict between containers (the same host-side name,
        address or port forward) fails `nixos-rebuild` instead of the container's start.
        Runs {option}`services.netprov.package` on the build machine: turn it off when
        cross-compiling.
      '';
    };

    containers = mkOption {
      type = types.attrsOf containerType;
      default = { };
      description = ''
        Containers whose network netprov provisions. Each becomes
        `/etc/netprov/<name>.json` (the netprov properties file: the `id`, `network` and
        `sysctl` options below, as JSON) and a drop-in for its unit. The attribute name is
        the machine name.
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

    propsCheck = mkOption {
      type = types.package;
      internal = true;
      readOnly = true;
      default = checkedProps;
      description = "The derivation that checks all props files together and holds them.";
    };

    generatedProps = mkOption {
      type = types.attrsOf types.str;
      internal = true;
      readOnly = true;
      default = builtins.mapAttrs (_: propsText) cfg.containers;
      description = "The props file of each container, as text (before the build-time check).";
    };
  };

  config = mkIf cfg.enable {
    assertions = concatLists (mapAttrsToList containerAssertions cfg.containers)
      ++ mapAttrsToList
        (name: c:
          let others = builtins.attrNames (filterAttrs (n: o: n != name && o.id == c.id) cfg.containers); in {
            assertion = others == [ ];
            message = "${opt name ".id"} = \"${c.id}\": also the id of ${lib.concatMapStringsSep ", " (n: opt n "") others} (the id names /run/netns/<id>).";
          })
        cfg.containers;

    environment.systemPackages = [ cfg.package ];

    environment.etc = mapAttrs'
      (name: _: nameValuePair "netprov/${name}.json" { source = propsSource name; })
      cfg.containers;

    systemd.services =
      mapAttrs' nspawnUnit (byUnit "systemd-nspawn")
      // mapAttrs' nixunitsUnit (byUnit "nixunits")
      // mapAttrs' nixosContainerUnit (byUnit "nixos-container")
      // {
        # Once per boot, before the first container's apply: netprov's executable read
        # with read(2), which fills its page cache with large, physically contiguous
        # folios. Left to `exec`, the kernel reads a mapped file in single 4 KiB pages
        # (on x86; arm64 asks for 64 KiB for code), and every later cold apply ran
        # ~1 ms slower here (docs/benchmarks.md, round 15). A failure blocks nothing
        # (the containers want it, they do not require it).
        netprov-preload = {
          description = "netprov: read the netprov executable into the page cache";
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
            ExecStart = exec [ "${pkgs.coreutils}/bin/dd" "if=${netprov}" "of=/dev/null" "bs=128K" "status=none" ];
          };
        };
      };

    containers = builtins.mapAttrs (_: c: { networkNamespace = c.netnsPath; }) (byUnit "nixos-container");

    systemd.targets.machines.wantedBy = mkIf
      (any (c: c.autoStart && c.unit == "systemd-nspawn") (attrValues cfg.containers))
      [ "multi-user.target" ];

    boot.kernelModules = optionals anyOvs [ "openvswitch" ];

    # netprov configures its host-side links (veth host ends and veth-style OVS ports,
    # named np-<id>-<if>) itself: keep systemd-networkd, NetworkManager and dhcpcd off
    # them, as nspawn-glue/coexist/ does on other hosts (docs/nspawn.md, Coexistence).
    systemd.network.networks."10-netprov" = {
      matchConfig.Name = "np-*";
      linkConfig.Unmanaged = true;
    };
    networking.networkmanager.unmanaged = [ "interface-name:np-*" ];
    networking.dhcpcd.denyInterfaces = [ "np-*" ];

    # Masquerade and port forwards route through the host. A default the user overrides
    # with any plain definition; just above mkDefault, because NixOS's networking module
    # itself sets net.ipv4.conf.all.forwarding with mkDefault (from proxyARP), and two
    # definitions of a sysctl at the same priority are an error.
    boot.kernel.sysctl = lib.mkMerge [
      (mkIf (any forwarding (attrValues cfg.containers)) {
        "net.ipv4.conf.all.forwarding" = lib.mkOverride 999 true;
      })
      (mkIf (any (c: (c.network.masquerade == true && usesIp6 c) || forwards6 c) (attrValues cfg.containers)) {
        "net.ipv6.conf.all.forwarding" = lib.mkOverride 999 true;
      })
    ];
  };
}
