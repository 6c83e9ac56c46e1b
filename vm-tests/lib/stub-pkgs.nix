# Stand-ins for the nixpkgs packages the flake, the module and the VM tests use, over
# nixpkgs' real `lib` (the archives in ../shared/nix). Nothing here builds.
#
# `mkDrv name attrs`: how a stand-in package is made. check-nix's evaluations use plain
# attribute sets that look like derivations; its `nix flake check` uses real,
# never-built `derivation`s (the flake checker requires them) whose environment is
# `attrs.drvEnv`, so a package's `src` is evaluated as the real one would be.
{ lib
, system ? "x86_64-linux"
, mkDrv ? name: attrs: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    outputName = "out";
  } // attrs
}:
let
  fake = name: mkDrv name { };
  pkgs = lib.genAttrs [
    "iproute2" "nftables" "jq" "netcat-openbsd" "util-linux" "openvswitch" "iputils"
    "cargo" "rustc" "clippy" "rustfmt" "rust-analyzer" "strace" "nixpkgs-fmt"
    "pkg-config" "libnftnl" "libmnl" "busybox" "netprov" "coreutils"
  ]
    fake // {
    inherit lib;
    stdenv.hostPlatform.system = system;
    callPackage = lib.callPackageWith pkgs;
    # Keeps what it was given, so check-nix can look at the build-time checks.
    runCommand = name: env: script: mkDrv name { passthru = { inherit env script; }; };
    writeText = name: text: mkDrv name { passthru = { inherit text; }; };
    # Reads the lock file at evaluation time, as nixpkgs' importCargoLock does.
    rustPlatform.buildRustPackage = attrs: mkDrv "${attrs.pname}-${attrs.version}" {
      passthru = attrs // { cargoLockText = builtins.readFile attrs.cargoLock.lockFile; };
      drvEnv = { inherit (attrs) src; cargoLock = attrs.cargoLock.lockFile; };
    };
    mkShell = attrs: mkDrv "shell" { };
    testers.runNixOSTest = test: mkDrv "vm-test-${test.name}" { passthru.test = test; };
    pkgsStatic.busybox = fake "busybox-static";
  };
in
pkgs
