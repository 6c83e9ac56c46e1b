#!/usr/bin/env python3
"""The floor under each benchmark goal, measured: what the kernel (and a bare process)
spends on the same objects, next to netprov's own per-phase times (`netprov -v` spans,
untraced). Run as root, on an otherwise idle sandbox; see docs/benchmarks.md.

    sudo bench/floor.py [--netprov target/release/netprov] [--reps 15]

Prints a Markdown table of medians. Everything happens in network namespaces it
creates (prefix `nb<run>`, as bench/run) and a private Open vSwitch; all are removed.
"""
import argparse
import json
import os
import re
import statistics
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import proc, topology  # noqa: E402
from benchlib.ovs import PrivateOvs  # noqa: E402
from benchlib.sandbox import Sandbox, private_run_dirs  # noqa: E402

SPAN = re.compile(r"(observe|plan|parse)\{[^}]*\}: \S+ close time\.busy=(\S+) time\.idle=(\S+)"
                  r"|phase\{[^}]*phase=(\w+)\}: \S+ close time\.busy=(\S+) time\.idle=(\S+)")


def secs(s):
    for suf, mul in (("ns", 1e-9), ("µs", 1e-6), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if s.endswith(suf):
            return float(s[: -len(suf)]) * mul
    return float(s)


def spans(stderr):
    """{name: wall seconds (busy + idle)} of one `netprov -v` run; repeated names add."""
    out = {}
    seen = {}
    for m in SPAN.finditer(stderr):
        if m.group(1):
            name, busy, idle = m.group(1), m.group(2), m.group(3)
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name} #{seen[name]}"
        else:
            name, busy, idle = "phase " + m.group(4), m.group(5), m.group(6)
        out[name] = out.get(name, 0.0) + secs(busy) + secs(idle)
    return out


def median_ms(xs):
    return statistics.median(xs) * 1000 if xs else float("nan")


class Rows:
    def __init__(self):
        self.rows = []

    def add(self, what, ms, note=""):
        self.rows.append((what, ms, note))

    def add_phases(self, what, measured):
        """`measured` is netprov_phases' result: the process wall time, then each span."""
        walls, ph = measured
        self.add(f"**{what}, process wall**", median_ms(walls))
        for k, v in ph.items():
            self.add(k, v)

    def print(self, title):
        print(f"\n#### {title}\n\n| what | ms (median) | note |\n|---|---|---|")
        for what, ms, note in self.rows:
            print(f"| {what} | {ms:.2f} | {note} |")
        self.rows = []


def timed(argv, reps, before=None, env=None):
    walls = []
    for i in range(reps):
        if before:
            before(i)
        r = proc.measured([a.replace("{i}", str(i)) for a in argv], env=env)
        r.check(" ".join(argv))
        walls.append(r.wall)
    return walls


def netprov_phases(argv_for, reps, before=None, env=None):
    """Per-span medians and the process's wall time over `reps` runs."""
    walls, per = [], {}
    e = dict(env or os.environ)
    e["RUST_LOG"] = "netprov=info"
    e["NO_COLOR"] = "1"
    for i in range(reps):
        if before:
            before(i)
        r = proc.measured(argv_for(i), env=e)
        r.check(" ".join(argv_for(i)))
        walls.append(r.wall)
        for k, v in spans(r.stderr).items():
            per.setdefault(k, []).append(v)
    return walls, {k: median_ms(v) for k, v in per.items()}


def start_floors(out_dir):
    """Builds two tiny executables that split a process start: [(row, path, note)]."""
    cc = proc.c_compiler()
    progs = [
        ("an executable without libc (`_start` → `exit`)", "nolibc",
         'void _start(void){__asm__ volatile("mov $60,%eax; xor %edi,%edi; syscall");}',
         ["-nostdlib", "-static"], "exec and exit: the kernel's share"),
        ("`int main(){return 0;}`, glibc, static", "cstatic", "int main(void){return 0;}",
         ["-static"], "adds glibc's start-up (its CPUID cache probe)"),
    ]
    out = []
    for label, name, src, flags, note in progs:
        c = os.path.join(out_dir, name + ".c")
        with open(c, "w") as fh:
            fh.write(src + "\n")
        exe = os.path.join(out_dir, name)
        if proc.run([cc, "-O2", *flags, "-o", exe, c]).rc == 0:
            out.append((label, exe, note))
    return out


def write_props(d, stem, props, reps):
    """Writes `reps` props files `<d>/<stem><i>.json` from `props(i)`; returns their paths."""
    files = []
    for i in range(reps):
        f = os.path.join(d, f"{stem}{i}.json")
        with open(f, "w") as fh:
            json.dump(props(i), fh)
        files.append(f)
    return files


def ovs_floors(sb, b, a, d, rows):
    """The OVS part: the switch's own floor, and netprov's phases with an internal and
    a veth port (the latter on a bridge with `--ovs-ports` other ports)."""
    PrivateOvs.available()
    ohost = sb.new_host("g")
    sw = PrivateOvs(sb)
    sw.start(ohost)
    env = sw.env()
    vs = sw.vsctl_argv()
    add = vs + ["add-port", topology.OVS_BRIDGE, "fo{i}", f"tag={topology.OVS_VLAN}",
                "--", "set", "Interface", "fo{i}", "type=internal"]
    w_add = timed(add, a.reps, env=env)
    # The device ovs-vswitchd made, moved into a netns (as netprov and the
    # shell both do): the kernel's dev_change_net_namespace.
    w_mv = []
    for i in range(a.reps):
        ns = f"{sb.prefix}gm{i}"
        proc.quiet(["ip", "netns", "add", ns])
        w_mv.append(proc.measured(["ip", "link", "set", f"fo{i}", "netns", ns]).check("move").wall)
    for i in range(a.reps):
        proc.quiet(vs + ["del-port", topology.OVS_BRIDGE, f"fo{i}"], env=env)
        proc.quiet(["ip", "netns", "del", f"{sb.prefix}gm{i}"])
    w_nw = timed(vs[:1] + ["--no-wait"] + vs[1:] + add[len(vs):], a.reps, env=env)
    for i in range(a.reps):
        proc.quiet(vs + ["del-port", topology.OVS_BRIDGE, f"fo{i}"], env=env)
    rows.add("`ovs-vsctl add-port … type=internal`", median_ms(w_add),
             "waits until ovs-vswitchd applied it (the device exists)")
    rows.add("`ovs-vsctl --no-wait add-port …`", median_ms(w_nw),
             "the OVSDB transaction alone")
    rows.add("ovs-vswitchd reconfiguration", median_ms(w_add) - median_ms(w_nw),
             "what both netprov and the shell wait for")
    rows.add("`ip link set <internal port> netns X`", median_ms(w_mv),
             "moving the device into the container netns (both do it)")
    ofiles = write_props(
        d, "o", lambda i: topology.netprov_ovs_props(f"{sb.prefix}g{i}", i), a.reps)
    rows.add_phases("netprov OVS cold apply", netprov_phases(
        lambda i: [b, "--ovsdb", sw.remote, "-v", "apply", ofiles[i]], a.reps))
    for f in ofiles:
        proc.measured([b, "--ovsdb", sw.remote, "destroy", f]).check("destroy ovs")
    rows.print("OVS internal port: the switch's floor and netprov's phases")

    # netprov's default port style (veth), on a bridge with `--ovs-ports` other
    # ports: the switch's reconfiguration grows with its ports.
    if a.ovs_ports:
        others = write_props(d, "ob", lambda i: topology.netprov_ovs_props(
            f"{sb.prefix}gb{i}", 1000 + i, style="veth"), a.ovs_ports)
        proc.measured([b, "--ovsdb", sw.remote, "apply", *others]).check("apply ovs")
        time.sleep(3)
    vfiles = write_props(d, "ov", lambda i: topology.netprov_ovs_props(
        f"{sb.prefix}gv{i}", i, style="veth"), a.reps)
    measured = netprov_phases(
        lambda i: [b, "--ovsdb", sw.remote, "-v", "apply", vfiles[i]], a.reps)
    rows.add(f"`ovs-vsctl add-port` ({a.ovs_ports} other ports)",
             median_ms(timed(vs + ["add-port", topology.OVS_BRIDGE, "fv{i}"], a.reps,
                             env=env)),
             "the switch's floor on this bridge")
    for i in range(a.reps):
        proc.quiet(vs + ["del-port", topology.OVS_BRIDGE, f"fv{i}"], env=env)
    rows.add_phases("netprov OVS cold apply (veth port)", measured)
    for f in vfiles:
        proc.measured([b, "--ovsdb", sw.remote, "destroy", f]).check("destroy ovs")
    rows.print(f"OVS veth port (netprov's default), {a.ovs_ports} other ports on the bridge")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--netprov", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "target", "release", "netprov"))
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--no-ovs", action="store_true")
    ap.add_argument("--ovs-ports", type=int, default=0, metavar="N",
                    help="measure the veth-style OVS apply with N other ports on the bridge")
    ap.add_argument("--host-size", type=int, default=0, metavar="N",
                    help="first provision N other containers in the host (one netprov "
                         "process), to see what grows with the host")
    a = ap.parse_args()
    b = os.path.abspath(a.netprov)
    private_run_dirs()  # as bench/run: /run/netns and /run/netprov on a tmpfs of its own
    sb = Sandbox()
    proc.build_timed(sb.dir)
    rows = Rows()
    try:
        host = sb.new_host("f")
        sb.enter(host)
        d = sb.path("floor")
        os.makedirs(d, exist_ok=True)
        files = write_props(d, "", lambda i: topology.netprov_veth_props(f"{sb.prefix}f{i}", i),
                            a.reps)
        nft = os.path.join(d, "r.nft")
        with open(nft, "w") as fh:
            fh.write(topology.NFT_RULESET)

        if a.host_size:
            others = write_props(d, "b", lambda i: topology.netprov_veth_props(
                f"{sb.prefix}b{i}", a.reps + i), a.host_size)
            proc.measured([b, "apply", *others]).check(f"apply {a.host_size} other containers")
            # Let the kernel's own work for them end first (IPv6 duplicate address
            # detection and MLD reports on 2N new interfaces run for a few seconds on
            # kernel workers, under the RTNL lock): measured in the middle of it, every
            # netlink operation here waits for them.
            time.sleep(max(3.0, a.host_size / 200))

        # floors: a process, a netns, the ruleset's commit, a veth
        rows.add("`/bin/true`", median_ms(timed(["/bin/true"], a.reps)))
        # What that process start is made of: an executable without libc (exec and
        # exit only), and a C `main(){}` linked statically (glibc's start-up, which
        # probes the CPU's caches with CPUID: a VM exit each under virtualisation).
        for label, exe, note in start_floors(sb.dir):
            rows.add(label, median_ms(timed([exe], a.reps)), note)
        # What grows with the host (each a process; subtract /bin/true): a path lookup
        # under /proc/sys/net, and the route dumps netprov's observe makes (kernel-side
        # filtered, but walking the whole table).
        rows.add("`cat /proc/sys/net/ipv4/ip_forward`",
                 median_ms(timed(["cat", "/proc/sys/net/ipv4/ip_forward"], a.reps)),
                 "a path lookup under /proc/sys/net in the host")
        for fam in ("-4", "-6"):
            rows.add(f"`ip {fam} route show table main proto 77 dev lo`",
                     median_ms(timed(["ip", fam, "route", "show", "table", "main", "proto", "77",
                                      "dev", "lo"], a.reps)),
                     "a filtered route dump in the host")
        # A veth pair set up and addressed in the host, by one `ip -batch` process: the
        # kernel's side of netprov's HostLinks, LinkState and Addresses phases.
        bfile = os.path.join(d, "veth-{i}.ip")
        for i in range(a.reps):
            with open(bfile.format(i=i), "w") as fh:
                fh.write(f"link add fz{i} type veth peer name fzp{i}\nlink set fz{i} up\n"
                         f"addr add 10.200.{i}.0/31 dev fz{i}\n"
                         f"addr add fd00:200::{i:x}:0/127 dev fz{i}\n")
        rows.add("`ip -batch`: veth, up, a /31 and a /127 in the host",
                 median_ms(timed(["ip", "-batch", bfile], a.reps)),
                 "the kernel's side of the host-link phases (one process)")
        for i in range(a.reps):
            proc.quiet(["ip", "link", "del", f"fz{i}"])
        rows.add("`netprov --version`", median_ms(timed([b, "--version"], a.reps)),
                 "process start: loader, Rust runtime, clap")
        rows.add("`unshare -n true`", median_ms(timed(["unshare", "-n", "true"], a.reps)),
                 "a process that creates a netns")
        rows.add("`unshare -n nft -f ruleset`",
                 median_ms(timed(["unshare", "-n", "nft", "-f", nft], a.reps)),
                 "…and loads the ruleset into it (nft's own start included)")
        rows.add("`ip netns add` + `ip netns del`",
                 median_ms(timed(["sh", "-c", f"ip netns add {sb.prefix}fz{{i}} && "
                                              f"ip netns del {sb.prefix}fz{{i}}"], a.reps)),
                 "two processes")
        rows.print("Floors (one process each)")

        rows.add_phases("cold apply",
                        netprov_phases(lambda i: [b, "-v", "apply", files[i]], a.reps))
        rows.print("netprov: cold apply of one container, one process (spans: busy + idle)")

        rows.add_phases("no-op apply",
                        netprov_phases(lambda i: [b, "-v", "apply", files[i]], a.reps))
        rows.print("netprov: no-op re-apply, one process")

        w_nowait = []
        for i in range(a.reps):
            r = proc.measured([b, "destroy", "--no-wait", files[i]])
            r.check("destroy --no-wait")
            w_nowait.append(r.wall)
        for i in range(a.reps):
            proc.measured([b, "apply", files[i]]).check("apply")
        w_wait = []
        for i in range(a.reps):
            r = proc.measured([b, "destroy", files[i]])
            r.check("destroy")
            w_wait.append(r.wall)
        rows.add("`netprov destroy --no-wait`", median_ms(w_nowait),
                 "returns once the netns is released")
        rows.add("`netprov destroy`", median_ms(w_wait),
                 "returns when the kernel's netns cleanup deleted the host end")
        rows.add("difference", median_ms(w_wait) - median_ms(w_nowait),
                 "the kernel's cleanup_net, waited for")
        rows.print("netprov: destroy, one process per container")

        if not a.no_ovs:
            ovs_floors(sb, b, a, d, rows)
    finally:
        for err in sb.teardown():
            print(f"cleanup: {err}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
