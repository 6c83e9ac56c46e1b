# Declarations of the few NixOS options that nix/module.nix and the VM test nodes set, so
# they can be evaluated with nixpkgs' module system but without NixOS (see check-nix).
{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options = {
    assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    environment.etc = mkOption {
      type = types.attrsOf (types.submodule { options.text = mkOption { type = types.str; }; });
      default = { };
    };
    environment.systemPackages = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    systemd.package = mkOption { type = types.str; default = "/nix/store/00000000000000000000000000000000-systemd"; };
    systemd.services = mkOption { type = types.attrsOf types.anything; default = { }; };
    systemd.targets = mkOption { type = types.attrsOf types.anything; default = { }; };
    systemd.tmpfiles.rules = mkOption { type = types.listOf types.str; default = [ ]; };
    boot.kernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
    virtualisation.vswitch.enable = mkOption { type = types.bool; default = false; };
    virtualisation.memorySize = mkOption { type = types.int; default = 1024; };
  };
}
