# Live changes on `nixos-rebuild switch`: a running container's VLAN tag and nftables
# ruleset change in Nix; switching applies them to its namespace (reload: `netprov
# apply`) without restarting it, and containers whose props did not change are not
# touched. Also: netprov's host tables survive a networking.nftables reload.
{ netprovModule, common }:
{
  name = "netprov-live-change";
  nodes.machine = { config, lib, ... }: {
    imports = [ netprovModule common.machine ];
    virtualisation.vswitch.enable = true;
    # The host firewall on nftables, replacing only its own tables.
    networking.nftables = { enable = true; flushRuleset = false; };
    services.netprov.containers = {
      alpha = {
        network.interfaces.a-lan = { ip4 = "10.10.0.1/24"; ovs = { bridge = "br0"; vlan = 10; }; };
        network.interfaces.wan = { ip4 = "10.0.0.2/31"; hostIp4 = "10.0.0.3/31"; };
        network.nft = ''
          table inet filter {
            chain input {
              type filter hook input priority 0; policy accept;
              tcp dport 8080 drop
            }
          }
        '';
        nspawnArgs = config.netprovTest.nspawnArgs;
      };
      # Same subnet, VLAN 10 and VLAN 20: alpha reaches beta before the change, gamma after.
      beta = {
        network.interfaces.b-lan = { ip4 = "10.10.0.2/24"; ovs = { bridge = "br0"; vlan = 10; }; };
        nspawnArgs = config.netprovTest.nspawnArgs;
      };
      gamma = {
        network.interfaces.c-lan = { ip4 = "10.10.0.3/24"; ovs = { bridge = "br0"; vlan = 20; }; };
        nspawnArgs = config.netprovTest.nspawnArgs;
      };
    };
    # The changed configuration: alpha moves to VLAN 20 and drops 8081 instead of 8080.
    specialisation.changed.configuration = {
      services.netprov.containers.alpha.network = {
        interfaces.a-lan.ovs.vlan = lib.mkForce 20;
        nft = lib.mkForce ''
          table inet filter {
            chain input {
              type filter hook input priority 0; policy accept;
              tcp dport 8081 drop
            }
          }
        '';
      };
    };
  };
  testScript = { nodes, ... }: common.helpers + ''
    changed = "${nodes.machine.system.build.toplevel}/specialisation/changed"
    containers = ("alpha", "beta", "gamma")

    machine.wait_for_unit("ovs-vswitchd.service")
    machine.succeed("ovs-vsctl --may-exist add-br br0")
    for c in containers:
        start(machine, c)

    with subtest("before: alpha on VLAN 10, port 8080 dropped"):
        assert machine.succeed("ovs-vsctl get Port a-lan tag").strip() == "10"
        inside(machine, "alpha", "ping -c1 -W2 10.10.0.2")
        inside_fails(machine, "alpha", "ping -c2 -W2 10.10.0.3")
        listen(machine, "alpha", (8080, 8081))
        machine.wait_until_succeeds("nc -z -w2 10.0.0.2 8081")
        machine.fail("nc -z -w2 10.0.0.2 8080")

    identity = {c: unit_identity(machine, f"systemd-nspawn@{c}") for c in containers}
    leaders = {c: leader(machine, c) for c in containers}
    out = machine.succeed(f"{changed}/bin/switch-to-configuration test 2>&1")
    print(out)

    with subtest("only the changed container was reloaded, none restarted"):
        reloaded = [line for line in out.splitlines() if line.startswith("reloading the following units")]
        assert reloaded and "systemd-nspawn@alpha.service" in reloaded[0], out
        assert "beta" not in reloaded[0] and "gamma" not in reloaded[0], out
        for c in containers:
            assert unit_identity(machine, f"systemd-nspawn@{c}") == identity[c], f"{c} was restarted"
            assert leader(machine, c) == leaders[c], f"{c} has a new leader process"

    with subtest("after: alpha on VLAN 20, port 8081 dropped, in the same running container"):
        assert machine.succeed("ovs-vsctl get Port a-lan tag").strip() == "20"
        inside(machine, "alpha", "ping -c1 -W2 10.10.0.3")
        inside_fails(machine, "alpha", "ping -c2 -W2 10.10.0.2")
        listen(machine, "alpha", (8080, 8081))
        machine.wait_until_succeeds("nc -z -w2 10.0.0.2 8080")
        machine.fail("nc -z -w2 10.0.0.2 8081")
        machine.succeed("netprov check /etc/netprov/alpha.json")
        machine.succeed("netprov check /etc/netprov/beta.json")

    with subtest("netprov's host tables survive a networking.nftables reload"):
        # (Tables NixOS re-creates get new handles: compare as sets.)
        tables = sorted(machine.succeed("nft list tables").splitlines())
        assert "table inet netprov-alpha" in tables, tables
        machine.succeed("systemctl reload nftables")
        assert sorted(machine.succeed("nft list tables").splitlines()) == tables
        machine.succeed("netprov check /etc/netprov/alpha.json")
        machine.succeed("ping -c1 -W2 10.0.0.2")
  '';
}
