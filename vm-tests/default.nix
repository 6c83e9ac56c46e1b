# NixOS VM tests of netprov and its NixOS module (`nix flake check` runs them as checks).
# Each test boots a NixOS VM with services.netprov and real systemd-nspawn@ (or NixOS
# container@) containers.
{ pkgs, netprovModule }:
let
  common = import ./nixos-common.nix;
  mkTest = file: pkgs.testers.runNixOSTest (import file { inherit netprovModule common; });
in
{
  vm-veth = mkTest ./veth.nix;
  vm-ovs-vlan = mkTest ./ovs-vlan.nix;
  vm-nft = mkTest ./nft.nix;
  vm-restart = mkTest ./restart.nix;
  vm-stop = mkTest ./stop.nix;
  vm-live-change = mkTest ./live-change.nix;
  vm-nixos-container = mkTest ./nixos-container.nix;
}
