# A NixOS declarative container (containers.<name>) networked by netprov: the namespace
# is complete before container@web starts, the container runs in it (OVS VLAN port, veth,
# nftables ruleset), and it is destroyed after the container stops.
{ netprovModule, common }:
{
  name = "netprov-nixos-container";
  nodes.machine = { ... }: {
    imports = [ netprovModule common.machine ];
    virtualisation.vswitch.enable = true;
    containers.web.config = { ... }: {
      system.stateVersion = "26.05";
      networking.firewall.enable = false;
    };
    services.netprov.containers.web = {
      unit = "nixos-container";
      network.interfaces.wan = { ip4 = "10.0.0.2/31"; hostIp4 = "10.0.0.3/31"; };
      network.interfaces.w-lan = { ip4 = "10.10.0.1/24"; ovs = { bridge = "br0"; vlan = 10; }; };
      network.ip4route = "10.0.0.3";
      network.nft = ''
        table inet filter {
          chain input {
            type filter hook input priority 0; policy accept;
            tcp dport 8080 drop
          }
        }
      '';
    };
  };
  testScript = common.helpers + ''
    def run(cmd):
        return machine.succeed(f"nixos-container run web -- {cmd}")

    machine.wait_for_unit("multi-user.target")
    machine.wait_for_unit("ovs-vswitchd.service")
    machine.succeed("ovs-vsctl --may-exist add-br br0")
    machine.fail("test -e /run/netns/web")
    host_links = machine.succeed("ip -o link show | cut -d: -f2 | sort")

    machine.succeed("systemctl start container@web")

    with subtest("the container runs in netprov's namespace"):
        pid = machine.succeed("machinectl show -p Leader --value web").strip()
        ns = machine.succeed(f"stat -L -c %i /proc/{pid}/ns/net").strip()
        assert ns == machine.succeed("stat -L -c %i /run/netns/web").strip(), "not in /run/netns/web"
        assert "10.0.0.2/31" in run("ip -o addr show dev wan")
        assert "default via 10.0.0.3" in run("ip route")
        assert machine.succeed("ovs-vsctl get Port w-lan tag").strip() == "10"
        assert "tcp dport 8080 drop" in machine.succeed("ip netns exec web nft list ruleset")

    with subtest("traffic both ways"):
        run("ping -c1 -W2 10.0.0.3")
        machine.succeed("ping -c1 -W2 10.0.0.2")

    with subtest("stopping the container destroys its network"):
        machine.succeed("systemctl stop container@web")
        nothing_left(machine, "web")
        assert machine.succeed("ovs-vsctl list-ports br0").strip() == ""
        assert host_links == machine.succeed("ip -o link show | cut -d: -f2 | sort")
  '';
}
