"""`bench/run`: the whole benchmark in one command. See docs/benchmarks.md."""

import argparse
import datetime
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time

from . import pagecache, proc, report
from .profile import run_profile
from .ovs import NetprovOvs, NetprovOvsEach, NetprovOvsVethEach, PrivateOvs, ShellOvs
from .sandbox import NETNS_DIR, Sandbox, private_run_dirs
from .tools import (NETAVARK_CACHE, Bare, CniPtp, CniPtpDual, Ideal, IdealBatch, Netavark,
                    NetprovBatch, NetprovEach, NetprovEachUncached, NotAvailable, Shell)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(REPO, "bench", "results")

# N -> rounds (fits the 10-minute budget). At N = 1 and 10 a round gives one or ten
# process samples per tool, so a median needs many rounds to stand still; they are cheap.
FULL_VETH = {1: 15, 10: 7, 100: 2, 1000: 1}
FULL_OVS = {1: 3, 10: 2, 100: 1}
QUICK_VETH = {10: 2}
QUICK_OVS = {10: 1}

TITLES = {"veth": "veth (/31 + /127, routes, sysctl, nft)",
          "ovs": "OVS port, VLAN 356 (addresses, routes, sysctl, nft); the shell and rows P, Q use an internal port, row V netprov's default veth port"}

# A failure of these rows makes the run fail (the harness or netprov broke); any other
# row that fails is reported as "not available: <why>" and the run goes on.
ESSENTIAL = {("veth", "netprov"), ("veth", "netprov_each"), ("veth", "shell"), ("ovs", "shell")}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark netprov against a NixUnits-style shell pipeline, CNI ptp and "
                    "netavark, inside private network namespaces. Run as root.")
    p.add_argument("--quick", action="store_true",
                   help="CI smoke: N = 10 only (veth and OVS), 2 rounds; under a minute")
    p.add_argument("--sizes", help="veth sizes and rounds, e.g. 10:5,100:3 (overrides the mode)")
    p.add_argument("--ovs-sizes", help="OVS sizes and rounds, e.g. 10:3 ('' = no OVS variant)")
    p.add_argument("--tools", default="netprov,netprov_each,netprov_each_nocache,netprov_each_veth,shell,bare,ideal,ideal_each,cni_ptp,cni_ptp_dual,netavark",
                   help="comma-separated subset of: %(default)s")
    p.add_argument("--no-preload", action="store_true",
                   help="measure the tools' executables from the page cache as found, instead "
                        "of reading each (and its libraries) once at start as a host's "
                        "netprov-preload unit does (benchlib/pagecache.py, docs/benchmarks.md)")
    p.add_argument("--machine-run", action="store_true",
                   help="keep netns handles and lock files in the machine's /run instead of "
                        "a private tmpfs (see docs/benchmarks.md, round 8)")
    p.add_argument("--peers-max-n", type=int, default=100, metavar="N",
                   help="run CNI and netavark only up to this N (default %(default)s: at "
                        "N = 1000 they alone would take the full run past 10 minutes)")
    p.add_argument("--netprov", default=os.environ.get("NETPROV"),
                   help="netprov binary (default: $NETPROV, else target/release/netprov, "
                        "built with cargo if missing)")
    p.add_argument("--netavark", default=os.environ.get("NETAVARK"),
                   help=f"netavark binary (default: $NETAVARK, PATH, {NETAVARK_CACHE})")
    p.add_argument("--install-netavark", action="store_true",
                   help=f"cargo install netavark (nice'd) into {os.path.dirname(os.path.dirname(NETAVARK_CACHE))} and exit")
    p.add_argument("--profile", type=int, metavar="N",
                   help="instead of benchmarking: profile one netprov cold apply / no-op / "
                        "destroy of N props (strace -c, tracing output), see docs")
    p.add_argument("--callgrind", action="store_true", help="with --profile: also valgrind callgrind")
    p.add_argument("--json", help="write the results here (default: bench/results/<time>.json)")
    return p.parse_args(argv)


def sizes(spec, default):
    if spec is None:
        return default
    out = {}
    for part in filter(None, spec.split(",")):
        n, _, r = part.partition(":")
        out[int(n)] = int(r or 1)
    return out


def install_netavark():
    root = os.path.dirname(os.path.dirname(NETAVARK_CACHE))
    cmd = ["nice", "-n", "19", "cargo", "install", "netavark", "--locked", "--root", root,
           "--target-dir", root + "-target"]
    log("bench: " + " ".join(cmd) + "   (needs Debian protobuf-compiler)")
    return subprocess.call(cmd)


def netprov_binary(arg):
    if arg:
        return os.path.abspath(arg)
    binary = os.path.join(REPO, "target", "release", "netprov")
    if not os.access(binary, os.X_OK):
        log("bench: building netprov (release)")
        subprocess.check_call(["cargo", "build", "--release", "--locked", "-p", "netprov"], cwd=REPO)
    return binary


class ToolFailed(Exception):
    pass


class Bench:
    def __init__(self, sb, args):
        self.sb = sb
        self.args = args
        self.records = []
        self.unavailable = {}  # variant -> {label: why}
        self.failed = []  # (variant, key, message)
        self.samples = {}
        self.skipped = {}  # variant -> {label: largest N it runs at}
        self.caveats = {}  # variant -> {label: {what it did not do}}
        self.preloaded = {}  # variant -> files read into the page cache at start

    def drop(self, variant, tool, why):
        self.unavailable.setdefault(variant, {})[tool.label] = why

    def cycle(self, tool, n, rnd):
        """cold apply, verify traffic, no-op re-apply, destroy, settle; one record."""
        tool.prepare(n)
        rec = {"variant": tool.variant, "n": n, "round": rnd, "tool": tool.key, "label": tool.label}
        t0 = time.monotonic()
        cold = tool.cold()
        rec["cold"] = cold.to_json()
        tool.verify()
        noop = tool.noop()
        rec["noop"] = noop.to_json() if noop else None
        rec["destroy"] = tool.destroy().to_json()
        tool.settle()
        self.records.append(rec)
        if tool.caveats:
            self.caveats.setdefault(tool.variant, {}).setdefault(tool.label, set()).update(tool.caveats)
        log(f"  {tool.variant} N={n} round {rnd + 1}: {tool.label:24} cold {cold.wall * 1000:9.1f} ms"
            f"  ({cold.per_container * 1000:.2f} ms/ctr)  cycle {time.monotonic() - t0:.1f} s")
        if getattr(tool, "sample_json", None):
            self.samples.setdefault(f"{tool.variant}/{tool.key}", tool.sample_json)

    def run_variant(self, variant, tools, plan):
        alive = []
        for t in tools:
            try:
                t.available()
                t.start()
                alive.append(t)
            except NotAvailable as e:
                self.drop(variant, t, str(e))
        if not self.args.no_preload:
            files = pagecache.files_of([e for t in alive for e in t.executables()])
            got = pagecache.preload(files)
            self.preloaded.setdefault(variant, []).extend(files)
            log(f"bench: {variant}: read {len(files)} executables and libraries "
                f"({got >> 20} MiB) into the page cache (--no-preload: as found)")
        for n, rounds in sorted(plan.items()):
            for rnd in range(rounds):
                # A fresh order every round, the same in every run (seeded). A rotation
                # (round 11 and before) kept each tool's predecessor: the row "1 process"
                # always ran right after netavark and "1 proc/ctr" right after "1 process",
                # and at N = 1, where both run the very same command, they read 3.30 and
                # 2.81 ms (docs/benchmarks.md, "Round 12").
                order = list(alive)
                random.Random(f"{variant}/{n}/{rnd}").shuffle(order)
                for t in order:
                    if t.max_n is not None and n > t.max_n:
                        self.skipped.setdefault(variant, {})[t.label] = t.max_n
                        continue
                    try:
                        self.cycle(t, n, rnd)
                    except (proc.ProcFailed, RuntimeError, OSError, ValueError) as e:
                        log(f"bench: {variant} {t.label} failed at N={n}: {e}")
                        self.recover(t)
                        self.drop(variant, t, f"failed at N={n}: {getattr(e, 'cause', None) or first_line(e)}")
                        self.failed.append((variant, t.key, str(e)))
                        alive.remove(t)

    def recover(self, tool):
        """After a failure: remove that tool's containers so the next tool starts clean."""
        self.sb.enter(tool.host)
        if getattr(tool, "ovs", None):
            for p in tool.ovs.ports():
                proc.run(tool.ovs.vsctl_argv() + ["--if-exists", "del-port", "brb", p])
        names = [x for x in os.listdir(NETNS_DIR) if x.startswith(self.sb.prefix + tool.letter)]
        if names:
            proc.run(["ip", "-force", "-batch", "-"],
                     stdin_data="".join(f"netns del {x}\n" for x in names))


def first_line(e):
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def machine_info():
    load = open("/proc/loadavg").read().split()[:3]
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "loadavg": load,
            "python": platform.python_version()}


def git_rev():
    try:
        return subprocess.check_output(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                       text=True, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None):
    args = parse_args(argv)
    if args.install_netavark:
        return install_netavark()
    if os.geteuid() != 0:
        log("bench/run: run as root (it creates network namespaces and a private OVS)")
        return 2
    if not args.machine_run:
        private_run_dirs()
    veth_plan = sizes(args.sizes, QUICK_VETH if args.quick else FULL_VETH)
    ovs_plan = sizes(args.ovs_sizes, QUICK_OVS if args.quick else FULL_OVS)
    wanted = set(args.tools.split(","))
    binary = (netprov_binary(args.netprov)
              if wanted & {"netprov", "netprov_each", "netprov_each_nocache", "netprov_each_veth",
                         "ideal", "ideal_each"} else None)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    started = datetime.datetime.now(datetime.timezone.utc)
    info = machine_info()
    sb = Sandbox()
    try:
        proc.build_timed(sb.dir)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
        sb.teardown()
        log(f"bench/run: cannot build bench/timed.c: {e}")
        return 1
    if args.profile:
        out = os.path.join(RESULTS, f"profile-{started:%Y%m%dT%H%M%SZ}-N{args.profile}")
        try:
            run_profile(sb, binary, args.profile, out, args.callgrind, log=print)
        finally:
            for err in sb.teardown():
                log(f"bench: cleanup: {err}")
        print(f"profile: {os.path.relpath(out, os.getcwd())}")
        return 0
    bench = Bench(sb, args)
    interrupted = False
    t0 = time.monotonic()
    try:
        log(f"bench: run {sb.run_id}, netns prefix {sb.prefix}, load {' '.join(info['loadavg'])}")
        peers = [CniPtp(sb), CniPtpDual(sb), Netavark(sb, args.netavark)]
        for t in peers:
            t.max_n = min(t.max_n or args.peers_max_n, args.peers_max_n)
        veth = [t for t in [NetprovBatch(sb, binary), NetprovEach(sb, binary),
                            NetprovEachUncached(sb, binary), Shell(sb), Bare(sb),
                            IdealBatch(sb, binary), Ideal(sb, binary)] + peers
                if t.key in wanted]
        bench.run_variant("veth", veth, veth_plan)
        if ovs_plan:
            try:
                PrivateOvs.available()
                host = sb.new_host("o")
                switch = PrivateOvs(sb)
                switch.start(host)
                ovs_tools = [t for t in (NetprovOvs(sb, binary, switch, host),
                                         NetprovOvsEach(sb, binary, switch, host),
                                         NetprovOvsVethEach(sb, binary, switch, host),
                                         ShellOvs(sb, switch, host)) if t.key in wanted]
                bench.run_variant("ovs", ovs_tools, ovs_plan)
            except NotAvailable as e:
                bench.unavailable.setdefault("ovs", {})["OVS variant"] = str(e)
    except KeyboardInterrupt as e:
        interrupted = True
        log(f"bench: interrupted ({e or 'Ctrl-C'}); cleaning up")
    finally:
        for err in sb.teardown():
            log(f"bench: cleanup: {err}")
    elapsed = time.monotonic() - t0

    summary = report.summarize(bench.records)
    print(f"# netprov benchmark — {started:%Y-%m-%d %H:%M} UTC, {info['cpus']} CPUs, "
          f"kernel {info['kernel']}, load before {' '.join(info['loadavg'])}, "
          f"after {' '.join(machine_info()['loadavg'])}, {elapsed:.0f} s, executables "
          + ("as found in the page cache" if args.no_preload else "read in at start"))
    print(report.table(summary, bench.unavailable, bench.skipped, bench.caveats, TITLES))
    res = report.targets(summary)
    print("\n## Targets\n")
    for line in report.target_lines(res):
        print("    " + line)
    doc = {
        "started": started.isoformat(), "elapsed_s": elapsed, "mode": "quick" if args.quick else "full",
        "machine": info, "load_after": machine_info()["loadavg"], "netprov_rev": git_rev(),
        "netprov_bin": binary, "plan": {"veth": veth_plan, "ovs": ovs_plan},
        "preloaded": bench.preloaded,
        "summary": summary, "unavailable": bench.unavailable,
        "caveats": {v: {k: sorted(c) for k, c in d.items()} for v, d in bench.caveats.items()},
        "targets": [{"pass": ok, "text": t} for ok, t in res],
        "netprov_json_samples": bench.samples, "records": bench.records,
        "failed": bench.failed, "interrupted": interrupted,
    }
    path = args.json or os.path.join(RESULTS, f"{started:%Y%m%dT%H%M%SZ}-{doc['mode']}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"\nJSON: {os.path.relpath(path, os.getcwd())}")
    if interrupted:
        return 130
    essential = [f for f in bench.failed if (f[0], f[1]) in ESSENTIAL]
    return 1 if essential else 0
