# A veth container reaches the host, and the host reaches it (NixUnits' /31 semantics).
{ netprovModule, common }:
{
  name = "netprov-veth";
  nodes.machine = { config, ... }: {
    imports = [ netprovModule common.machine ];
    services.netprov.containers.alpha = {
      network.interfaces.wan = {
        ip4 = "10.0.0.2/31";
        hostIp4 = "10.0.0.3/31";
        ip6 = "fd00::2/127";
        hostIp6 = "fd00::3/127";
      };
      network.ip4route = "10.0.0.3";
      nspawnArgs = config.netprovTest.nspawnArgs;
    };
  };
  testScript = common.helpers + ''
    machine.wait_for_unit("multi-user.target")
    machine.succeed("test -s /etc/netprov/alpha.json")
    machine.succeed("netprov validate /etc/netprov/alpha.json")
    start(machine, "alpha")

    with subtest("addresses and routes inside the container"):
        addrs = inside(machine, "alpha", "ip -o addr show dev wan")
        assert "10.0.0.2/31" in addrs, addrs
        routes = inside(machine, "alpha", "ip route")
        assert "default via 10.0.0.3" in routes, routes

    with subtest("the container reaches the host and the host reaches the container"):
        inside(machine, "alpha", "ping -c1 -W2 10.0.0.3")
        machine.succeed("ping -c1 -W2 10.0.0.2")
        machine.wait_until_succeeds("ping -6 -c1 -W2 fd00::2")
  '';
}
