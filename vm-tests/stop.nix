# Stopping a container removes everything netprov made for it, and nothing else.
{ netprovModule, common }:
{
  name = "netprov-stop";
  nodes.machine = { config, ... }: {
    imports = [ netprovModule common.machine ];
    virtualisation.vswitch.enable = true;
    services.netprov.containers.alpha = {
      network.interfaces.wan = { ip4 = "10.0.0.2/31"; hostIp4 = "10.0.0.3/31"; };
      network.interfaces.a-lan = { ip4 = "10.10.0.1/24"; ovs = { bridge = "br0"; vlan = 10; }; };
      network.nft = "table inet filter { chain input { type filter hook input priority 0; accept; }; }";
      nspawnArgs = config.netprovTest.nspawnArgs;
    };
  };
  testScript = common.helpers + ''
    machine.wait_for_unit("ovs-vswitchd.service")
    machine.succeed("ovs-vsctl --may-exist add-br br0")
    host_links = machine.succeed("ip -o link show | cut -d: -f2 | sort")
    start(machine, "alpha")
    machine.succeed("test -e /run/netns/alpha")

    machine.succeed("systemctl stop systemd-nspawn@alpha")
    nothing_left(machine, "alpha")
    assert machine.succeed("ovs-vsctl list-ports br0").strip() == "", "OVS ports left behind"
    assert host_links == machine.succeed("ip -o link show | cut -d: -f2 | sort"), "host links changed"
    machine.succeed("ovs-vsctl br-exists br0")  # the bridge is not netprov's: it stays

    # And it starts again from nothing.
    start(machine, "alpha")
    inside(machine, "alpha", "ping -c1 -W2 10.0.0.3")
  '';
}
