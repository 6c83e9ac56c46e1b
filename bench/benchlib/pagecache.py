"""The page cache of the tools' executables, put in one known state before a run.

How a file got into the page cache changes how fast a short process runs from it, by
up to 1.4 ms per cold apply here (docs/benchmarks.md, round 15). The kernel fills the
cache of a file that `exec` (or any mapping) faults in with single 4 KiB pages (mmap
read-around; only arm64 asks for larger folios for executable code), scattered over
physical memory, and one that is read with read(2) with large folios, physically
contiguous. A fresh copy (`cp`), a linker's output and a binary read back after a
reboot each start in a different state, and a machine's proactive reclaim (this one
runs DAMON's pageout scheme) may drop part of it between runs.

`preload` gives every tool the state a host gets from reading its executables once at
boot, as the NixOS module's netprov-preload unit does (docs/nixos.md): each file and its
shared libraries are dropped from the cache (only pages nobody maps go: a library in use
keeps its own) and read back with read(2), in 128 KiB reads as `cat` does them. The same
for every tool, so that no row is measured from a luckier cache than another.
"""

import os
import re
import shutil

from . import proc

CHUNK = 128 << 10


def libraries(path):
    """The shared libraries `path` loads (ldd), empty for a static or a script file."""
    out = proc.run(["ldd", path]).stdout
    return [m.group(1) for m in re.finditer(r"=>\s+(/\S+)\s+\(0x", out)] + \
        [m.group(1) for m in re.finditer(r"^\s+(/\S+)\s+\(0x", out, re.M)]


def files_of(executables):
    """Executables (paths or names on PATH) and their libraries, resolved, deduplicated."""
    seen, out = set(), []
    for e in executables:
        p = e if os.path.isabs(e) else shutil.which(e)
        if not p or not os.path.isfile(p):
            continue
        for f in [p] + libraries(p):
            r = os.path.realpath(f)
            if r not in seen and os.path.isfile(r):
                seen.add(r)
                out.append(r)
    return out


def preload(files):
    """Drops each file's unmapped page cache and reads it back with read(2); returns the
    bytes read."""
    os.sync()  # only clean pages can be dropped
    total = 0
    for f in files:
        try:
            fd = os.open(f, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            while True:
                b = os.read(fd, CHUNK)
                if not b:
                    break
                total += len(b)
        finally:
            os.close(fd)
    return total
