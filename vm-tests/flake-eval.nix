# Evaluates the flake's outputs with a stand-in nixpkgs (nixpkgs' real `lib`, the package
# stand-ins of ./lib/stub-pkgs.nix) and each NixOS VM test node — and each of its
# specialisations — with nixpkgs' module system and the option stand-ins of
# ./lib/nixos-stubs.nix: the nodes must pass the module's assertions; their props files
# and test scripts are returned so check-nix can run `netprov validate` and the test
# driver's pyflakes on them. Nothing is built: this catches Nix mistakes in flake.nix and
# vm-tests/*.nix that parsing alone does not, although the VMs cannot boot here.
#
#   nix-instantiate --eval --strict --json vm-tests/flake-eval.nix --arg lib 'import /path/lib'
{ lib }:
let
  system = "x86_64-linux";
  pkgs = import ./lib/stub-pkgs.nix { inherit lib system; };
  evalNixos = import ./lib/nixos-eval.nix { inherit lib pkgs; };
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (_: pkgs);
  };
  flake = import ../flake.nix;
  self = flake.outputs { inherit self nixpkgs; } // { outPath = toString ../.; };

  checks = self.checks.${system};
  tests = lib.mapAttrs (_: c: c.passthru.test) (lib.filterAttrs (n: _: lib.hasPrefix "vm-" n) checks);

  failedAssertions = c: map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  describe = c: {
    failedAssertions = failedAssertions c;
    props = builtins.mapAttrs (_: builtins.fromJSON) c.services.netprov.generatedProps;
    units = builtins.attrNames c.systemd.services;
  };

  evalTest = t:
    let
      node = t.nodes.machine;
      c = evalNixos [ node ];
      # A specialisation is the node plus its configuration (inheritParentConfig).
      specialisations = builtins.mapAttrs (_: s: describe (evalNixos [ node s.configuration ])) c.specialisation;
      script = if builtins.isFunction t.testScript then t.testScript { nodes.machine = c; } else t.testScript;
    in
    describe c // {
      inherit (t) name;
      inherit script specialisations;
      # The names the test driver defines for the script (one node: also `machine`).
      machines = lib.unique (builtins.attrNames t.nodes ++ lib.optional (builtins.length (builtins.attrNames t.nodes) == 1) "machine");
      skipLint = t.skipLint or false;
    };

  overlaid = self.overlays.default pkgs pkgs;
in
{
  outputs = builtins.attrNames self;
  checks = builtins.attrNames checks;
  packages = builtins.attrNames self.packages.${system};
  package = {
    inherit (self.packages.${system}.default.passthru) pname version cargoBuildFlags;
    lockFile = toString self.packages.${system}.default.passthru.cargoLock.lockFile;
    lockFileRead = builtins.stringLength self.packages.${system}.default.passthru.cargoLockText > 0;
    # The filtered source (its store path is computed, filter included; in this
    # read-only evaluation it is not copied, so nothing may be read from it — which is
    # why nix/package.nix reads Cargo.toml and Cargo.lock from the checkout).
    src = builtins.unsafeDiscardStringContext (baseNameOf (toString self.packages.${system}.default.passthru.src));
  };
  overlayPackage = overlaid.netprov.name;
  devShells = builtins.attrNames self.devShells.${system};
  # The flake's module, with only `enable` set: the package defaults to the flake's.
  flakeModulePackage = (evalNixos [ self.nixosModules.default { services.netprov.enable = true; } ]).services.netprov.package.name;
  tests = builtins.mapAttrs (_: evalTest) tests;
}
