# Evaluates the flake's outputs with a stub nixpkgs (nixpkgs' real `lib`, fake packages)
# and each NixOS VM test node with nixpkgs' module system and the stubs of
# ./lib/nixos-stubs.nix: the test nodes must pass the module's assertions, and the props
# files they declare are returned so check-nix can run `netprov validate` on them.
# Nothing is built: this catches Nix mistakes in flake.nix and vm-tests/*.nix that
# parsing alone does not.
#
#   nix-instantiate --eval --strict --json vm-tests/flake-eval.nix --arg lib 'import /path/lib'
{ lib }:
let
  system = "x86_64-linux";
  fake = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  pkgs = {
    inherit lib;
    stdenv.hostPlatform.system = system;
    callPackage = _: _: fake "netprov";
    testers.runNixOSTest = test: test;
    runCommand = name: _: _: fake name;
    pkgsStatic.busybox = fake "busybox";
    iproute2 = fake "iproute2";
    nftables = fake "nftables";
    jq = fake "jq";
    netcat-openbsd = fake "netcat-openbsd";
    util-linux = fake "util-linux";
  };
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (_: pkgs);
  };
  flake = import ../flake.nix;
  self = flake.outputs { inherit self nixpkgs; } // { outPath = toString ../.; };

  evalNode = test: (lib.evalModules {
    modules = [ ./lib/nixos-stubs.nix test.nodes.machine ];
    specialArgs = { inherit pkgs; };
  }).config;

  checks = self.checks.${system};
  tests = lib.filterAttrs (n: _: lib.hasPrefix "vm-" n) checks;
in
{
  outputs = builtins.attrNames self;
  checks = builtins.attrNames checks;
  packages = builtins.attrNames self.packages.${system};
  devShells = builtins.attrNames self.devShells.${system};
  tests = builtins.mapAttrs
    (_: t:
      let c = evalNode t; in {
        inherit (t) name;
        script = t.testScript;
        failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
        props = lib.mapAttrs' (n: f: lib.nameValuePair (lib.removePrefix "netprov/" n) (builtins.fromJSON f.text))
          (lib.filterAttrs (n: _: lib.hasPrefix "netprov/" n) c.environment.etc);
        execStart = lib.mapAttrs (_: u: builtins.elemAt u.serviceConfig.ExecStart 1)
          (lib.filterAttrs (n: _: lib.hasPrefix "systemd-nspawn@" n) c.systemd.services);
        tmpfiles = c.systemd.tmpfiles.rules;
      })
    tests;
}
