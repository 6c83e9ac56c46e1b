#!/bin/bash
# What grows with the host, in the kernel: `perf record -a -g` over 19 cold applies (one
# netprov process each, as ExecStartPre runs it) in a simulated host with SMALL and then
# LARGE other containers, and the CPU time per apply (both CPUs, every process: netprov
# and the kernel workers) in the kernel functions that walk per-host lists. Prints a
# Markdown table (docs/benchmarks.md, rounds 6 and 7). Run as root on an idle machine:
#
#     sudo bench/host_growth.sh [--noop] [SMALL [LARGE]]      # default 10 1000
#
# With --noop the 19 containers are applied first, untimed, and what is recorded is
# three no-op re-applies of each (57 processes).
#
# Everything happens in network namespaces it creates (`hg<N>`, containers `hg<N>x<i>`),
# removed at the end; the batch cache is a directory of its own.
set -euo pipefail
NOOP=0
if [ "${1:-}" = --noop ]; then NOOP=1; shift; fi
SMALL=${1:-10}; LARGE=${2:-1000}
RUNS=$((NOOP ? 57 : 19)) # processes recorded per host size
HERE=$(cd "$(dirname "$0")" && pwd)
B=${NETPROV:-$HERE/../target/release/netprov}
[ -x "$B" ] || cargo build --release --manifest-path "$HERE/../Cargo.toml" >&2
W=$(mktemp -d /tmp/netprov-hostgrowth.XXXXXX)
trap 'rm -rf "$W"' EXIT

profile() { # N
    local n=$1 h=hg$1 d=$W/$1
    mkdir -p "$d"; ip netns add "$h"; ip -n "$h" link set lo up
    python3 - "$n" "$d" "$HERE" <<'P'
import json, sys
sys.path.insert(0, sys.argv[3])
from benchlib import topology
n, d = int(sys.argv[1]), sys.argv[2]
for i in range(n + 20):
    json.dump(topology.netprov_veth_props(f"hg{n}x{i}", 5000 + i), open(f"{d}/c{i}.json", "w"))
P
    export NETPROV_NFT_CACHE=$d/cache; mkdir -m 700 "$NETPROV_NFT_CACHE"
    cd "$d"
    nsenter --net=/run/netns/"$h" "$B" apply $(seq -f "c%g.json" 0 $((n - 1))) >/dev/null
    # the batch cache holds this ruleset, as on a host where containers restart
    nsenter --net=/run/netns/"$h" "$B" apply c$((n + 19)).json >/dev/null
    nsenter --net=/run/netns/"$h" "$B" destroy c$((n + 19)).json >/dev/null
    # the kernel's own work for the new interfaces (DAD, MLD) runs for seconds
    sleep $((n / 200 + 3))
    local rounds=1
    if [ "$NOOP" = 1 ]; then
        nsenter --net=/run/netns/"$h" "$B" apply $(seq -f "c%g.json" "$n" $((n + 18))) >/dev/null
        sleep 3
        rounds=3
    fi
    perf record -q -a -g -F 10000 -o "$d/perf.data" -- nsenter --net=/run/netns/"$h" \
        sh -c "for r in \$(seq $rounds); do for i in \$(seq $n $((n + 18))); do
                   $B apply c\$i.json >/dev/null; done; done" 2>/dev/null
    nsenter --net=/run/netns/"$h" "$B" destroy --no-wait $(seq -f "c%g.json" 0 $((n + 18))) >/dev/null
    ip netns del "$h"
    cd "$HERE"
}

profile "$SMALL"
profile "$LARGE"
python3 - "$W/$SMALL/perf.data" "$W/$LARGE/perf.data" "$SMALL" "$LARGE" "$RUNS" "$NOOP" <<'P'
import collections, re, subprocess, sys
CATS = [
    ("IPv6 route walk when a link comes up (`rt6_sync_up`: `fib6_clean_all`, `fib6_ifup`)",
     r"^(fib6_ifup|fib6_clean_node|fib6_clean_all|fib6_clean_tree)$"),
    # The tree walk itself serves both the walk above and a route dump: in a no-op, where
    # no link comes up, it is the dump's.
    ("IPv6 FIB tree walk, for either (`fib6_walk`, `fib6_walk_continue`)",
     r"^(fib6_walk_continue|fib6_walk)$"),
    ("IPv6 link-local routes, one `fe80::/64` node for all links (`fib6_add_rt2node`, `__find_rr_leaf`)",
     r"^(fib6_add_rt2node|__find_rr_leaf|rt6_score_route|find_match|fib6_add)$"),
    ("IPv6 address lifetime walk (`addrconf_verify_rtnl`)", r"^(addrconf_verify_rtnl|ipv6_chk_addr.*)$"),
    ("route dumps (`rt6_dump_route`, `fib_table_dump`)",
     r"^(rt6_dump_route|fib6_dump_node|fib_table_dump|l3mdev_master_ifindex_rcu|fib_info_nh_uses_dev|leaf_walk_rcu|fn_trie_dump_leaf)$"),
    ("`/proc/sys/net` lookups (`proc_sys_compare`, `__d_lookup`)", r"^(proc_sys_compare|__d_lookup|__d_lookup_rcu|is_seen)$"),
    ("netns id lookups (`net_eq_idr`)", r"^(net_eq_idr|idr_for_each)$"),
    ("ext4 inode allocation for `/run/netns/<id>` (this machine's `/run` is ext4 without a journal)",
     r"^(recently_deleted|find_get_block_common|__brelse|ext4_.*|__ext4_.*|find_inode_bit|filemap_get_entry)$"),
    ("spinning for a held mutex (RTNL: `mutex_spin_on_owner`)", r"^(mutex_spin_on_owner|__raw_callee_save___kvm_vcpu_is_preempted)$"),
]
IDLE = r"^(pv_native_safe_halt|default_idle.*|cpuidle.*)$"
def prof(path):
    out = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", "sym", "-g", "none",
                          "-F", "sample,sym"], capture_output=True, text=True).stdout
    d = collections.Counter()
    for l in out.splitlines():
        m = re.match(r"\s*(\d+)\s+\[.\]\s+(\S+)", l)
        if m:
            d[m.group(2)] += int(m.group(1))
    return d
a, b = prof(sys.argv[1]), prof(sys.argv[2])
runs, noop = int(sys.argv[5]), sys.argv[6] == "1"
ms = lambda n: n * 0.1 / runs  # 10 kHz sampling
pick = lambda d, rx: sum(v for k, v in d.items() if re.match(rx, k))
small, large = sys.argv[3], sys.argv[4]
what = "no-op re-apply" if noop else "cold apply"
print(f"| CPU per {what}, ms | {small} containers | {large} containers | growth |")
print("|---|---|---|---|")
for name, rx in CATS:
    x, y = pick(a, rx), pick(b, rx)
    print(f"| {name} | {ms(x):.2f} | {ms(y):.2f} | {ms(y - x):+.2f} |")
busy = lambda d: sum(d.values()) - pick(d, IDLE)
print(f"| **all CPU time, both CPUs, every process** | {ms(busy(a)):.2f} | {ms(busy(b)):.2f} | {ms(busy(b) - busy(a)):+.2f} |")
P
