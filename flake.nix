{
  description = "netprov: declarative, netlink-native network provisioner for systemd-nspawn containers";

  # A supported NixOS release; `nix flake lock --update-input nixpkgs` moves the lock.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  # Kept evaluable by Nix 2.8 (Debian 12's nix-bin): no lib.fileset, and nothing is read
  # from the filtered source at evaluation time (see nix/package.nix).
  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Only what the build needs, so editing docs does not rebuild the package. testkit/
      # (the tests' fixtures) is a workspace member and a dev-dependency: cargo reads its
      # manifest for any build of the workspace.
      root = toString ./.;
      src = builtins.path {
        path = ./.;
        name = "netprov-source";
        filter = path: _type:
          let rel = lib.removePrefix (root + "/") (toString path); in
          builtins.elem rel [ "Cargo.toml" "Cargo.lock" "netprov" "nspawn-glue" "testkit" ]
          || lib.hasPrefix "netprov/" rel
          || lib.hasPrefix "nspawn-glue/" rel
          || lib.hasPrefix "testkit/" rel;
      };
    in
    {
      # `pkgs.netprov`, the default of services.netprov.package (mkPackageOption).
      overlays.default = final: prev: {
        netprov = final.callPackage ./nix/package.nix { inherit src; };
      };

      packages = forAllSystems (pkgs: rec {
        netprov = pkgs.callPackage ./nix/package.nix { inherit src; };
        default = netprov;
      });

      # The module, with this checkout's netprov built by the system's own nixpkgs as the
      # default of services.netprov.package (no overlay needed; with the overlay applied,
      # pkgs.netprov is the same package).
      nixosModules.default = { lib, pkgs, ... }: {
        imports = [ ./nix/module.nix ];
        services.netprov.package = lib.mkDefault (pkgs.callPackage ./nix/package.nix { inherit src; });
      };
      nixosModules.netprov = self.nixosModules.default;

      # `nix flake check` runs the NixOS VM tests (they need KVM to be quick).
      checks = forAllSystems (pkgs:
        import ./vm-tests {
          inherit pkgs;
          netprovModule = self.nixosModules.default;
        } // {
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ];
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            rust-analyzer
            # what the end-to-end tests verify with
            iproute2
            nftables
            openvswitch
            iputils
            netcat-openbsd
            strace
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixpkgs-fmt);
    };
}
