"""Where netprov's time goes, from `strace -f -T` (time spent inside each syscall):
rtnetlink requests are grouped by message type (links, addresses, routes, dumps), and
netns handles, sysctl writes and nftables batches by their syscalls. rtnetlink handles a
request synchronously inside sendto(), so its -T time is the kernel's work for it."""

import re

RTM = {  # rtnetlink message types (linux/rtnetlink.h)
    16: "links", 17: "links", 19: "links",  # NEWLINK DELLINK SETLINK
    18: "observe (dumps/gets)", 22: "observe (dumps/gets)", 26: "observe (dumps/gets)",
    20: "addresses", 21: "addresses",
    24: "routes", 25: "routes",
}
NAMES = {"RTM_NEWLINK": 16, "RTM_DELLINK": 17, "RTM_GETLINK": 18, "RTM_SETLINK": 19,
         "RTM_NEWADDR": 20, "RTM_DELADDR": 21, "RTM_GETADDR": 22, "RTM_NEWROUTE": 24,
         "RTM_DELROUTE": 25, "RTM_GETROUTE": 26}

LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*?)(?:<unfinished \.\.\.>|= .*?<([\d.]+)>)\s*$")
NLTYPE = re.compile(r"nlmsg_type=(RTM_\w+|0x[0-9a-f]+|\d+)")


def categorize(path):
    """{category: [calls, seconds]} and {syscall: [calls, seconds]} for one strace file."""
    cats, calls = {}, {}
    pending = {}  # pid -> (name, args) of an unfinished call
    sysctl_fds = set()
    for raw in open(path, errors="replace"):
        m = LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        pid, resumed, name, args, dur = m.groups()
        if dur is None:  # unfinished: remember what it was
            pending[pid] = (name, args)
            continue
        if resumed:
            name, first = pending.pop(pid, (resumed, ""))
            args = first + args
        secs = float(dur)
        c = calls.setdefault(name, [0, 0.0])
        c[0] += 1
        c[1] += secs
        cat = None
        if name in ("unshare", "mount", "umount2", "setns"):
            cat = "netns (unshare, mounts, setns)"
        elif name == "openat" and "/run/netns/" in args:
            cat = "netns (unshare, mounts, setns)"
        elif name == "openat" and "/proc/sys/" in args:
            cat = "sysctl"
            fd = raw.rsplit("=", 1)[-1].split("<")[0].strip()
            sysctl_fds.add((pid, fd))
        elif name == "write" and (pid, args.split(",", 1)[0].strip()) in sysctl_fds:
            cat = "sysctl"
        elif name == "sendmsg":
            cat = "nftables (netfilter batches)"
        elif name == "sendto" and "AF_NETLINK" in args:
            t = NLTYPE.search(args)
            if t:
                v = t.group(1)
                num = NAMES.get(v) if v.startswith("RTM_") else int(v, 0)
                cat = RTM.get(num, "netlink (other)")
            else:
                cat = "netlink (other)"
        if cat:
            k = cats.setdefault(cat, [0, 0.0])
            k[0] += 1
            k[1] += secs
    return cats, calls


def render(cats, calls, wall, n):
    """Markdown rows: category, calls per container, ms per container, share of wall."""
    rows = []
    for cat, (k, s) in sorted(cats.items(), key=lambda x: -x[1][1]):
        rows.append(f"| {cat} | {k / n:.1f} | {s * 1000 / n:.3f} | {s / wall * 100:.0f}% |")
    known = sum(s for _, s in cats.values())
    rows.append(f"| everything else (process start, user space: parse, plan, runtime; other syscalls) "
                f"| | {max(wall - known, 0) * 1000 / n:.3f} | {max(wall - known, 0) / wall * 100:.0f}% |")
    return rows
