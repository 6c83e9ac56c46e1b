"""Medians over rounds, the printed table, and the pass/fail lines for the targets."""

import statistics

REF = "netprov"  # the ratio columns divide by these rows' per-container cold time
REF_EACH = "netprov_each"


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
            for label, what in caveats.get(variant, {}).items():
                lines.append(f"\n**Not like for like**: {label}: {'; '.join(sorted(what))}.")
    return "\n".join(lines)


def targets(summary):
    """The issue's targets as (ok, text) pairs; None for ok means not measurable here."""
    res = []
    veth = summary.get("veth", {})
    sizes = sorted(veth)

    def cold(n, tool):
        return _get(veth.get(n, {}).get(tool, {}), "cold", "per_container_s")

    # 1. >= 20x faster per container than the shell baseline (veth)
    for ref, how in ((REF_EACH, "1 proc/ctr"), (REF, "1 process")):
        ratios = [(n, cold(n, "shell") / cold(n, ref)) for n in sizes
                  if cold(n, "shell") and cold(n, ref)]
        if ratios:
            worst = min(r for _, r in ratios)
            detail = ", ".join(f"N={n}: {r:.1f}x" for n, r in ratios)
            res.append((worst >= 20, f"netprov ({how}) >= 20x faster than shell per container: {detail}"))
        else:
            res.append((None, f"netprov ({how}) vs shell: not measured"))
    # 2. faster than each peer (peers run one process per container: compare both ways)
    for peer, name in (("cni_ptp", "CNI ptp (v4)"), ("cni_ptp_dual", "CNI ptp (v4+v6)"),
                       ("netavark", "netavark")):
        for ref, how in ((REF_EACH, "1 proc/ctr"), (REF, "1 process")):
            ratios = [(n, cold(n, peer) / cold(n, ref)) for n in sizes
                      if cold(n, peer) and cold(n, ref)]
            if ratios:
                worst = min(r for _, r in ratios)
                detail = ", ".join(f"N={n}: {r:.1f}x" for n, r in ratios)
                res.append((worst > 1, f"netprov ({how}) faster than {name}: {detail}"))
            else:
                res.append((None, f"netprov ({how}) vs {name}: not measured (peer not available)"))
    # 3. no-op re-apply <= 20% of a cold apply
    for variant, by_n in summary.items():
        for ref, how in ((REF, "1 process"), (REF_EACH, "1 proc/ctr")):
            fr = []
            for n in sorted(by_n):
                s = by_n[n].get(ref, {})
                c, z = _get(s, "cold", "total_s"), _get(s, "noop", "total_s")
                if c and z is not None:
                    fr.append((n, z / c))
            if fr:
                worst = max(f for _, f in fr)
                detail = ", ".join(f"N={n}: {f * 100:.0f}%" for n, f in fr)
                res.append((worst <= 0.20, f"{variant}: no-op re-apply <= 20% of cold ({how}): {detail}"))
    # 4. per-container cold apply at N=1000 within 1.5x of N=10
    for ref, how in ((REF, "1 process"), (REF_EACH, "1 proc/ctr")):
        a, b = cold(10, ref), cold(1000, ref)
        if a and b:
            res.append((b <= 1.5 * a, f"per-container cold apply ({how}) N=1000 vs N=10: "
                                      f"{_ms(b)} vs {_ms(a)} = {b / a:.2f}x (target <= 1.5x)"))
        else:
            res.append((None, f"N=1000 vs N=10 scaling ({how}): not measured (needs both sizes)"))
    # 5. peak RSS <= 16 MiB at N=1000
    s = veth.get(1000, {}).get(REF)
    rss = _get(s or {}, "cold", "maxrss_kib")
    if rss:
        res.append((rss <= 16 * 1024, f"peak RSS of `netprov apply` with 1000 props: {rss / 1024:.1f} MiB (target <= 16 MiB)"))
    else:
        res.append((None, "peak RSS at N=1000: not measured"))
    return res


def target_lines(res):
    return [f"{'PASS' if ok else 'FAIL' if ok is not None else 'SKIP'}  {text}" for ok, text in res]
