# Evaluates nix/module.nix with nixpkgs' module system but without NixOS: the few NixOS
# options the module sets are declared here as stubs. Used by vm-tests/check-nix when a
# nixpkgs `lib` is available (NIXPKGS_LIB=/path/to/nixpkgs/lib), to check that the module
# evaluates, what JSON and units it produces, and that its assertions fire.
#
#   nix-instantiate --eval --strict --json vm-tests/module-eval.nix --arg lib 'import /path/lib'
{ lib }:
let
  inherit (lib) mkOption types;
  fakePkg = name: "/nix/store/00000000000000000000000000000000-${name}";

  nixosStubs = ./lib/nixos-stubs.nix;

  eval = config: (lib.evalModules {
    modules = [
      nixosStubs
      ../nix/module.nix
      { services.netprov.package = fakePkg "netprov"; }
      config
    ];
    specialArgs.pkgs = { util-linux = fakePkg "util-linux"; };
  }).config;

  failed = cfg: map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);

  # A valid configuration using every property.
  good = eval {
    virtualisation.vswitch.enable = true;
    services.netprov.containers.router1 = {
      autoStart = true;
      network = {
        interfaces.lan = { ip4 = "10.0.0.2/16"; ip6 = "a:b:c:d::e/64"; ovs = { bridge = "br0"; vlan = 356; }; };
        interfaces.wan = { ip4 = "70.0.0.2/31"; hostIp4 = "70.0.0.1/31"; ip6 = "2001:bc8::a/127"; hostIp6 = "2001:bc8::b/127"; mtu = 1400; };
        interfaces.dmz = { ip4 = "192.168.5.2/24"; macvlan = { ip4 = "192.168.5.10/24"; vrid = "12"; }; };
        ip4route = "70.0.0.1";
        ip6route = "fe80::1%wan";
        nft = "table inet filter { chain input { type filter hook input priority 0; accept; }; }";
        routes = [{ to = "10.1.0.0/16"; via = "10.0.0.1"; }];
        forwards = [{ proto = "tcp"; hostPort = 8080; port = 80; }];
        masquerade = true;
      };
      sysctl = "net.ipv4.ip_forward=1";
    };
    services.netprov.containers.nu = {
      unit = "nixunits";
      network.interfaces.wan = { ip4 = "10.9.0.2/31"; hostIp4 = "10.9.0.3/31"; };
    };
  };

  bad = eval {
    services.netprov.containers."bad/name" = {
      id = "../etc";
      network.interfaces.waytoolonginterface = {
        ovs = { bridge = "br0"; vlan = 4356; trunks = [ 5000 ]; };
        hostName = "also-a-too-long-name";
        macvlan.vrid = 300;
      };
    };
  };
in
{
  props = builtins.mapAttrs (_: f: builtins.fromJSON f.text) good.environment.etc;
  units = builtins.mapAttrs (_: u: u.serviceConfig) good.systemd.services;
  goodFailures = failed good;
  badFailures = failed bad;
  machinesWanted = good.systemd.targets.machines.wantedBy or [ ];
  kernelModules = good.boot.kernelModules;
}
