"""Medians over rounds, the printed table, and the pass/fail lines for the targets."""

import statistics

REF = "netprov"  # the ratio columns divide by these rows' per-container cold time
REF_EACH = "netprov_each"
IDEAL = "ideal"  # bench/ideal.c: the floor, one process for all containers
IDEAL_EACH = "ideal_each"  # …and one process per container


def summarize(records):
    """records: dicts {variant, n, tool, label, cold, noop, destroy} (Phase.to_json) →
    {variant: {n: {tool: summary}}} with medians over rounds."""
    out = {}
    for r in records:
        cell = out.setdefault(r["variant"], {}).setdefault(r["n"], {})
        cell.setdefault(r["tool"], {"label": r["label"], "rounds": []})["rounds"].append(r)
    for variant in out.values():
        for n, tools in variant.items():
            for s in tools.values():
                rs = s.pop("rounds")
                s["rounds"] = len(rs)
                for ph in ("cold", "noop", "destroy"):
                    vals = [r[ph] for r in rs if r.get(ph)]
                    if not vals:
                        continue
                    s[ph] = {
                        "total_s": statistics.median(v["wall_s"] for v in vals),
                        "per_container_s": statistics.median(v["per_container_s"] for v in vals),
                        "min_per_container_s": min(v["per_container_s"] for v in vals),
                        "maxrss_kib": max(v["maxrss_kib"] for v in vals),
                        "procs": vals[0]["procs"],
                        # reads from disk: rounds where any measured process had one
                        "majflt_rounds": sum(1 for v in vals if v.get("majflt")),
                        "majflt": sum(v.get("majflt", 0) for v in vals),
                        "counters_per_container": {
                            k: c / n for k, c in vals[0]["counters"].items()},
                    }
    return out


def _ms(s):
    if s is None:
        return "-"
    ms = s * 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def _ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.1f}x"


def _get(s, ph, key):
    return (s.get(ph) or {}).get(key)


def _msgs(s):
    c = _get(s, "cold", "counters_per_container") or {}
    if not c:
        return "-"
    return " ".join(f"{k}={v:g}" for k, v in sorted(c.items()))


def table(summary, unavailable, skipped, caveats, variant_titles):
    lines = []
    for variant in unavailable:
        if variant not in summary:
            lines += ["", f"## {variant_titles[variant]}", "| tool | result |", "|---|---|"]
            lines += [f"| {label} | not available: {why} |"
                      for label, why in unavailable[variant].items()]
    for variant, by_n in summary.items():
        for n in sorted(by_n):
            tools = by_n[n]
            rounds = max(s["rounds"] for s in tools.values())
            lines.append("")
            lines.append(f"## {variant_titles[variant]}, N = {n} "
                         f"(median of {rounds} round{'s' if rounds > 1 else ''}, interleaved)")
            head = ("| tool | cold total | cold/ctr | no-op/ctr | destroy/ctr | peak RSS "
                    "| msgs/ctr (cold) | ÷ netprov 1 proc | ÷ netprov 1 proc/ctr |")
            lines.append(head)
            lines.append("|" + "---|" * (head.count("|") - 1))
            ref = _get(tools.get(REF, {}), "cold", "per_container_s")
            ref_each = _get(tools.get(REF_EACH, {}), "cold", "per_container_s")
            for key, s in tools.items():
                cold = _get(s, "cold", "per_container_s")
                rss = _get(s, "cold", "maxrss_kib")
                noop = _get(s, "noop", "per_container_s")
                lines.append(
                    f"| {s['label']} | {_ms(_get(s, 'cold', 'total_s'))} | {_ms(cold)} "
                    f"| {_ms(noop) if noop is not None else 'n/a'} "
                    f"| {_ms(_get(s, 'destroy', 'per_container_s'))} "
                    f"| {rss / 1024:.1f} MiB | {_msgs(s)} "
                    f"| {_ratio(cold, ref)} | {_ratio(cold, ref_each)} |"
                    if rss else f"| {s['label']} | - | - | - | - | - | - | - | - |")
            for label, max_n in skipped.get(variant, {}).items():
                if n > max_n:
                    lines.append(f"| {label} | skipped above N = {max_n} (see docs) | | | | | | | |")
            for label, why in unavailable.get(variant, {}).items():
                lines.append(f"| {label} | not available: {why} | | | | | | | |")
            faulted = [f"{s['label']} {s[ph]['majflt']} in {s[ph]['majflt_rounds']} of "
                       f"{s['rounds']} rounds ({ph})"
                       for s in tools.values() for ph in ("cold", "noop", "destroy")
                       if (s.get(ph) or {}).get("majflt")]
            if faulted:
                lines.append("\nMajor page faults (a file the tool maps was read back from disk): "
                             + "; ".join(faulted) + ".")
            for label, what in caveats.get(variant, {}).items():
                lines.append(f"\n**Not like for like**: {label}: {'; '.join(sorted(what))}.")
    return "\n".join(lines)


def targets(summary):
    """Issue 13's goals as (ok, text) pairs; None for ok means not measurable here.
    Every ratio compares medians measured side by side in this run."""
    res = []
    veth = summary.get("veth", {})
    sizes = sorted(veth)

    def get(n, tool, ph, key="per_container_s", variant=veth):
        return _get(variant.get(n, {}).get(tool, {}), ph, key)

    def ratio_goal(text, pairs, ok, floor=None):
        """`floor`: the same ratio with the ideal provisioner (bench/ideal.c) in netprov's
        place, measured in the same run: what no tool can beat here. A goal the floor
        itself misses at some N is said to be floor-bound there."""
        pairs = [(n, a / b) for n, a, b in pairs if a and b]
        if not pairs:
            res.append((None, f"{text}: not measured"))
            return
        fl = {n: a / b for n, a, b in (floor or []) if a and b}
        detail = ", ".join(f"N={n}: {r:.1f}x" + (f" (floor {fl[n]:.1f}x)" if n in fl else "")
                           for n, r in pairs)
        bound = [n for n, r in pairs if not ok(r) and n in fl and not ok(fl[n])]
        if bound:
            detail += ("; floor-bound at " + ", ".join(f"N={n}" for n in bound) +
                       ": the ideal provisioner misses the goal there too")
        res.append((all(ok(r) for _, r in pairs), f"{text}: {detail}"))

    # cold apply, one process per container (ExecStartPre style)
    ratio_goal("cold apply (1 proc/ctr) >= 10x faster than the shell",
               [(n, get(n, "shell", "cold"), get(n, REF_EACH, "cold")) for n in sizes], lambda r: r >= 10,
               [(n, get(n, "shell", "cold"), get(n, IDEAL_EACH, "cold")) for n in sizes])
    nocache = [(n, get(n, "shell", "cold"), get(n, "netprov_each_nocache", "cold")) for n in sizes]
    nocache = [(n, a / b) for n, a, b in nocache if a and b]
    if nocache:
        res.append(("info", "cold apply (1 proc/ctr) with the batch cache off (every ruleset through "
                            "libnftables): " + ", ".join(f"N={n}: {r:.1f}x" for n, r in nocache)))
    ratio_goal("cold apply (1 proc/ctr) faster than CNI ptp (v4)",
               [(n, get(n, "cni_ptp", "cold"), get(n, REF_EACH, "cold")) for n in sizes], lambda r: r > 1)
    ratio_goal("cold apply (1 proc/ctr) >= 5x faster than netavark",
               [(n, get(n, "netavark", "cold"), get(n, REF_EACH, "cold")) for n in sizes], lambda r: r >= 5)
    # cold apply of N files in one process
    ratio_goal("cold apply (1 process) >= 15x faster than the shell",
               [(n, get(n, "shell", "cold"), get(n, REF, "cold")) for n in sizes], lambda r: r >= 15,
               [(n, get(n, "shell", "cold"), get(n, IDEAL, "cold")) for n in sizes])
    # no-op re-apply, one process, vs a bare process start
    ratio_goal("no-op re-apply (1 proc/ctr) <= 3x a bare process start (/bin/true)",
               [(n, get(n, REF_EACH, "noop"), get(n, "bare", "noop")) for n in sizes], lambda r: r <= 3,
               [(n, get(n, IDEAL_EACH, "noop"), get(n, "bare", "noop")) for n in sizes])
    # destroy, one process per container, vs the shell's `ip netns del` (bash included)
    ratio_goal("destroy --no-wait (1 proc/ctr) <= 3x the shell's ip netns del",
               [(n, get(n, REF_EACH, "destroy"), get(n, "shell", "destroy")) for n in sizes], lambda r: r <= 3)
    # how far above the floor netprov is, phase by phase
    for ref, floor_key, how in ((REF_EACH, IDEAL_EACH, "1 proc/ctr"), (REF, IDEAL, "1 process")):
        for ph in ("cold", "noop"):
            over = [(n, get(n, ref, ph), get(n, floor_key, ph)) for n in sizes]
            over = [(n, a, b) for n, a, b in over if a and b]
            if over:
                res.append(("info", f"netprov {ph} ({how}) over the floor (ideal provisioner): " +
                            ", ".join(f"N={n}: {_ms(a)} vs {_ms(b)} = {a / b:.2f}x" for n, a, b in over)))
    # per-container cost flat from N=10 to N=1000
    for ref, floor_key, how in ((REF, IDEAL, "1 process"), (REF_EACH, IDEAL_EACH, "1 proc/ctr")):
        a, b = get(10, ref, "cold"), get(1000, ref, "cold")
        if a and b:
            fa, fb = get(10, floor_key, "cold"), get(1000, floor_key, "cold")
            fl = (f"; the floor (ideal provisioner) {_ms(fb)} vs {_ms(fa)} = {fb / fa:.2f}x"
                  if fa and fb else "")
            if fa and fb and b > 1.2 * a and fb > 1.2 * fa:
                fl += ": floor-bound, the ideal provisioner itself grows more than 1.2x"
            res.append((b <= 1.2 * a, f"per-container cold apply ({how}) N=1000 vs N=10: "
                                      f"{_ms(b)} vs {_ms(a)} = {b / a:.2f}x (target <= 1.2x){fl}"))
        else:
            res.append((None, f"N=1000 vs N=10 scaling ({how}): not measured (needs both sizes)"))
    # peak RSS <= 16 MiB at N=1000
    rss = get(1000, REF, "cold", "maxrss_kib")
    if rss:
        res.append((rss <= 16 * 1024, f"peak RSS of `netprov apply` with 1000 props: {rss / 1024:.1f} MiB (target <= 16 MiB)"))
    else:
        res.append((None, "peak RSS at N=1000: not measured"))
    # the OVS variant
    # Measured for both port styles: netprov's default (veth) and the shell's own
    # (internal, which needs the kernel to move the device into the container netns).
    ovs = summary.get("ovs", {})
    for key, style in (("netprov_each_veth", "veth port, netprov's default"),
                       (REF_EACH, "internal port, as the shell")):
        ratio_goal(f"OVS cold apply (1 proc/ctr, {style}) >= 5x faster than the ovs-vsctl shell",
                   [(n, get(n, "shell_ovs", "cold", variant=ovs) or get(n, "shell", "cold", variant=ovs),
                     get(n, key, "cold", variant=ovs)) for n in sorted(ovs)], lambda r: r >= 5)
    return res


def target_lines(res):
    """One line per goal; "info" lines are measurements beside a goal, not goals."""
    def word(ok):
        return "INFO" if ok == "info" else "PASS" if ok else "FAIL" if ok is not None else "SKIP"
    return [f"{word(ok)}  {text}" for ok, text in res]
