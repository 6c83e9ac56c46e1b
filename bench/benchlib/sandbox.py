"""The sandbox: named network namespaces this run creates, entering them, and removing
everything again (also after Ctrl-C, an exception, or a previous run that was killed).

Every namespace of a run is named `nb<run>...` with a 4-character run id, and the run
records its pid under /run/netprov-bench/<run>/. The harness process itself moves into a
simulated host netns (setns on its only thread) before running a tool, so every child
inherits it: no nsenter/ip-netns-exec wrapper sits inside a measurement.
"""

import ctypes
import os
import random
import shutil
import signal
import string
import time

from . import proc

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
STATE_DIR = "/run/netprov-bench"

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
# Where every tool's per-container files go: netns handles (all tools) and netprov's
# lock files.
RUN_DIRS = (("/run/netns", "0755"), ("/run/netprov", "0700"))


def private_run_dirs():
    """Gives this process (and every process it starts) a mount namespace of its own
    with a fresh tmpfs on /run/netns and /run/netprov, as /run is on a systemd host.

    Why: this machine's /run is ext4 without a journal, whose inode allocator skips
    inodes deleted in the last minutes; a run that had just deleted a thousand netns
    handles and lock files made every file created after it slower, in the next run too
    (docs/benchmarks.md, rounds 7 and 8). Every tool's files are affected alike; in the
    private tmpfs none is, and nothing of the run outlives it: the namespaces' handles
    go with the mount namespace when the run's last process exits. Must be called while
    the process has a single thread."""
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    # Nothing mounted from here on propagates back to the machine's mount namespace.
    if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "make / private")
    for d, mode in RUN_DIRS:
        os.makedirs(d, exist_ok=True)
        if _libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0, f"mode={mode}".encode()) != 0:
            raise OSError(ctypes.get_errno(), f"mount tmpfs on {d}")


def setns(path):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns {path}: {os.strerror(e)}")
    finally:
        os.close(fd)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Sandbox:
    """One benchmark run's namespaces, private directories and daemons."""

    def __init__(self):
        os.makedirs(STATE_DIR, exist_ok=True)
        reap_stale_runs()
        alphabet = string.ascii_lowercase + string.digits
        while True:
            self.run_id = "".join(random.choice(alphabet) for _ in range(4))
            self.dir = os.path.join(STATE_DIR, self.run_id)
            try:
                os.mkdir(self.dir)
                break
            except FileExistsError:
                continue
        with open(os.path.join(self.dir, "pid"), "w") as f:
            f.write(str(os.getpid()))
        self.prefix = "nb" + self.run_id
        self._root_ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.hosts = []
        self.cleanups = []  # callables run (LIFO) before namespaces are deleted

    def path(self, *parts):
        p = os.path.join(self.dir, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def new_host(self, tag):
        """Creates the simulated host netns `nb<run>h<tag>` with lo up; returns its name."""
        name = f"{self.prefix}h{tag}"
        proc.quiet(["ip", "netns", "add", name])
        self.hosts.append(name)
        proc.quiet(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def enter(self, netns_name):
        setns(os.path.join(NETNS_DIR, netns_name))

    def leave(self):
        if _libc.setns(self._root_ns, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the original netns")

    def container_netns(self):
        """Names of this run's container namespaces that exist now."""
        return [n for n in _netns_names() if n.startswith(self.prefix) and n not in self.hosts]

    def teardown(self):
        """Removes everything of this run. Daemons (OVS) stop first: an OVS internal
        port moved into a container netns is a tap device that ovs-vswitchd holds open,
        so the switch goes before the namespaces do."""
        errors = []
        try:
            self.leave()
        except OSError as e:
            errors.append(str(e))
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # keep cleaning
                errors.append(f"{fn}: {e}")
        _delete_netns_with_prefix(self.prefix)
        _delete_lock_files_with_prefix(self.prefix)
        shutil.rmtree(self.dir, ignore_errors=True)
        return errors


def _netns_names():
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def _delete_netns_with_prefix(prefix):
    names = [n for n in _netns_names() if n.startswith(prefix)]
    if not names:
        return
    batch = "".join(f"netns del {n}\n" for n in names)
    proc.run(["ip", "-force", "-batch", "-"], stdin_data=batch)
    for n in names:  # anything the batch left (e.g. a busy mount)
        if os.path.exists(os.path.join(NETNS_DIR, n)):
            proc.run(["ip", "netns", "del", n])


def _delete_lock_files_with_prefix(prefix, lock_dir="/run/netprov"):
    """netprov keeps a container's lock file until it destroys the container; containers
    whose namespaces were deleted here with `ip netns del` (the host-size containers of
    floor.py, a failed tool's) would leave theirs."""
    try:
        names = os.listdir(lock_dir)
    except FileNotFoundError:
        return
    for n in names:
        if n.startswith(prefix) and n.endswith(".lock"):
            try:
                os.unlink(os.path.join(lock_dir, n))
            except FileNotFoundError:
                pass


def kill_pidfile(pidfile):
    """Stops a daemon this harness started, by the pid it wrote."""
    try:
        pid = int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        if not _pid_alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def reap_stale_runs():
    """Cleans up after runs whose harness died without cleaning (SIGKILL)."""
    for run_id in os.listdir(STATE_DIR):
        d = os.path.join(STATE_DIR, run_id)
        try:
            pid = int(open(os.path.join(d, "pid")).read())
        except (OSError, ValueError):
            pid = None
        if pid is not None and _pid_alive(pid):
            continue
        for root, _dirs, files in os.walk(d):
            for f in files:
                if f.endswith(".pid") and f != "pid":
                    kill_pidfile(os.path.join(root, f))
        _delete_netns_with_prefix("nb" + run_id)
        shutil.rmtree(d, ignore_errors=True)
        print(f"bench: removed leftovers of an earlier run ({run_id})")


def wait_links(count, timeout=60.0):
    """Waits until the current netns has at most `count` links (asynchronous netns
    cleanup in the kernel removes veth host ends a little after `ip netns del`), so one
    tool's teardown does not run into the next tool's measurement."""
    deadline = time.monotonic() + timeout
    while True:
        n = link_count()  # /sys/class/net shows the mount's netns, not ours
        if n <= count or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def link_count():
    out = proc.run(["ip", "-o", "link", "show"]).stdout
    return len([l for l in out.splitlines() if l.strip()])
