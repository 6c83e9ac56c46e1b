# Two containers on one OVS bridge: same VLAN reachable, another VLAN isolated even with
# addresses in the same subnet. (The ports are veth host ends named by netprov; the
# test finds them by their external_ids.)
{ netprovModule, common }:
{
  name = "netprov-ovs-vlan";
  nodes.machine = { config, ... }: {
    imports = [ netprovModule common.machine ];
    virtualisation.vswitch.enable = true;
    services.netprov.containers = {
      alpha = {
        network.interfaces.a-lan = { ip4 = "10.10.0.1/24"; ovs = { bridge = "br0"; vlan = 10; }; };
        network.interfaces.a-dmz = { ip4 = "10.20.0.1/24"; ovs = { bridge = "br0"; vlan = 20; }; };
        nspawnArgs = config.netprovTest.nspawnArgs;
      };
      beta = {
        network.interfaces.b-lan = { ip4 = "10.10.0.2/24"; ovs = { bridge = "br0"; vlan = 10; }; };
        # Same subnet as alpha's a-dmz, other VLAN: must not reach it.
        network.interfaces.b-iso = { ip4 = "10.20.0.2/24"; ovs = { bridge = "br0"; vlan = 30; }; };
        nspawnArgs = config.netprovTest.nspawnArgs;
      };
    };
  };
  testScript = common.helpers + ''
    machine.wait_for_unit("ovs-vswitchd.service")
    machine.succeed("ovs-vsctl --may-exist add-br br0")
    start(machine, "alpha")
    start(machine, "beta")

    with subtest("ports carry their VLAN tags"):
        for port, tag in (("a-lan", 10), ("a-dmz", 20), ("b-lan", 10), ("b-iso", 30)):
            got = machine.succeed(
                f"ovs-vsctl --bare --columns=tag find Port external_ids:netprov-iface={port}"
            ).strip()
            assert got == str(tag), f"{port}: tag {got}, expected {tag}"

    with subtest("same VLAN reachable"):
        inside(machine, "alpha", "ping -c1 -W2 10.10.0.2")
        inside(machine, "beta", "ping -c1 -W2 10.10.0.1")

    with subtest("other VLAN isolated"):
        inside_fails(machine, "alpha", "ping -c2 -W2 10.20.0.2")
        inside_fails(machine, "beta", "ping -c2 -W2 10.20.0.1")
  '';
}
