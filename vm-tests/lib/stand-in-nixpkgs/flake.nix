# A stand-in for the nixpkgs flake, for `nix flake check --no-build --override-input
# nixpkgs path:…` in vm-tests/check-nix: nixpkgs' real `lib` (check-nix copies it from
# ../shared/nix next to this file, with ../stub-pkgs.nix) and packages that are real but
# never-built derivations, as the flake checker requires.
{
  outputs = { self }:
    let
      lib = import ./lib;
      # `drvEnv` becomes the derivation's environment, so what a real package would
      # force (its `src`) is forced here too.
      mkDrv = system: name: attrs: derivation ({
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" "echo stand-in, not buildable >&2; exit 1" ];
      } // attrs.drvEnv or { }) // attrs;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ]
        (system: import ./stub-pkgs.nix { inherit lib system; mkDrv = mkDrv system; });
    };
}
