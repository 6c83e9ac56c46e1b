"""`bench/run --profile N`: where netprov's time goes, for a cold apply, a no-op re-apply
and a destroy of N props in one process, plus one container applied alone next to N
existing ones (the ExecStartPre case).

Untimed diagnostics inside the sandbox, written under bench/results/profile-<time>-N<n>/:
  strace-<phase>.txt     `strace -f -T` of the phase (time inside every syscall);
  breakdown.md           those grouped by kind (links, addresses, routes, dumps, netns,
                         sysctl, nftables) per container, and the costliest syscalls;
  execve.txt             `strace -f -e trace=execve`: netprov must exec nothing;
  trace-<phase>.log      netprov's own log at RUST_LOG=netprov=trace;
  callgrind.*            with --callgrind: instruction counts per function (valgrind).
"""

import os
import shutil

from . import proc
from .strace_phases import categorize, render
from .tools import NetprovBatch


def has_hot_text(binary):
    out = proc.run(["readelf", "-SW", binary]).stdout
    return " .text.hot " in out


def run_profile(sb, binary, n, out_dir, callgrind=False, log=print):
    os.makedirs(out_dir, exist_ok=True)
    tool = NetprovBatch(sb, binary)
    tool.start()
    tool.prepare(n + 1)  # the last one is applied alone, next to the N others
    extra = tool.files[n:]
    tool.files = tool.files[:n]
    sb.enter(tool.host)
    env = dict(os.environ)
    env["RUST_LOG"] = env.get("BENCH_RUST_LOG", "netprov=trace")
    env["NO_COLOR"] = "1"
    md = [f"# netprov profile, N = {n}", ""]
    summary = []

    def step(name, verb, wrap=(), files=None):
        r = proc.run(list(wrap) + tool.argv(verb, files or tool.files), env=env)
        with open(os.path.join(out_dir, f"{name}.log"), "w") as f:
            f.write(r.stderr)
        r.check(f"profile: {name}")
        return r

    untraced = {}

    def traced(name, verb, files, count):
        out = os.path.join(out_dir, f"strace-{name}.txt")
        r = step(f"strace-{name}", verb, ["strace", "-f", "-T", "-o", out], files=files)
        cats, calls = categorize(out)
        # ptrace stops inflate the traced wall time; shares are of the untraced run's
        wall = untraced.get(name, r.wall)
        how = "untraced" if name in untraced else "under strace"
        md.extend([f"## {name}: {count} container(s), {wall * 1000:.1f} ms {how}"
                   f" ({r.wall * 1000:.1f} ms under strace)", "",
                   f"| kind | calls/ctr | ms/ctr inside syscalls | share of {how} wall |",
                   "|---|---|---|---|"] + render(cats, calls, wall, count) + [""])
        top = sorted(calls.items(), key=lambda x: -x[1][1])[:8]
        md.append("Costliest syscalls: " + ", ".join(
            f"{s} {k}x {t * 1000:.1f} ms" for s, (k, t) in top) + "\n")
        summary.append(f"{name}: " + ", ".join(
            f"{c} {t * 1000 / count:.2f} ms/ctr" for c, (k, t) in
            sorted(cats.items(), key=lambda x: -x[1][1])) + f" ({how} {wall * 1000 / count:.2f} ms/ctr)")

    for name, verb in (("apply", "apply"), ("noop", "apply"), ("destroy", "destroy")):
        untraced[name] = proc.measured(tool.argv(verb, tool.files)).check(f"profile: {name}").wall
    if shutil.which("strace"):
        traced("apply", "apply", tool.files, n)
        traced("noop", "apply", tool.files, n)
        untraced["one-more"] = proc.measured(tool.argv("apply", extra)).check("profile").wall
        step("one-more-undo", "destroy", files=extra)
        traced("one-more", "apply", extra, 1)  # alone, next to N existing containers
        traced("destroy", "destroy", tool.files + extra, n + 1)
        ex = os.path.join(out_dir, "execve.txt")
        step("execve-apply", "apply", ["strace", "-f", "-e", "trace=execve", "-o", ex])
        execs = [l for l in open(ex) if "execve(" in l and "resumed" not in l]
        summary.append(f"execve during apply: {len(execs)} (1 = netprov itself, no children)")
        step("execve-destroy", "destroy")
    else:
        summary.append("strace not installed: no syscall profile")

    for phase, verb in (("apply", "apply"), ("noop", "apply"), ("destroy", "destroy")):
        r = step(f"trace-{phase}", verb)
        spans = [l for l in r.stderr.splitlines() if "time.busy" in l]
        summary.append(f"RUST_LOG={env['RUST_LOG']} {phase}: {len(r.stderr.splitlines())} log "
                       f"lines, {len(spans)} with span timings")

    if callgrind:
        if has_hot_text(binary):
            summary.append("callgrind: this binary has a .text.hot section (netprov/link/"
                           "hot-text.ld), whose functions valgrind does not name: profile "
                           "a build with NETPROV_HOT_TEXT=off")
        if shutil.which("valgrind"):
            cg = os.path.join(out_dir, "callgrind.out")
            step("callgrind-apply", "apply",
                 ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}"])
            ann = proc.run(["callgrind_annotate", "--inclusive=yes", cg]).stdout
            with open(os.path.join(out_dir, "callgrind.txt"), "w") as f:
                f.write(ann)
            step("callgrind-destroy", "destroy")
            summary.append("callgrind: callgrind.txt (inclusive instruction counts)")
        else:
            summary.append("valgrind not installed: no callgrind profile")
    tool.settle()
    with open(os.path.join(out_dir, "breakdown.md"), "w") as f:
        f.write("\n".join(md + ["## Summary", ""] + [f"- {s}" for s in summary]) + "\n")
    for s in summary:
        log(s)
