# netprov, built from this checkout.
{ lib
, rustPlatform
, pkg-config
, nftables
, libnftnl
, libmnl
, src
}:
let
  # Read from this checkout, not from `src`: reading a file out of the filtered store copy
  # at evaluation time fails on Nix 2.8 when the copy is not in the store yet.
  cargoToml = lib.importTOML ../netprov/Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "netprov";
  inherit (cargoToml.package) version;
  inherit src;

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ pkg-config ];
  # libnftables (from nftables) is loaded in-process (dlopen, on first use) for
  # container rulesets; libnftnl/libmnl are linked for the rules netprov generates.
  buildInputs = [ nftables libnftnl libmnl ];
  # Not a link-time dependency, so not in the binary's RUNPATH: netprov dlopens it by
  # this full path (read at compile time, src/nft/ffi.rs).
  NETPROV_LIBNFTABLES = "${lib.getLib nftables}/lib/libnftables.so.1";

  # The nspawn-glue's systemd generator too, when the workspace has it.
  cargoBuildFlags = [ "-p" "netprov" ]
    ++ lib.optionals (builtins.pathExists ../nspawn-glue/Cargo.toml) [ "-p" "netprov-nspawn-glue" ];
  # The end-to-end tests need root, network namespaces and Open vSwitch: they run in the
  # NixOS VM tests (`nix flake check`) and in vm-tests/run, not in the build sandbox.
  cargoTestFlags = [ "-p" "netprov" "--lib" ];

  postInstall = ''
    # The unit drop-ins, for hosts that install them by hand (the NixOS module writes
    # its own per-container drop-ins).
    if [ -d nspawn-glue/units ]; then
      mkdir -p $out/share/netprov/nspawn-glue
      cp -r nspawn-glue/units $out/share/netprov/nspawn-glue/
    fi
  '';

  meta = {
    description = "Declarative, netlink-native network provisioner for systemd-nspawn containers";
    license = lib.licenses.gpl2Only;
    mainProgram = "netprov";
    platforms = lib.platforms.linux;
  };
}
