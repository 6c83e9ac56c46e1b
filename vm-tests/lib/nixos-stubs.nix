# Declarations of the NixOS options that nix/module.nix and the VM test nodes read or set,
# with NixOS's types where it matters (list-valued unit settings concatenate, ordering
# with mkBefore), so they can be evaluated with nixpkgs' module system but without NixOS
# (see check-nix). `utils` is a stand-in for nixos/lib/utils.nix's escaping.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  anything = mkOption { type = types.anything; default = null; };
  bool = default: mkOption { type = types.bool; inherit default; };
  strs = mkOption { type = types.listOf types.str; default = [ ]; };
  # systemd unit options: lists concatenate, strings must agree (as NixOS's unitOption).
  unitOption = types.either (types.listOf types.str) (types.oneOf [ types.str types.bool types.int types.path ]);
  service = types.submodule {
    options = {
      overrideStrategy = mkOption { type = types.str; default = "asDropinIfExists"; };
      description = mkOption { type = types.str; default = ""; };
      after = strs;
      wants = strs;
      requires = strs;
      wantedBy = strs;
      restartIfChanged = bool true;
      reloadTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      serviceConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
      environment = mkOption { type = types.attrsOf types.str; default = { }; };
      script = mkOption { type = types.lines; default = ""; };
      path = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    };
  };
in
{
  options = {
    assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    warnings = strs;
    environment.etc = mkOption {
      type = types.attrsOf (types.submodule {
        options.text = mkOption { type = types.nullOr types.str; default = null; };
        options.source = mkOption { type = types.nullOr types.unspecified; default = null; };
      });
      default = { };
    };
    environment.systemPackages = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    systemd.package = mkOption { type = types.str; default = "/nix/store/00000000000000000000000000000000-systemd"; };
    systemd.services = mkOption { type = types.attrsOf service; default = { }; };
    systemd.targets = mkOption { type = types.attrsOf types.anything; default = { }; };
    systemd.tmpfiles.rules = strs;
    systemd.nspawn = mkOption {
      type = types.attrsOf (types.submodule {
        options.execConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
        options.filesConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
        options.networkConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
      });
      default = { };
    };
    boot.kernelModules = strs;
    # As NixOS's sysctl option: one definition per key and priority (types.uniq).
    boot.kernel.sysctl = mkOption { type = types.attrsOf (types.uniq (types.nullOr (types.oneOf [ types.bool types.str types.int ]))); default = { }; };
    boot.enableContainers = mkOption { type = types.bool; default = true; };
    networking.nftables.enable = bool false;
    networking.nftables.flushRuleset = bool false;
    networking.nftables.ruleset = mkOption { type = types.lines; default = ""; };
    networking.firewall.enable = bool true;
    networking.networkmanager.unmanaged = strs;
    networking.dhcpcd.denyInterfaces = mkOption { type = types.nullOr (types.listOf types.str); default = null; };
    systemd.network.networks = mkOption { type = types.attrsOf types.anything; default = { }; };
    virtualisation.vswitch.enable = bool false;
    virtualisation.memorySize = mkOption { type = types.int; default = 1024; };
    system.stateVersion = mkOption { type = types.str; default = "25.11"; };
    system.build.toplevel = mkOption { type = types.str; default = "/nix/store/00000000000000000000000000000000-nixos-system"; };
    # NixOS test nodes switch to a specialisation to test live changes; flake-eval.nix
    # evaluates each one as its own node.
    specialisation = mkOption {
      type = types.attrsOf (types.submodule {
        options.configuration = mkOption { type = types.deferredModule; default = { }; };
        options.inheritParentConfig = bool true;
      });
      default = { };
    };
    # nixos-containers.nix: what a netprov-networked container may and may not set.
    containers = mkOption {
      type = types.attrsOf (types.submodule {
        options = {
          config = mkOption { type = types.deferredModule; };
          autoStart = bool false;
          privateNetwork = bool false;
          privateUsers = mkOption { type = types.either types.ints.u32 (types.enum [ "no" "identity" "pick" ]); default = "no"; };
          networkNamespace = mkOption { type = types.nullOr types.path; default = null; };
          interfaces = strs;
          macvlans = strs;
          extraVeths = mkOption { type = types.attrsOf types.anything; default = { }; };
          hostAddress = anything;
          localAddress = anything;
        };
      });
      default = { };
    };
  };

  # What NixOS itself defines on options the module sets too
  # (nixos/modules/tasks/network-interfaces.nix: forwarding follows proxyARP).
  config.boot.kernel.sysctl."net.ipv4.conf.all.forwarding" = lib.mkDefault false;

  config._module.args.utils = {
    # nixos/lib/utils.nix's escapeSystemdExecArgs: every argument a JSON string (systemd
    # reads C-style quoting), '%' and '$' doubled so systemd neither expands specifiers
    # nor variables.
    escapeSystemdExecArgs = args: lib.concatMapStringsSep " "
      (a: lib.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON (toString a)))
      args;
  };
}
