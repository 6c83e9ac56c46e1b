# Evaluates NixOS modules with nixpkgs' module system, the option stand-ins of
# ./nixos-stubs.nix and the package stand-ins of ./stub-pkgs.nix. Returns the `config`.
{ lib, pkgs ? import ./stub-pkgs.nix { inherit lib; } }:
modules:
(lib.evalModules {
  modules = [ ./nixos-stubs.nix ] ++ modules;
  specialArgs = { inherit pkgs; };
}).config
