"""A private Open vSwitch for the OVS variant, and the tools measured against it.

ovsdb-server and ovs-vswitchd run inside the OVS tools' simulated host netns with their
own database, sockets, pid files and logs under the run's directory (never the system's
/var/run/openvswitch), and the bridge uses the userspace datapath (`datapath_type=netdev`):
there is no openvswitch kernel module here. Internal ports are then tap devices held by
ovs-vswitchd, which is why the switch is stopped before the namespaces are deleted.
"""

import os
import shutil

from . import proc, topology
from .sandbox import kill_pidfile, link_count
from .tools import NotAvailable, Netprov, Shell, Tool

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class PrivateOvs:
    def __init__(self, sb):
        self.sb = sb
        self.dir = os.path.join(sb.dir, "ovs")
        self.sock = os.path.join(self.dir, "db.sock")
        self.remote = f"unix:{self.sock}"
        self.started = False

    @staticmethod
    def available():
        for b in ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"):
            if not shutil.which(b):
                raise NotAvailable(f"{b} not installed (Debian openvswitch-switch)")
        if not os.path.exists(SCHEMA):
            raise NotAvailable(f"{SCHEMA} missing")

    def env(self):
        e = dict(os.environ)
        for v in ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR", "OVS_PKGDATADIR"):
            e[v] = self.dir
        e["OVS_PKGDATADIR"] = "/usr/share/openvswitch"
        return e

    def vsctl_argv(self):
        return ["ovs-vsctl", f"--db={self.remote}", "--timeout=30"]

    def vsctl_cmd(self):
        """For shell scripts (the baseline runs ovs-vsctl against the private db)."""
        return " ".join(self.vsctl_argv())

    def start(self, host_netns):
        """Starts both daemons inside host_netns (the harness is in it) and creates the
        bridge."""
        self.sb.enter(host_netns)
        os.makedirs(self.dir, exist_ok=True)
        env = self.env()
        db = os.path.join(self.dir, "conf.db")
        self.sb.cleanups.append(self.stop)
        proc.quiet(["ovsdb-tool", "create", db, SCHEMA], env=env)
        proc.quiet(["ovsdb-server", db, f"--remote=punix:{self.sock}",
                    f"--pidfile={self.dir}/ovsdb-server.pid",
                    f"--unixctl={self.dir}/ovsdb-server.ctl",
                    f"--log-file={self.dir}/ovsdb-server.log", "--detach", "--no-chdir"],
                   env=env)
        proc.quiet(self.vsctl_argv() + ["--no-wait", "init"], env=env)
        proc.quiet(["ovs-vswitchd", self.remote,
                    f"--pidfile={self.dir}/ovs-vswitchd.pid",
                    f"--unixctl={self.dir}/ovs-vswitchd.ctl",
                    f"--log-file={self.dir}/ovs-vswitchd.log", "--detach", "--no-chdir"],
                   env=env)
        self.started = True
        proc.quiet(self.vsctl_argv() + ["add-br", topology.OVS_BRIDGE, "--", "set", "Bridge",
                                        topology.OVS_BRIDGE, "datapath_type=netdev"], env=env)
        proc.quiet(["ip", "link", "set", "dev", topology.OVS_BRIDGE, "up"])

    def stop(self):
        kill_pidfile(f"{self.dir}/ovs-vswitchd.pid")
        kill_pidfile(f"{self.dir}/ovsdb-server.pid")

    def ports(self):
        out = proc.run(self.vsctl_argv() + ["list-ports", topology.OVS_BRIDGE], env=self.env())
        return [p for p in out.stdout.split() if p]


class OvsTool(Tool):
    """Shared by the OVS variants: they run in the netns where the private OVS runs."""

    variant = "ovs"

    def __init__(self, sb, ovs_switch, host):
        self.ovs = ovs_switch
        self.shared_host = host

    def start(self):
        self.host = self.shared_host
        # lo, the bridge's own internal port, ovs-netdev (the userspace datapath's tap)
        self.sb.enter(self.host)
        self.base_links = link_count()

    def verify(self):
        # The ports are in different netns on the same bridge and VLAN: ping c0 -> c1.
        if self.n >= 2:
            self.ping(topology.OvsAddr(1).ct4, netns=self.cid(0))
        self.check_container_extras(0)
        ports = self.ovs.ports()
        if len(ports) != self.n:
            raise RuntimeError(f"{self.label}: expected {self.n} OVS ports, found {len(ports)}")

    def settle(self):
        left = self.ovs.ports()
        if left:
            raise RuntimeError(f"{self.label}: destroy left {len(left)} OVS ports")
        super().settle()


class NetprovOvs(OvsTool, Netprov):
    key = "netprov"
    label = "netprov, 1 process"
    letter = "P"

    def __init__(self, sb, binary, ovs_switch, host):
        Netprov.__init__(self, sb, binary, ovsdb=ovs_switch.remote)
        OvsTool.__init__(self, sb, ovs_switch, host)

    def props(self, i):
        return topology.netprov_ovs_props(self.cid(i), i)


class NetprovOvsEach(NetprovOvs):
    key = "netprov_each"
    label = "netprov, 1 proc/ctr"
    letter = "Q"
    per_container = True


class NetprovOvsVethEach(NetprovOvsEach):
    """netprov's default OVS port style (veth), one process per container: the same
    bridge, VLAN, addresses, routes, sysctl and ruleset, without moving a device."""
    key = "netprov_each_veth"
    label = "netprov, 1 proc/ctr, veth port (default)"
    letter = "V"

    def props(self, i):
        return topology.netprov_ovs_props(self.cid(i), i, style="veth")


class ShellOvs(OvsTool, Shell):
    key = "shell"
    label = "shell (ovs-vsctl/ip/nft)"
    letter = "S"

    def __init__(self, sb, ovs_switch, host):
        Shell.__init__(self, sb)
        OvsTool.__init__(self, sb, ovs_switch, host)

    def executables(self):
        return Shell.executables(self) + ["ovs-vsctl"]

    def up_script(self, i):
        return topology.shell_ovs_up(self.cid(i), i, self.nft, self.ovs.vsctl_cmd())

    def down_script(self, i):
        return topology.shell_ovs_down(self.cid(i), i, self.ovs.vsctl_cmd())
