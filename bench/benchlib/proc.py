"""Spawning processes. Measured ones go through bench/timed.c (see there why): it forks
the command from a tiny parent and reports the command's wall time and peak RSS."""

import os
import subprocess
import tempfile
import threading
import shutil
import time
from dataclasses import dataclass


TIMED = None  # path of the compiled timed helper; set by build_timed()


def c_compiler():
    """$CC, else the first of cc, gcc, clang on PATH; None if there is none."""
    return os.environ.get("CC") or next(
        (c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)


def build_c(name, out_dir):
    """Compiles bench/<name>.c into out_dir (once); returns the executable's path."""
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), name + ".c")
    exe = os.path.join(out_dir, name)
    if not os.path.exists(exe):
        cc = c_compiler()
        if cc is None:
            raise RuntimeError(f"a C compiler (cc) is needed to build bench/{name}.c")
        subprocess.check_call([cc, "-O2", "-o", exe, src])
    return exe


def build_timed(out_dir):
    global TIMED
    TIMED = build_c("timed", out_dir)


def build_ideal(out_dir):
    """bench/ideal.c, the floor under netprov's veth goals; returns its path."""
    return build_c("ideal", out_dir)


@dataclass
class Run:
    argv: list
    rc: int
    wall: float  # seconds, spawn to reap
    maxrss_kib: int  # ru_maxrss of the reaped child (KiB on Linux)
    stdout: str
    stderr: str
    majflt: int = 0  # major page faults (its own and its reaped children's)

    def check(self, what=None):
        if self.rc != 0:
            raise ProcFailed(self, what)
        return self


class ProcFailed(Exception):
    def __init__(self, run, what=None):
        self.run = run
        cmd = " ".join(str(a) for a in run.argv)
        err = (run.stderr or run.stdout).strip().splitlines()
        tail = "\n    ".join(err[-8:])
        # the first line carries the cause too: it is what the table shows
        self.cause = err[0].strip() if err else f"exit {run.rc}"
        super().__init__(f"{what or cmd}: exit {run.rc}: {self.cause}\n    {tail}")


def measured(argv, **kw):
    """Runs argv under the timed helper: wall and maxrss_kib are the command's own."""
    with tempfile.NamedTemporaryFile("r") as rep:
        r = run([TIMED, rep.name] + list(argv), **kw)
        line = rep.read().split()
    r.argv = list(argv)
    if len(line) == 4:
        r.wall = int(line[0]) / 1e9
        r.maxrss_kib = int(line[1])
        r.majflt = int(line[3])
    return r


def run(argv, *, stdin_data=None, env=None, timeout=600):
    """Runs argv to completion (untimed helpers, and the timed helper itself).
    stdout/stderr go to anonymous temp files: no pipe deadlocks, no reader threads."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as inp:
        if stdin_data is not None:
            inp.write(stdin_data.encode() if isinstance(stdin_data, str) else stdin_data)
            inp.seek(0)
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=inp, stdout=out, stderr=err, env=env,
                             close_fds=True)
        # A watchdog thread kills a hung child; the reaping wait4 stays blocking so
        # the measured wall time has no polling slack.
        timer = threading.Timer(timeout, p.kill) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        p.returncode = rc  # reaped here; keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        return Run(list(argv), rc, wall, ru.ru_maxrss,
                   out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                   ru.ru_majflt)


def quiet(argv, **kw):
    """Untimed helper commands (setup/verification); raises on failure."""
    return run(argv, **kw).check()
