# The module probe: nix/module.nix evaluated with nixpkgs' real module system (the lib
# from ../shared/nix, see vm-tests/check-nix) and stand-ins for NixOS options and
# packages (./lib/nixos-stubs.nix, ./lib/stub-pkgs.nix). vm-tests/check-nix checks what
# it returns:
#  - a valid configuration using every property and unit kind: no failed assertion, the
#    props files it writes (netprov validate runs on them), its units;
#  - every invalid option value is refused by the option's type, at that option
#    (`typeErrors`), and the values at the edges of each range are accepted;
#  - every assertion fires and names its option (`assertionCases`);
#  - live changes: a container's reload trigger changes with its own props only.
#
#   nix-instantiate --eval --strict --json vm-tests/module-eval.nix --arg lib 'import /path/lib'
#
# With --argstr case NAME it evaluates one invalid case strictly instead, so check-nix
# can show that the error message names the option.
{ lib, case ? null }:
let
  pkgs = import ./lib/stub-pkgs.nix { inherit lib; };
  evalNixos = import ./lib/nixos-eval.nix { inherit lib pkgs; };

  eval = config: evalNixos [
    ../nix/module.nix
    { services.netprov.enable = true; }
    config
  ];

  failed = cfg: map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);

  # A valid configuration using every property, and every unit kind.
  goodConfig = {
    virtualisation.vswitch.enable = true;
    services.netprov.containers.router1 = {
      autoStart = true;
      network = {
        interfaces.lan = { ip4 = "10.0.0.2/16"; ip6 = "a:b:c:d::e/64"; ovs = { bridge = "br0"; vlan = 356; trunks = [ 0 4095 ]; vlan_mode = "native-untagged"; external_ids.iface-id = "r1-lan"; }; };
        interfaces.wan = { ip4 = "70.0.0.2/31"; hostIp4 = "70.0.0.1/31"; ip6 = "2001:bc8::a/127"; hostIp6 = "2001:bc8::b/127"; mtu = 1400; mac = "02:00:00:00:00:01"; hostName = "r1-wan"; };
        interfaces.dmz = { ip4 = "192.168.5.2/24"; macvlan = { ip4 = "192.168.5.10/24"; vrid = "12"; }; };
        interfaces.vrrp = { macvlan = { }; };
        # An existing host link moved into the container, the NixUnits way.
        interfaces.eth1 = { };
        interfaces."eth0.100" = { ip4 = "10.100.0.2/24"; ovs = { bridge = "br0"; style = "veth"; }; };
        ip4route = "70.0.0.1";
        ip6route = "fe80::1%wan";
        nft = "table inet filter { chain input { type filter hook input priority 0; accept; }; }";
        routes = [{ to = "10.1.0.0/16"; via = "10.0.0.1"; metric = 4294967295; } { to = "fd00::/8"; dev = "lan"; }];
        forwards = [{ proto = "tcp"; hostPort = 8080; port = 80; } { proto = "udp"; hostPort = 65535; port = 1; to = "2001:bc8::a"; }];
        masquerade = true;
      };
      sysctl = "net.ipv4.ip_forward=1";
    };
    services.netprov.containers.nu = {
      unit = "nixunits";
      network.interfaces.wan = { ip4 = "10.9.0.2/31"; hostIp4 = "10.9.0.3/31"; };
    };
    services.netprov.containers."web-1.example" = {
      id = "web1";
      unit = "nixos-container";
      network.interfaces.wan = { ip4 = "10.8.0.2/31"; hostIp4 = "10.8.0.3/31"; };
      network.antiSpoof = false;
    };
    containers."web-1.example".config = { };
    # networking.nftables without flushRuleset is fine next to netprov's host tables.
    networking.nftables.enable = true;
  };
  good = eval goodConfig;

  # Live changes: router1's VLAN tag changes, nu's props stay.
  changed = eval (lib.recursiveUpdate goodConfig {
    services.netprov.containers.router1.network.interfaces.lan.ovs.vlan = 357;
  });
  trigger = cfg: name: cfg.systemd.services.${name}.reloadTriggers;

  # ---- invalid values, each refused by its option's type ----
  # Each case: [ option path below services.netprov.containers.x, value ].
  base = { network.interfaces.lan = { }; };
  typeCases = {
    vlan-4096 = [ [ "network" "interfaces" "lan" "ovs" ] { bridge = "br0"; vlan = 4096; } ];
    vlan-negative = [ [ "network" "interfaces" "lan" "ovs" ] { bridge = "br0"; vlan = -1; } ];
    trunk-5000 = [ [ "network" "interfaces" "lan" "ovs" ] { bridge = "br0"; trunks = [ 10 5000 ]; } ];
    ovs-bridge-lo = [ [ "network" "interfaces" "lan" "ovs" ] { bridge = "lo"; } ];
    ovs-bridge-long = [ [ "network" "interfaces" "lan" "ovs" ] { bridge = "bridge-too-long0"; } ];
    vlan-mode = [ [ "network" "interfaces" "lan" "ovs" ] { bridge = "br0"; vlan_mode = "dot1q"; } ];
    ovs-style = [ [ "network" "interfaces" "lan" "ovs" ] { bridge = "br0"; style = "patch"; } ];
    mtu-67 = [ [ "network" "interfaces" "lan" "mtu" ] 67 ];
    mtu-65536 = [ [ "network" "interfaces" "lan" "mtu" ] 65536 ];
    ip4-octet = [ [ "network" "interfaces" "lan" "ip4" ] "10.0.0.256/24" ];
    ip4-prefix = [ [ "network" "interfaces" "lan" "ip4" ] "10.0.0.1/33" ];
    ip4-is-ip6 = [ [ "network" "interfaces" "lan" "ip4" ] "fe80::1" ];
    ip4-empty = [ [ "network" "interfaces" "lan" "ip4" ] "" ];
    ip6-is-ip4 = [ [ "network" "interfaces" "lan" "ip6" ] "10.0.0.1" ];
    ip6-prefix = [ [ "network" "interfaces" "lan" "ip6" ] "fe80::1/129" ];
    ip6-garbage = [ [ "network" "interfaces" "lan" "ip6" ] "fe80:::zz" ];
    host-ip4 = [ [ "network" "interfaces" "lan" "hostIp4" ] "10.0.0" ];
    host-ip6 = [ [ "network" "interfaces" "lan" "hostIp6" ] "fd00::1/200" ];
    host-name-long = [ [ "network" "interfaces" "lan" "hostName" ] "also-a-too-long-name" ];
    host-name-space = [ [ "network" "interfaces" "lan" "hostName" ] "a b" ];
    host-name-percent = [ [ "network" "interfaces" "lan" "hostName" ] "a%b" ];
    host-bridge-slash = [ [ "network" "interfaces" "lan" "hostBridge" ] "br/0" ];
    host-bridge-all = [ [ "network" "interfaces" "lan" "hostBridge" ] "all" ];
    mac-multicast = [ [ "network" "interfaces" "lan" "mac" ] "01:00:5e:00:00:01" ];
    mac-short = [ [ "network" "interfaces" "lan" "mac" ] "02:00:00:00:00" ];
    macvlan-vrid-300 = [ [ "network" "interfaces" "lan" "macvlan" ] { vrid = 300; } ];
    macvlan-vrid-0 = [ [ "network" "interfaces" "lan" "macvlan" ] { vrid = 0; } ];
    macvlan-vrid-leading-zero = [ [ "network" "interfaces" "lan" "macvlan" ] { vrid = "012"; } ];
    macvlan-mac = [ [ "network" "interfaces" "lan" "macvlan" ] { mac = "zz:00:00:00:00:01"; } ];
    macvlan-ip4 = [ [ "network" "interfaces" "lan" "macvlan" ] { ip4 = "192.168.1.1/40"; } ];
    ip4route-prefix = [ [ "network" "ip4route" ] "10.0.0.1/24" ];
    ip4route-is-ip6 = [ [ "network" "ip4route" ] "fe80::1" ];
    ip6route-bad-if = [ [ "network" "ip6route" ] "fe80::1%a/b" ];
    route-to = [ [ "network" "routes" ] [{ to = "default-ish"; via = "10.0.0.1"; }] ];
    route-via-prefix = [ [ "network" "routes" ] [{ to = "10.1.0.0/16"; via = "10.0.0.1/24"; }] ];
    route-metric = [ [ "network" "routes" ] [{ to = "10.1.0.0/16"; via = "10.0.0.1"; metric = -1; }] ];
    route-dev = [ [ "network" "routes" ] [{ to = "10.1.0.0/16"; dev = "toolonginterfacename"; }] ];
    forward-host-port-0 = [ [ "network" "forwards" ] [{ proto = "tcp"; hostPort = 0; port = 80; }] ];
    forward-port-70000 = [ [ "network" "forwards" ] [{ proto = "tcp"; hostPort = 80; port = 70000; }] ];
    forward-proto = [ [ "network" "forwards" ] [{ proto = "sctp"; hostPort = 80; port = 80; }] ];
    forward-to-prefix = [ [ "network" "forwards" ] [{ proto = "tcp"; hostPort = 80; port = 80; to = "10.0.0.2/24"; }] ];
    forward-host-ip = [ [ "network" "forwards" ] [{ proto = "tcp"; hostPort = 80; port = 80; hostIp = "host"; }] ];
    netns-relative = [ [ "network" "netns_path" ] "run/netns/x" ];
    masquerade-string = [ [ "network" "masquerade" ] "yes" ];
    anti-spoof-int = [ [ "network" "antiSpoof" ] 1 ];
    nft-int = [ [ "network" "nft" ] 1 ];
    id-dotdot = [ [ "id" ] "a..b" ];
    id-slash = [ [ "id" ] "../etc" ];
    id-empty = [ [ "id" ] "" ];
    id-long = [ [ "id" ] (lib.concatStrings (lib.genList (_: "a") 65)) ];
    sysctl-int = [ [ "sysctl" ] 5 ];
    unit-kind = [ [ "unit" ] "docker" ];
    nspawn-args = [ [ "nspawnArgs" ] "--boot" ];
    auto-start = [ [ "autoStart" ] "yes" ];
    external-ids = [ [ "network" "interfaces" "lan" "ovs" ] { bridge = "br0"; external_ids.iface-id = 5; } ];
    sysctl-list = [ [ "sysctl" ] { "net.ipv4.ip_forward" = [ 1 ]; } ];
    route-no-to = [ [ "network" "routes" ] [{ via = "10.0.0.1"; }] ];
    forward-no-port = [ [ "network" "forwards" ] [{ proto = "tcp"; hostPort = 80; }] ];
  };
  # services.netprov's own options.
  topCases = {
    enable = [ "enable" "yes" ];
    ovsdb = [ "ovsdb" 5 ];
    check-props = [ "checkProps" 1 ];
    containers = [ "containers" [ ] ];
  };
  topTypeErrors = builtins.mapAttrs
    (_: c:
      let cfg = evalNixos [ ../nix/module.nix { services.netprov.${builtins.elemAt c 0} = builtins.elemAt c 1; } ];
      in !(builtins.tryEval (builtins.deepSeq cfg.services.netprov.${builtins.elemAt c 0} true)).success)
    topCases;
  typeCaseConfig = c:
    let
      path = builtins.elemAt c 0;
      value = builtins.elemAt c 1;
    in
    {
      virtualisation.vswitch.enable = true;
      services.netprov.containers.x = lib.recursiveUpdate base (lib.setAttrByPath path value);
    };
  # Does reading the option (at its path) fail, while the container's other options
  # still evaluate (the error is at that option, not elsewhere)?
  typeErrors = builtins.mapAttrs
    (_: c:
      let
        cfg = eval (typeCaseConfig c);
        x = cfg.services.netprov.containers.x;
        path = builtins.elemAt c 0;
        reads = v: (builtins.tryEval (builtins.deepSeq v true)).success;
      in
      {
        optionRefused = !(reads (lib.getAttrFromPath path x));
        propsRefused = !(reads cfg.services.netprov.generatedProps.x);
        restFine = reads (if path == [ "id" ] then x.unit else x.id);
      })
    typeCases;

  # The edges of each range and format, accepted.
  edgeValues = eval {
    virtualisation.vswitch.enable = true;
    services.netprov.containers.edge = {
      network.interfaces.a = { ip4 = "0.0.0.0/0"; ip6 = "::/0"; mtu = 68; ovs = { bridge = "b"; vlan = 4095; trunks = [ 0 ]; }; };
      network.interfaces.b = { ip4 = "255.255.255.255/32"; ip6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"; mtu = 65535; mac = "FE:FF:FF:FF:FF:FF"; macvlan = { vrid = 255; ip6 = "::ffff:10.0.0.1"; }; };
      network.interfaces.c = { ip6 = "fe80::1"; hostName = "abcdefghijklmno"; hostBridge = "x!#$&'()*+,-.;<"; macvlan.vrid = "1"; };
      network.ip6route = "fe80::1%abcdefghijklmno";
      network.netns_path = "/proc/1/ns/net";
      network.forwards = [{ proto = "udp"; hostPort = 1; port = 65535; hostIp = "::1"; to = "fe80::1"; }];
      id = "A" + lib.concatStrings (lib.genList (_: "a") 63);
    };
  };

  # ---- assertions: each fires on its case, naming its option ----
  assertionCases = builtins.mapAttrs (_: config: failed (eval config)) {
    machine-name-underscore = { services.netprov.containers.my_web = base; };
    machine-name-trailing-dash = { services.netprov.containers."web-" = base; };
    machine-name-leading-dash = { services.netprov.containers."-web" = base; };
    machine-name-empty-label = { services.netprov.containers."a..b" = base; };
    machine-name-long = { services.netprov.containers.${lib.concatStrings (lib.genList (_: "a") 65)} = base; };
    ifname-long = { services.netprov.containers.x.network.interfaces.waytoolonginterface = { }; };
    ifname-lo = { services.netprov.containers.x.network.interfaces.lo = { }; };
    ifname-colon = { services.netprov.containers.x.network.interfaces."eth0:1" = { }; };
    ovs-without-vswitch = { services.netprov.containers.x.network.interfaces.lan.ovs.bridge = "br0"; };
    duplicate-id = { services.netprov.containers = { a = { id = "same"; }; b = { id = "same"; }; }; };
    nspawn-network-section = {
      services.netprov.containers.x = base;
      systemd.nspawn.x.networkConfig.VirtualEthernet = true;
    };
    nftables-flush = {
      services.netprov.containers.x.network.interfaces.wan = { ip4 = "10.0.0.2/31"; hostIp4 = "10.0.0.3/31"; };
      networking.nftables = { enable = true; flushRuleset = true; };
    };
    nixos-container-undeclared = { services.netprov.containers.x = base // { unit = "nixos-container"; }; };
    nixos-container-disabled = {
      services.netprov.containers.x = base // { unit = "nixos-container"; };
      containers.x.config = { };
      boot.enableContainers = false;
    };
    nixos-container-private-network = {
      services.netprov.containers.x = base // { unit = "nixos-container"; };
      containers.x = { config = { }; privateNetwork = true; };
    };
    nixos-container-interfaces = {
      services.netprov.containers.x = base // { unit = "nixos-container"; };
      containers.x = { config = { }; interfaces = [ "eth1" ]; };
    };
    nixos-container-private-users = {
      services.netprov.containers.x = base // { unit = "nixos-container"; };
      containers.x = { config = { }; privateUsers = "pick"; };
    };
    nixos-container-auto-start = {
      services.netprov.containers.x = base // { unit = "nixos-container"; autoStart = true; };
      containers.x.config = { };
    };
  };
  # Close to an assertion's case, but fine.
  notAsserted = builtins.mapAttrs (_: config: failed (eval config)) {
    # Without host rules (no veth, antiSpoof off), flushRuleset cannot hurt.
    flush-without-host-rules = {
      services.netprov.containers.x.network = { interfaces.eth1 = { }; antiSpoof = false; };
      networking.nftables = { enable = true; flushRuleset = true; };
    };
    nspawn-exec-section = {
      services.netprov.containers.x = base;
      systemd.nspawn.x.execConfig.Boot = true;
    };
    machine-names = { services.netprov.containers = { "a-b" = base; "a.b-c.d9" = base; "0" = base; }; };
  };

  # Two containers claiming the same veth host end: each file is valid alone, together
  # they are not; the build-time check must name the option and the line.
  conflict = eval {
    services.netprov.containers.a.network.interfaces.wan = { ip4 = "10.0.0.2/31"; hostIp4 = "10.0.0.3/31"; hostName = "shared0"; };
    # A ruleset naming an interface: its dry run needs a placeholder interface, which
    # a build sandbox cannot make (no /dev/net/tun).
    services.netprov.containers.a.network.nft = ''
      table inet filter {
        chain input { type filter hook input priority 0; policy accept; iifname "wan" accept; }
      }
    '';
    services.netprov.containers.b.network.interfaces.wan = { ip4 = "10.0.0.4/31"; hostIp4 = "10.0.0.5/31"; hostName = "shared0"; };
  };

  # What the NixOS manual shows: every visible option of the module, as the manual's
  # generator (optionAttrSetToDocList) lists it.
  docs = map (o: { inherit (o) name type description; default = o.default or null; })
    (lib.filter (o: lib.hasPrefix "services.netprov." o.name && o.visible && !o.internal)
      (lib.optionAttrSetToDocList (lib.evalModules {
        modules = [ ./lib/nixos-stubs.nix ../nix/module.nix ];
        specialArgs = { inherit pkgs; };
      }).options));

  # The user's own setting wins over the module's forwarding default.
  noForwarding = (eval (lib.recursiveUpdate goodConfig {
    boot.kernel.sysctl."net.ipv4.conf.all.forwarding" = false;
  })).boot.kernel.sysctl."net.ipv4.conf.all.forwarding";

  disabled = evalNixos [ ../nix/module.nix { services.netprov.containers.x = base; } ];
  check = good.services.netprov.propsCheck;
in
if case != null then
  # One invalid case, strictly: its error message is what nixos-rebuild would show.
  let cfg = eval (typeCaseConfig typeCases.${case}); in
  builtins.deepSeq (lib.getAttrFromPath (builtins.elemAt typeCases.${case} 0) cfg.services.netprov.containers.x) true
else
{
  props = good.services.netprov.generatedProps;
  etc = builtins.mapAttrs (_: f: f.source) good.environment.etc;
  units = builtins.mapAttrs (_: u: { inherit (u) serviceConfig reloadTriggers overrideStrategy restartIfChanged after; }) good.systemd.services;
  nixosContainers = builtins.mapAttrs (_: c: { inherit (c) networkNamespace; }) good.containers;
  sysctl = good.boot.kernel.sysctl;
  inherit noForwarding;
  sysctlWithoutForwards = (eval { services.netprov.containers.x = base; }).boot.kernel.sysctl;
  goodFailures = failed good;
  machinesWanted = good.systemd.targets.machines.wantedBy or [ ];
  kernelModules = good.boot.kernelModules;
  coexist = {
    networkd = good.systemd.network.networks."10-netprov" or null;
    networkmanager = good.networking.networkmanager.unmanaged;
    dhcpcd = good.networking.dhcpcd.denyInterfaces;
  };
  propsCheck = { inherit (check) name; inherit (check.passthru) script; nativeBuildInputs = map (p: p.name) check.passthru.env.nativeBuildInputs; };
  liveChange = {
    router1Changed = trigger good "systemd-nspawn@router1" != trigger changed "systemd-nspawn@router1";
    nuUnchanged = trigger good "nixunits@nu" == trigger changed "nixunits@nu";
    nixosContainerUnchanged = trigger good "container@web-1.example" == trigger changed "container@web-1.example";
    router1OnlyTrigger = builtins.removeAttrs good.systemd.services."systemd-nspawn@router1" [ "reloadTriggers" ]
      == builtins.removeAttrs changed.systemd.services."systemd-nspawn@router1" [ "reloadTriggers" ];
  };
  inherit typeErrors topTypeErrors assertionCases notAsserted;
  typeCasePaths = builtins.mapAttrs (_: c: lib.concatStringsSep "." (builtins.elemAt c 0)) typeCases;
  conflictProps = conflict.services.netprov.generatedProps;
  conflictFailures = failed conflict;
  edgeFailures = failed edgeValues;
  inherit docs;
  edgeProps = edgeValues.services.netprov.generatedProps.edge;
  disabledUnits = builtins.attrNames disabled.systemd.services;
  disabledEtc = builtins.attrNames disabled.environment.etc;
}
