"""The measured tools. Each owns a simulated host netns of its own and runs its
containers' namespaces next to it; `cold`, `noop` and `destroy` are the timed phases,
everything else (writing configs, pre-creating namespaces for the peers, verifying
traffic, waiting for the kernel's asynchronous netns cleanup) is not timed."""

import json
import os
import shutil
import subprocess

from . import proc, topology
from .measure import Phase
from .sandbox import NETNS_DIR, wait_links


class NotAvailable(Exception):
    """The tool cannot run here; the message says why (shown in the table)."""


class Tool:
    key = ""  # short id in JSON
    label = ""  # row label in the table
    letter = ""  # one character in namespace names
    variant = "veth"
    idempotent = False
    max_n = None  # larger sizes are skipped (and said so in the table)

    def __init__(self, sb):
        self.sb = sb
        self.host = None
        self.n = 0
        self.base_links = 1  # lo

    def executables(self):
        """The programs this tool runs (paths or names on PATH), for benchlib.pagecache."""
        return []

    def available(self):
        """Raises NotAvailable(reason) if the tool cannot run here."""

    def start(self):
        self.host = self.sb.new_host(self.letter)

    def cid(self, i):
        return f"{self.sb.prefix}{self.letter}{i}"

    def prepare(self, n):
        """Writes this tool's per-container inputs for N containers (untimed)."""
        self.n = n

    def cold(self):
        raise NotImplementedError

    def noop(self):
        return None

    def destroy(self):
        raise NotImplementedError

    def verify(self):
        """Checks state and traffic after a cold apply (untimed); raises on failure."""

    def verify_veth(self):
        """`verify` for the veth topology: the first and the last container answer a
        ping from the host, and the first has the sysctl and the ruleset."""
        for i in sorted({0, self.n - 1}):
            self.ping(topology.Veth(i).ct4)
        self.check_container_extras(0)

    caveats = None  # set of strings: work the tool was meant to do but did not (shown in the table)

    def check_container_extras(self, i):
        """The sysctl and the ruleset in container i. A tool that skipped them still gets
        measured, but the table says so: the comparison is then not like for like."""
        ns = f"--net={NETNS_DIR}/{self.cid(i)}"
        if self.caveats is None:
            self.caveats = set()
        v = proc.run(["nsenter", ns, "--", "cat", "/proc/sys/" + topology.SYSCTL[0].replace(".", "/")])
        if v.stdout.strip() != topology.SYSCTL[1]:
            self.caveats.add(f"sysctl {topology.SYSCTL[0]} not set in the container")
        t = proc.run(["nsenter", ns, "--", "nft", "list", "tables"])
        if "table inet filter" not in t.stdout:
            self.caveats.add("nft ruleset not loaded in the container")

    def settle(self):
        """After destroy: waits for the kernel to finish deleting the namespaces' links,
        and checks nothing of this tool's containers is left."""
        left = [n for n in os.listdir(NETNS_DIR) if n.startswith(self.sb.prefix + self.letter)]
        if left:
            raise RuntimeError(f"{self.label}: destroy left {len(left)} netns, e.g. {left[0]}")
        links = wait_links(self.base_links)
        if links > self.base_links:
            raise RuntimeError(f"{self.label}: {links - self.base_links} links left in the host netns")

    def ping(self, addr, netns=None):
        argv = ["ping", "-n", "-q", "-c", "1", "-W", "2", str(addr)]
        if netns:
            argv = ["nsenter", f"--net={NETNS_DIR}/{netns}", "--"] + argv
        r = proc.run(argv)
        if r.rc != 0:
            raise RuntimeError(f"{self.label}: no traffic: ping {addr}"
                               f"{' from ' + netns if netns else ''} failed")


# ---------------------------------------------------------------------------- netprov

class Netprov(Tool):
    idempotent = True
    per_container = False  # True: one `netprov apply` per container (ExecStartPre style)

    def __init__(self, sb, binary, ovsdb=None):
        super().__init__(sb)
        self.bin = binary
        self.ovsdb = ovsdb
        self.files = []
        self.sample_json = {}

    def executables(self):
        return [self.bin]

    def available(self):
        if not (self.bin and os.access(self.bin, os.X_OK)):
            raise NotAvailable(f"no netprov binary at {self.bin}")

    def props(self, i):
        return topology.netprov_veth_props(self.cid(i), i)

    def prepare(self, n):
        super().prepare(n)
        d = self.sb.path(self.variant, self.key, "props")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        self.files = []
        for i in range(n):
            f = os.path.join(d, f"{self.cid(i)}.json")
            with open(f, "w") as fh:
                json.dump(self.props(i), fh)
            self.files.append(f)

    def env(self):
        """netprov's compiled-ruleset cache in this run's own directory: every run
        starts with it empty (the first container with a ruleset compiles it, as on a
        freshly booted host), and the machine's /run/netprov is left alone."""
        e = dict(os.environ)
        e["NETPROV_NFT_CACHE"] = self.cache_setting()
        return e

    def cache_setting(self):
        return self.sb.path("nft-batches")

    def argv(self, verb, files):
        a = [self.bin, "--json"]
        if self.ovsdb:
            a += ["--ovsdb", self.ovsdb]
        return a + verb.split() + files

    def _phase(self, verb, what):
        self.sb.enter(self.host)
        ph = Phase(self.n)
        batches = [[f] for f in self.files] if self.per_container else [self.files]
        for files in batches:
            r = proc.measured(self.argv(verb, files), env=self.env())
            r.check(f"{self.label}: netprov {verb} ({len(files)} props)")
            ph.add(r)
            self._count(ph, r.stdout, what)
        return ph

    def _count(self, ph, stdout, what):
        """netprov's own counters from `--json`: a list of {id, ok, result} per container;
        `result.messages` is the number of mutating netlink messages it sent."""
        try:
            doc = json.loads(stdout)
        except json.JSONDecodeError:
            return
        self.sample_json.setdefault(what, doc[:1] if isinstance(doc, list) else doc)
        for entry in doc if isinstance(doc, list) else [doc]:
            res = entry.get("result") if isinstance(entry, dict) else None
            if not isinstance(res, dict):
                continue
            if isinstance(res.get("messages"), int):
                ph.count("netlink_mutating", res["messages"])
            steps = (res.get("plan") or {}).get("steps") if isinstance(res.get("plan"), dict) else None
            if isinstance(steps, list):
                ph.count("plan_steps", len(steps))
                # netprov counts netlink messages only; OVSDB work shows as plan steps
                ovs = [x for x in steps if isinstance(x, dict) and "ovs" in str(x.get("op", ""))]
                if ovs or self.variant == "ovs":
                    ph.count("ovs_steps", len(ovs))
            for k, v in res.items():
                if "ovsdb" in k and isinstance(v, int) and not isinstance(v, bool):
                    ph.count(k, v)

    def cold(self):
        return self._phase("apply", "cold")

    def noop(self):
        return self._phase("apply", "noop")

    def destroy(self):
        # One process per container compares with the shell's `ip netns del`, which
        # returns before the kernel's netns cleanup deleted the veths: `--no-wait` is
        # the same contract (the untimed settle step then waits for the kernel, as it
        # does for the shell). One process for all keeps the default: destroy returns
        # when nothing is left. See docs/benchmarks.md.
        return self._phase("destroy --no-wait" if self.per_container else "destroy", "destroy")

    verify = Tool.verify_veth


class NetprovBatch(Netprov):
    key = "netprov"
    label = "netprov, 1 process"
    letter = "p"


class NetprovEach(Netprov):
    key = "netprov_each"
    label = "netprov, 1 proc/ctr"
    letter = "q"
    per_container = True


class NetprovEachUncached(NetprovEach):
    """The same with the compiled-ruleset cache off: every container's ruleset goes
    through libnftables (what a host pays for a ruleset no container had before)."""
    key = "netprov_each_nocache"
    label = "netprov, 1 proc/ctr, batch cache off"
    letter = "u"

    def cache_setting(self):
        return "off"


# --------------------------------------------------------------- bare process start

class Bare(Tool):
    """The floor of one process per container: `/bin/true` started and reaped the same
    way as every measured process, N times per phase. No network work at all; the no-op
    goal compares netprov's no-op re-apply (one process per container) with it."""
    key = "bare"
    label = "bare process (/bin/true)"
    letter = "b"
    idempotent = True
    base_links = 1

    def executables(self):
        return ["/bin/true"]

    def _phase(self):
        self.sb.enter(self.host)
        ph = Phase(self.n)
        for _ in range(self.n):
            r = proc.measured(["/bin/true"])
            r.check("bare process start")
            ph.add(r)
        return ph

    def cold(self):
        return self._phase()

    def noop(self):
        return self._phase()

    def destroy(self):
        return self._phase()


# ----------------------------------------------------------- the ideal provisioner

class Ideal(Tool):
    """The floor under netprov's veth goals, measured side by side: bench/ideal.c asks
    the kernel for the same objects netprov makes (cold), reads what netprov's no-op
    reads (noop) and removes the netns handles (destroy), with nothing else. Its
    ruleset is the netlink batch netprov's compiled-ruleset cache holds for the bench's
    ruleset, made once per run (untimed) by the netprov under test."""
    key = "ideal_each"
    label = "ideal (C floor), 1 proc/ctr"
    letter = "i"
    idempotent = True
    per_container = True

    def __init__(self, sb, binary):
        super().__init__(sb)
        self.bin = binary
        self.exe = None
        self.batch = None
        self.specs = []
        self.procfs = "shared"

    def executables(self):
        return [self.exe] if self.exe else []

    def available(self):
        if not (self.bin and os.access(self.bin, os.X_OK)):
            raise NotAvailable("needs the netprov binary (for the ruleset's batch)")
        try:
            self.exe = proc.build_ideal(self.sb.dir)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
            raise NotAvailable(f"cannot build bench/ideal.c: {e}")

    def start(self):
        super().start()
        self.batch = ideal_batch(self.sb, self.bin, self.host)

    def prepare(self, n):
        super().prepare(n)
        self.specs = []
        for i in range(n):
            a = topology.Veth(i)
            self.specs.append(f"{self.cid(i)},{self.letter}h{i},{a.host4},{a.ct4},{a.host6},{a.ct6}")
        # netprov moves to a procfs instance of its own once lookups under /proc/sys
        # are slow, at about 100 namespaces (netprov/src/kernel/procsys.rs)
        self.procfs = "private" if n >= 100 else "shared"

    def _phase(self, verb):
        self.sb.enter(self.host)
        ph = Phase(self.n)
        batches = [[s] for s in self.specs] if self.per_container else [self.specs]
        for specs in batches:
            r = proc.measured([self.exe, verb, self.batch, self.procfs, *specs])
            r.check(f"{self.label}: {verb}")
            ph.add(r)
        return ph

    def cold(self):
        return self._phase("cold")

    def noop(self):
        return self._phase("noop")

    def destroy(self):
        return self._phase("destroy")

    verify = Tool.verify_veth


class IdealBatch(Ideal):
    key = "ideal"
    label = "ideal (C floor), 1 process"
    letter = "j"
    per_container = False


def ideal_batch(sb, binary, host):
    """The batch netprov's cache stores for the bench's ruleset: one throwaway container
    applied (and destroyed) in `host` with a cache directory of its own. Returns the
    path of a file holding the batch alone (netprov's entry without its header)."""
    d = os.path.dirname(sb.path("ideal-batch", "x"))
    if os.path.exists(os.path.join(d, "batch")):
        return os.path.join(d, "batch")
    cache = os.path.join(d, "cache")
    os.makedirs(cache, mode=0o700, exist_ok=True)
    props = os.path.join(d, "props.json")
    with open(props, "w") as f:
        json.dump(topology.netprov_veth_props(f"{sb.prefix}iz", 60000), f)
    sb.enter(host)
    env = dict(os.environ, NETPROV_NFT_CACHE=cache)
    proc.run([binary, "apply", props], env=env).check("ideal: netprov apply (to make the batch)")
    proc.run([binary, "destroy", props], env=env).check("ideal: netprov destroy")
    entries = os.listdir(cache)
    if len(entries) != 1:
        raise NotAvailable(f"netprov's cache holds {len(entries)} entries, not one")
    with open(os.path.join(cache, entries[0]), "rb") as f:
        b = f.read()
    # netprov's entry: three header lines (format, library, checksum), then the batch
    # (netprov/src/nft/ruleset/compiled/mod.rs, Entry::encode)
    at = 0
    for _ in range(3):
        at = b.index(b"\n", at) + 1
    out = os.path.join(d, "batch")
    with open(out, "wb") as f:
        f.write(b[at:])
    return out


# ------------------------------------------------------------------------------ shell

class Shell(Tool):
    key = "shell"
    label = "shell (ip/nft/sysctl)"
    letter = "s"
    PROGRAMS = ("bash", "ip", "nft", "sysctl")

    def executables(self):
        return list(self.PROGRAMS)

    def available(self):
        for b in self.PROGRAMS:
            if not shutil.which(b):
                raise NotAvailable(f"{b} not installed")

    def prepare(self, n):
        super().prepare(n)
        d = self.sb.path(self.variant, self.key, "scripts")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        self.nft = os.path.join(d, "ruleset.nft")
        with open(self.nft, "w") as f:
            f.write(topology.NFT_RULESET)
        self.up, self.down = [], []
        for i in range(n):
            for lst, text, tag in ((self.up, self.up_script(i), "up"),
                                   (self.down, self.down_script(i), "down")):
                p = os.path.join(d, f"{tag}{i}.sh")
                with open(p, "w") as f:
                    f.write(text)
                lst.append(p)

    def up_script(self, i):
        return topology.shell_veth_up(self.cid(i), f"vh{i}", i, self.nft)

    def down_script(self, i):
        return topology.shell_veth_down(self.cid(i))

    def _run_all(self, scripts, what):
        self.sb.enter(self.host)
        ph = Phase(self.n)
        for s in scripts:
            r = proc.measured(["bash", s]).check(f"{self.label}: {what} {os.path.basename(s)}")
            ph.add(r)
        return ph

    def cold(self):
        return self._run_all(self.up, "up")

    def destroy(self):
        return self._run_all(self.down, "down")

    verify = Tool.verify_veth


# -------------------------------------------------------------------------------- CNI

CNI_PATH = "/usr/lib/cni"


def _precreate_netns(names):
    """The container runtime's part for the peers (untimed): one `ip -batch`."""
    proc.quiet(["ip", "-batch", "-"], stdin_data="".join(f"netns add {n}\n" for n in names))


def _delete_netns(names):
    if names:
        proc.run(["ip", "-force", "-batch", "-"],
                 stdin_data="".join(f"netns del {n}\n" for n in names))


class CniPtp(Tool):
    """IPv4 only: with IPv6, ptp waits out DAD on each container (see CniPtpDual)."""

    key = "cni_ptp"
    label = "CNI ptp+host-local (v4)"
    letter = "c"
    ipv6 = False
    PLUGINS = ("ptp", "host-local")

    def executables(self):
        return [os.path.join(CNI_PATH, p) for p in self.PLUGINS]

    def available(self):
        for p in self.PLUGINS:
            if not os.access(os.path.join(CNI_PATH, p), os.X_OK):
                raise NotAvailable(f"{CNI_PATH}/{p} missing (Debian containernetworking-plugins)")

    def prepare(self, n):
        super().prepare(n)
        data = self.sb.path(self.variant, self.key, "ipam")
        shutil.rmtree(data, ignore_errors=True)
        os.makedirs(data)
        self.config = topology.cni_ptp_config(data, self.ipv6)
        self.addrs = {}

    def env(self, cmd, i):
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": cmd,
            "CNI_CONTAINERID": self.cid(i),
            "CNI_NETNS": f"{NETNS_DIR}/{self.cid(i)}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": CNI_PATH,
        }

    def _invoke(self, cmd):
        ph = Phase(self.n)
        for i in range(self.n):
            r = proc.measured([os.path.join(CNI_PATH, "ptp")], stdin_data=self.config,
                         env=self.env(cmd, i)).check(f"{self.label}: {cmd} {self.cid(i)}")
            ph.add(r)
            if cmd == "ADD" and i in (0, self.n - 1):
                res = json.loads(r.stdout)
                self.addrs[i] = [ip["address"].split("/")[0] for ip in res.get("ips", [])]
        return ph

    def cold(self):
        self.sb.enter(self.host)
        _precreate_netns([self.cid(i) for i in range(self.n)])
        return self._invoke("ADD")

    def destroy(self):
        self.sb.enter(self.host)
        ph = self._invoke("DEL")
        _delete_netns([self.cid(i) for i in range(self.n)])
        return ph

    def verify(self):
        for i, addrs in self.addrs.items():
            self.ping(addrs[0])


class CniPtpDual(CniPtp):
    """The same topology as netprov's (v4 + v6). ptp then waits for IPv6 DAD on every
    container (about 1-2 s each), so it runs only at N = 1."""

    key = "cni_ptp_dual"
    label = "CNI ptp+host-local (v4+v6)"
    letter = "d"
    ipv6 = True
    max_n = 1


# --------------------------------------------------------------------------- netavark

NETAVARK_CACHE = "/var/cache/netprov-bench/netavark/bin/netavark"
# Debian's package (`apt-get install netavark`, 1.4 in bookworm) puts it here, off PATH.
NETAVARK_DEBIAN = "/usr/lib/podman/netavark"


class Netavark(Tool):
    key = "netavark"
    label = "netavark bridge"
    letter = "a"

    def __init__(self, sb, binary):
        super().__init__(sb)
        self.bin = (binary or shutil.which("netavark")
                    or next((p for p in (NETAVARK_CACHE, NETAVARK_DEBIAN) if os.access(p, os.X_OK)),
                            NETAVARK_CACHE))

    def executables(self):
        # and what its firewall driver runs
        return [self.bin, "nft", "iptables"]

    def available(self):
        if not os.access(self.bin, os.X_OK):
            raise NotAvailable(
                f"no netavark binary (looked for $NETAVARK, PATH, {NETAVARK_CACHE}, "
                f"{NETAVARK_DEBIAN}; build it with `bench/run --install-netavark` or "
                "`apt-get install netavark`)")
        if not shutil.which("nft"):
            raise NotAvailable("its nftables firewall driver runs `nft`, not installed")
        # netavark < 1.6 (Debian bookworm's 1.4) has no nftables driver: its iptables
        # driver then (iptables-nft here), and the row says so.
        r = proc.run([self.bin, "--version"])
        ver = r.stdout.split()[-1] if r.rc == 0 and r.stdout.split() else ""
        try:
            old = tuple(int(x) for x in ver.split(".")[:2]) < (1, 6)
        except ValueError:
            old = False
        if old:
            if not shutil.which("iptables"):
                raise NotAvailable(f"netavark {ver} has no nftables driver and iptables is not installed")
            self.fw = "iptables"
            self.label = f"netavark {ver} bridge (iptables driver)"

    def prepare(self, n):
        super().prepare(n)
        d = self.sb.path(self.variant, self.key, "configs")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        self.confdir = os.path.join(self.sb.dir, self.variant, self.key, "state")
        os.makedirs(self.confdir, exist_ok=True)
        self.files, self.ct4 = [], {}
        for i in range(n):
            text, ct4 = topology.netavark_config(self.cid(i), i, f"{self.sb.prefix}br")
            f = os.path.join(d, f"{i}.json")
            with open(f, "w") as fh:
                fh.write(text)
            self.files.append(f)
            self.ct4[i] = ct4

    def env(self):
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "NETAVARK_FW": getattr(self, "fw", "nftables"),
            # no firewalld over D-Bus: it would act on the machine's own netns
            "DBUS_SYSTEM_BUS_ADDRESS": "",
        }

    def _invoke(self, verb):
        ph = Phase(self.n)
        for i, f in enumerate(self.files):
            argv = [self.bin, "--config", self.confdir, "--rootless", "false", "--file", f,
                    verb, f"{NETNS_DIR}/{self.cid(i)}"]
            ph.add(proc.measured(argv, env=self.env()).check(f"{self.label}: {verb} {self.cid(i)}"))
        return ph

    def cold(self):
        self.sb.enter(self.host)
        _precreate_netns([self.cid(i) for i in range(self.n)])
        return self._invoke("setup")

    def destroy(self):
        self.sb.enter(self.host)
        ph = self._invoke("teardown")
        _delete_netns([self.cid(i) for i in range(self.n)])
        return ph

    def verify(self):
        for i in sorted({0, self.n - 1}):
            self.ping(self.ct4[i])

    def settle(self):
        # netavark leaves its (empty) nftables table in the host netns; links must go.
        super().settle()
