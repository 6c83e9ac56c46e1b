"""The benchmarked topology, one container at a time, as each tool spells it.

veth variant, container i:
  a veth pair, container end `eth0`, host end in the simulated host netns;
  10.100.0.0/16 cut into /31s: host 10.100.x.(2k), container 10.100.x.(2k+1);
  fd00:100::/64 cut into /127s the same way; each end has a device route to the other;
  default routes (v4 and v6) in the container via the host end;
  net.ipv4.ip_forward=1 in the container; a small nft ruleset in the container.
OVS variant, container i:
  an OVS internal port `o<i>` on bridge `brb` (datapath_type=netdev), access VLAN 356,
  moved into the container netns; 10.101.0.0/16 and fd00:101::/64 addresses; default
  routes via .1 / ::1 on that subnet; the same sysctl and ruleset.
"""

import ipaddress
import json

NFT_RULESET = """table inet filter {
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    iif lo accept
    meta l4proto { icmp, ipv6-icmp } accept
    tcp dport { 22, 80, 443 } accept
    counter
  }
}
"""
SYSCTL = ("net.ipv4.ip_forward", "1")
OVS_BRIDGE = "brb"
OVS_VLAN = 356

V4_BASE = ipaddress.IPv4Address("10.100.0.0")
V6_BASE = ipaddress.IPv6Address("fd00:100::")
OVS_V4 = ipaddress.IPv4Address("10.101.0.0")
OVS_V6 = ipaddress.IPv6Address("fd00:101::")


class Veth:
    """Addresses of veth container i."""

    def __init__(self, i):
        self.i = i
        self.host4 = V4_BASE + 2 * i
        self.ct4 = V4_BASE + 2 * i + 1
        self.host6 = V6_BASE + 2 * i
        self.ct6 = V6_BASE + 2 * i + 1


class OvsAddr:
    def __init__(self, i):
        self.i = i
        self.ifname = f"o{i}"
        self.ct4 = OVS_V4 + 10 + i
        self.ct6 = OVS_V6 + 10 + i
        self.gw4 = OVS_V4 + 1
        self.gw6 = OVS_V6 + 1


def netprov_veth_props(cid, i):
    a = Veth(i)
    return {
        "id": cid,
        "network": {
            "interfaces": {
                "eth0": {
                    "ip4": f"{a.ct4}/31", "hostIp4": f"{a.host4}/31",
                    "ip6": f"{a.ct6}/127", "hostIp6": f"{a.host6}/127",
                },
            },
            "ip4route": str(a.host4),
            "ip6route": str(a.host6),
            "nft": NFT_RULESET,
            # the baselines do no host-side anti-spoofing; see docs/benchmarks.md
            "antiSpoof": False,
        },
        "sysctl": f"{SYSCTL[0]}={SYSCTL[1]}",
    }


def netprov_ovs_props(cid, i, style="internal"):
    """style "internal": like the shell pipeline (an OVS internal port moved into the
    container); "veth": netprov's default (a veth pair, the host end is the OVS port, the
    container end is made in the container netns: no device move)."""
    a = OvsAddr(i)
    return {
        "id": cid,
        "network": {
            "interfaces": {
                a.ifname: {
                    "ip4": f"{a.ct4}/16", "ip6": f"{a.ct6}/64",
                    "ovs": {"bridge": OVS_BRIDGE, "vlan": OVS_VLAN, "style": style},
                },
            },
            "ip4route": str(a.gw4),
            "ip6route": str(a.gw6),
            "nft": NFT_RULESET,
        },
        "sysctl": f"{SYSCTL[0]}={SYSCTL[1]}",
    }


def shell_veth_up(ns, host_if, i, nft_file):
    """What a NixUnits-style start script runs: one process per step."""
    a = Veth(i)
    x = f"ip netns exec {ns}"
    return "\n".join([
        "set -e",
        f"ip netns add {ns}",
        f"ip link add {host_if} type veth peer name eth0 netns {ns}",
        f"ip link set dev {host_if} up",
        f"ip -4 addr add {a.host4}/31 dev {host_if}",
        f"ip -6 addr add {a.host6}/127 dev {host_if}",
        f"ip -4 route add {a.ct4} dev {host_if}",
        f"ip -6 route add {a.ct6} dev {host_if}",
        f"{x} ip link set dev lo up",
        f"{x} ip link set dev eth0 up",
        f"{x} ip -4 addr add {a.ct4}/31 dev eth0",
        f"{x} ip -6 addr add {a.ct6}/127 dev eth0",
        f"{x} ip -4 route add {a.host4} dev eth0",
        f"{x} ip -6 route add {a.host6} dev eth0",
        f"{x} ip -4 route add default via {a.host4}",
        f"{x} ip -6 route add default via {a.host6}",
        f"{x} sysctl -q -w {SYSCTL[0]}={SYSCTL[1]}",
        f"{x} nft -f {nft_file}",
        "",
    ])


def shell_veth_down(ns):
    # Deleting the netns deletes the veth pair (and with it the host end's addresses).
    return f"set -e\nip netns del {ns}\n"


def shell_ovs_up(ns, i, nft_file, vsctl):
    a = OvsAddr(i)
    x = f"ip netns exec {ns}"
    return "\n".join([
        "set -e",
        f"ip netns add {ns}",
        f"{vsctl} add-port {OVS_BRIDGE} {a.ifname} tag={OVS_VLAN}"
        f" -- set Interface {a.ifname} type=internal",
        f"ip link set dev {a.ifname} netns {ns}",
        f"{x} ip link set dev lo up",
        f"{x} ip link set dev {a.ifname} up",
        f"{x} ip -4 addr add {a.ct4}/16 dev {a.ifname}",
        f"{x} ip -6 addr add {a.ct6}/64 dev {a.ifname}",
        f"{x} ip -4 route add default via {a.gw4}",
        f"{x} ip -6 route add default via {a.gw6}",
        f"{x} sysctl -q -w {SYSCTL[0]}={SYSCTL[1]}",
        f"{x} nft -f {nft_file}",
        "",
    ])


def shell_ovs_down(ns, i, vsctl):
    # The port goes first: the tap behind an internal port belongs to ovs-vswitchd.
    return f"set -e\n{vsctl} --if-exists del-port {OVS_BRIDGE} {OvsAddr(i).ifname}\nip netns del {ns}\n"


def cni_ptp_config(data_dir, ipv6):
    """CNI ptp + host-local IPAM: a veth per container with a /32 (/128) address each
    side, device routes, default routes; no sysctl, no ruleset (see docs). With an IPv6
    range ptp waits for duplicate address detection to finish on every container."""
    ranges = [[{"subnet": "10.102.0.0/16"}]]
    routes = [{"dst": "0.0.0.0/0"}]
    if ipv6:
        ranges.append([{"subnet": "fd00:102::/64"}])
        routes.append({"dst": "::/0"})
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": "nbbench",
        "type": "ptp",
        "ipMasq": False,
        "ipam": {
            "type": "host-local",
            "ranges": ranges,
            "routes": routes,
            "dataDir": data_dir,
        },
    })


NETAVARK_NET_ID = "b" * 64


def netavark_config(cname, i, bridge):
    """netavark bridge network, static IPs as podman hands them over."""
    ct4 = ipaddress.IPv4Address("10.103.0.0") + 10 + i
    ct6 = ipaddress.IPv6Address("fd00:103::") + 10 + i
    return json.dumps({
        "container_id": f"{i:064x}",
        "container_name": cname,
        "networks": {
            "nbbench": {"static_ips": [str(ct4), str(ct6)], "interface_name": "eth0"},
        },
        "network_info": {
            "nbbench": {
                "name": "nbbench",
                "id": NETAVARK_NET_ID,
                "driver": "bridge",
                "network_interface": bridge,
                "subnets": [
                    {"subnet": "10.103.0.0/16", "gateway": "10.103.0.1"},
                    {"subnet": "fd00:103::/64", "gateway": "fd00:103::1"},
                ],
                "ipv6_enabled": True,
                "internal": False,
                "dns_enabled": False,
                "ipam_options": {"driver": "host-local"},
            },
        },
    }), str(ct4)
