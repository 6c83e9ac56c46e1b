# The container's nftables ruleset is loaded in its netns (and enforced), once.
{ netprovModule, common }:
{
  name = "netprov-nft";
  nodes.machine = { config, ... }: {
    imports = [ netprovModule common.machine ];
    services.netprov.containers.alpha = {
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
  };
  testScript = common.helpers + ''
    machine.wait_for_unit("multi-user.target")
    start(machine, "alpha")

    with subtest("ruleset present in the container netns, not on the host"):
        rules = machine.succeed("nsenter --net=/run/netns/alpha nft list ruleset")
        assert "tcp dport 8080 drop" in rules, rules
        machine.fail("nft list table inet filter")

    with subtest("the ruleset is enforced"):
        # Port 8080 dropped, 8081 open.
        inside(machine, "alpha", "(nc -l -p 8081 >/dev/null &) ; (nc -l -p 8080 >/dev/null &)")
        machine.wait_until_succeeds("nc -z -w2 10.0.0.2 8081")
        machine.fail("nc -z -w2 10.0.0.2 8080")

    with subtest("re-apply replaces, never duplicates"):
        machine.succeed("netprov apply /etc/netprov/alpha.json")
        machine.succeed("netprov apply /etc/netprov/alpha.json")
        n = machine.succeed("nsenter --net=/run/netns/alpha nft list tables | grep -c 'table inet filter'").strip()
        assert n == "1", n
        machine.succeed("netprov check /etc/netprov/alpha.json")
  '';
}
