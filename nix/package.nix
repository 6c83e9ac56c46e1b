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
  cargoToml = lib.importTOML (src + "/netprov/Cargo.toml");
in
rustPlatform.buildRustPackage {
  pname = "netprov";
  inherit (cargoToml.package) version;
  inherit src;

  cargoLock.lockFile = src + "/Cargo.lock";

  nativeBuildInputs = [ pkg-config ];
  # libnftables (from nftables) is linked in-process for container rulesets;
  # libnftnl/libmnl for the rules netprov generates itself.
  buildInputs = [ nftables libnftnl libmnl ];

  cargoBuildFlags = [ "-p" "netprov" ];
  # The end-to-end tests need root, network namespaces and Open vSwitch: they run in the
  # NixOS VM tests (`nix flake check`) and in vm-tests/run, not in the build sandbox.
  cargoTestFlags = [ "-p" "netprov" "--lib" ];

  postInstall = ''
    if [ -d nspawn-glue ]; then
      mkdir -p $out/share/netprov
      cp -r nspawn-glue $out/share/netprov/
    fi
  '';

  meta = {
    description = "Declarative, netlink-native network provisioner for systemd-nspawn containers";
    license = lib.licenses.gpl2Only;
    mainProgram = "netprov";
    platforms = lib.platforms.linux;
  };
}
