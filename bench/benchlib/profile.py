"""`bench/run --profile N`: where netprov's time goes, for one cold apply of N props.

Untimed diagnostics inside the sandbox, written under bench/results/profile-<time>/:
  strace-<phase>.txt     `strace -f -c` syscall summary of cold apply, no-op, destroy;
  execve.txt             `strace -f -e trace=execve`: netprov must exec nothing;
  trace-<phase>.log      netprov's own tracing output (RUST_LOG, span close timings);
  callgrind.*            with --callgrind: instruction counts per function (valgrind).
"""

import os
import re
import shutil

from . import proc
from .tools import NetprovBatch


def _strace_top(path, k=8):
    """(calls, syscall, seconds) of the k costliest syscalls in a `strace -c` file."""
    rows = []
    for line in open(path):
        m = re.match(r"\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$", line)
        if m and m.group(6) != "total":
            rows.append((int(m.group(4)), m.group(6), float(m.group(2))))
    return sorted(rows, key=lambda r: -r[2])[:k]


def run_profile(sb, binary, n, out_dir, callgrind=False, log=print):
    os.makedirs(out_dir, exist_ok=True)
    tool = NetprovBatch(sb, binary)
    tool.start()
    tool.prepare(n)
    sb.enter(tool.host)
    env = dict(os.environ)
    env["RUST_LOG"] = env.get("BENCH_RUST_LOG", "netprov=trace")
    env["NO_COLOR"] = "1"
    summary = []

    def step(name, verb, wrap=()):
        r = proc.run(list(wrap) + tool.argv(verb, tool.files), env=env)
        with open(os.path.join(out_dir, f"{name}.log"), "w") as f:
            f.write(r.stderr)
        r.check(f"profile: {name}")
        return r

    if shutil.which("strace"):
        for phase, verb in (("apply", "apply"), ("noop", "apply"), ("destroy", "destroy")):
            out = os.path.join(out_dir, f"strace-{phase}.txt")
            step(f"strace-{phase}", verb, ["strace", "-f", "-c", "-o", out])
            top = ", ".join(f"{s} {c}x {t * 1000:.1f} ms" for c, s, t in _strace_top(out))
            summary.append(f"strace -c {phase} (N={n}): {top}")
        ex = os.path.join(out_dir, "execve.txt")
        step("execve-apply", "apply", ["strace", "-f", "-e", "trace=execve", "-o", ex])
        execs = [l for l in open(ex) if "execve(" in l and "resumed" not in l]
        summary.append(f"execve during apply: {len(execs)} (1 = netprov itself, no children)")
        step("execve-destroy", "destroy")
    else:
        summary.append("strace not installed: no syscall profile")

    for phase, verb in (("apply", "apply"), ("noop", "apply"), ("destroy", "destroy")):
        r = step(f"trace-{phase}", verb)
        spans = [l for l in r.stderr.splitlines() if "time.busy" in l or "close" in l]
        summary.append(f"tracing {phase}: {len(r.stderr.splitlines())} log lines, "
                       f"{len(spans)} with span timings (trace-{phase}.log)")

    if callgrind:
        if shutil.which("valgrind"):
            cg = os.path.join(out_dir, "callgrind.out")
            step("callgrind-apply", "apply",
                 ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}", "--trace-children=no"])
            ann = proc.run(["callgrind_annotate", "--inclusive=yes", cg]).stdout
            with open(os.path.join(out_dir, "callgrind.txt"), "w") as f:
                f.write(ann)
            step("callgrind-destroy", "destroy")
            summary.append("callgrind: callgrind.txt (inclusive instruction counts)")
        else:
            summary.append("valgrind not installed: no callgrind profile")
    tool.settle()
    with open(os.path.join(out_dir, "summary.txt"), "w") as f:
        f.write("\n".join(summary) + "\n")
    for s in summary:
        log(s)
