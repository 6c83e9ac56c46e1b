# `systemctl restart` re-provisions to the same state: nothing duplicated.
{ netprovModule, common }:
{
  name = "netprov-restart";
  nodes.machine = { config, ... }: {
    imports = [ netprovModule common.machine ];
    virtualisation.vswitch.enable = true;
    services.netprov.containers.alpha = {
      network.interfaces.wan = { ip4 = "10.0.0.2/31"; hostIp4 = "10.0.0.3/31"; };
      network.interfaces.a-lan = { ip4 = "10.10.0.1/24"; ovs = { bridge = "br0"; vlan = 10; }; };
      network.ip4route = "10.0.0.3";
      network.nft = "table inet filter { chain input { type filter hook input priority 0; accept; }; }";
      nspawnArgs = config.netprovTest.nspawnArgs;
    };
  };
  testScript = common.helpers + ''
    machine.wait_for_unit("ovs-vswitchd.service")
    machine.succeed("ovs-vsctl --may-exist add-br br0")
    start(machine, "alpha")
    before = state(machine, "alpha")
    ports_before = machine.succeed("ovs-vsctl list-ports br0")

    machine.succeed("systemctl restart systemd-nspawn@alpha")
    machine.wait_until_succeeds("machinectl show -p Leader --value alpha")
    after = state(machine, "alpha")
    assert before == after, f"state changed across restart:\n{before}\n---\n{after}"
    assert ports_before == machine.succeed("ovs-vsctl list-ports br0")
    machine.succeed("netprov check /etc/netprov/alpha.json")
    inside(machine, "alpha", "ping -c1 -W2 10.0.0.3")

    # A second apply while running changes nothing either.
    machine.succeed("netprov apply /etc/netprov/alpha.json")
    assert after == state(machine, "alpha")
  '';
}
