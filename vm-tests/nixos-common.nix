# Shared pieces of the NixOS VM tests.
{
  # A NixOS module for the test machine: every container declared in
  # services.netprov.containers gets a tiny root filesystem (static busybox: sh, ip, ping,
  # nc, sleep) in /var/lib/machines/<name> and runs `sleep` as its payload, so the tests
  # need no distribution image; systemd-nspawn@<name> itself is the real template unit with
  # the module's drop-in.
  machine = { config, lib, pkgs, ... }:
    let
      rootfs = pkgs.runCommand "netprov-test-rootfs" { } ''
        mkdir -p $out/bin $out/etc $out/proc $out/sys $out/dev $out/run $out/tmp $out/var
        cp ${pkgs.pkgsStatic.busybox}/bin/busybox $out/bin/busybox
        for a in sh ip ping nc sleep cat; do ln -s busybox $out/bin/$a; done
        printf 'ID=netprov-test\nNAME="netprov test container"\n' > $out/etc/os-release
      '';
      # Only systemd-nspawn@ containers need a root file system in /var/lib/machines.
      names = builtins.attrNames (lib.filterAttrs (_: c: c.unit == "systemd-nspawn") config.services.netprov.containers);
    in
    {
      options.netprovTest.nspawnArgs = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        # No user namespace: the container's root may open raw sockets (ping) in the
        # netns netprov made, which the host's user namespace owns.
        default = [ "--quiet" "--keep-unit" "--as-pid2" "/bin/sleep" "2147483647" ];
        readOnly = true;
      };
      config = {
        services.netprov.enable = true;
        systemd.tmpfiles.rules = lib.concatMap
          (n: [
            "C /var/lib/machines/${n} - - - - ${rootfs}"
            # The copy keeps the store's read-only modes; nspawn needs a writable root.
            "Z /var/lib/machines/${n} 0755 root root - -"
          ])
          names;
        environment.systemPackages = with pkgs; [ iproute2 nftables jq netcat-openbsd ];
        virtualisation.memorySize = 1024;
      };
    };

  # Python helpers for testScript. The test driver runs pyflakes on the whole script
  # (helpers included): an unused import or name fails the test before a VM boots, and
  # vm-tests/check-nix runs the same pyflakes here.
  helpers = ''
    def leader(m, name):
        return m.succeed(f"machinectl show -p Leader --value {name}").strip()

    def inside(m, name, cmd):
        """Run cmd in the container's mount and network namespaces, as root of the host's
        user namespace, with the container's own (busybox) binaries."""
        return m.succeed(f"nsenter --target {leader(m, name)} --mount --net --pid --uts -- /bin/sh -c '{cmd}'")

    def inside_fails(m, name, cmd):
        return m.fail(f"nsenter --target {leader(m, name)} --mount --net --pid --uts -- /bin/sh -c '{cmd}'")

    def start(m, name):
        m.succeed(f"systemctl start systemd-nspawn@{name}")
        m.wait_until_succeeds(f"machinectl show -p Leader --value {name}")

    def state(m, name):
        """Everything netprov made for a container, as comparable text."""
        return m.succeed(
            f"ip -n {name} -o addr show | sort; ip -n {name} -o route show table all | sort; "
            f"ip -n {name} -o link show | sed 's/[0-9]*: //' | cut -d' ' -f1 | sort; "
            f"ip -o link show | grep -c 'alias netprov:{name}' || true; "
            f"nft -j list ruleset -n 2>/dev/null | wc -c"
        )

    def listen(m, name, ports):
        """One TCP listener per port inside the container (busybox nc: one connection each)."""
        inside(m, name, " ; ".join(f"(nc -l -p {p} >/dev/null 2>&1 &)" for p in ports))

    def unit_identity(m, unit):
        """What changes when a unit restarts: its invocation and its main process."""
        return m.succeed(f"systemctl show -p InvocationID -p MainPID --value {unit}")

    def nothing_left(m, name):
        m.fail(f"test -e /run/netns/{name}")
        m.fail(f"ip -d -o link show | grep -q 'alias netprov:{name}'")
        m.succeed(f"! ovs-vsctl --no-wait find Interface external_ids:netprov-id={name} 2>/dev/null | grep -q _uuid")
  '';
}
