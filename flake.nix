{
  description = "netprov: declarative, netlink-native network provisioner for systemd-nspawn containers";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Only what the build needs, so editing docs or tests does not rebuild the package.
      src = nixpkgs.lib.fileset.toSource {
        root = ./.;
        fileset = nixpkgs.lib.fileset.unions ([
          ./Cargo.toml
          ./Cargo.lock
          ./netprov
        ] ++ nixpkgs.lib.optional (builtins.pathExists ./nspawn-glue) ./nspawn-glue);
      };
    in
    {
      packages = forAllSystems (pkgs: rec {
        netprov = pkgs.callPackage ./nix/package.nix { inherit src; };
        default = netprov;
      });

      nixosModules.default = { lib, pkgs, ... }: {
        imports = [ ./nix/module.nix ];
        services.netprov.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
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
