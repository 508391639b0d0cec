#!/usr/bin/python3
"""summarize.py - turn a results directory into tables and plots.

    analysis/summarize.py RESULTS_DIR [--quiet]

Reads RESULTS_DIR/results.csv (written by bench/run_matrix.py), plus
machine.json, errors.json and profile/ when present.  Prints the
side-by-side tables and writes RESULTS_DIR/summary.md and
RESULTS_DIR/plots/*.png.

Every cell is the median over repetitions; "±x%" is half the min-max range
relative to the median; "1.8x" is the ratio to the fastest entry of its row
(bold).  Lower is better for time, higher for throughput.
"""

import csv
import json
import math
import os
import re
import statistics
import sys
from collections import defaultdict

PEER_ORDER = ["malloc/glibc", "malloc/jemalloc", "malloc/mimalloc", "malloc/tcmalloc",
              "tls_stack", "dpdk"]


# ---------------------------------------------------------------------------
# loading

def load_rows(d):
    with open(os.path.join(d, "results.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        try:
            r["value"] = float(r["value"])
        except (TypeError, ValueError):
            r["value"] = float("nan")
        r["threads"] = int(r["threads"]) if str(r.get("threads", "")).isdigit() else 0
    return rows


def load_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def who(r):
    """Column key: the backend, or peer/allocator."""
    if r["backend"] == "malloc":
        return f"malloc/{r['allocator']}"
    return r["backend"]


def stats(vals):
    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return None
    med = statistics.median(vals)
    spread = (max(vals) - min(vals)) / 2 / med * 100 if med else 0.0
    return {"median": med, "min": min(vals), "max": max(vals), "spread": spread, "n": len(vals)}


def column_order(keys, backends):
    """Each backend, then its variants (<backend>/defaults), then the peers."""
    order = []
    for b in backends:
        order += [b] if b in keys else []
        order += sorted(k for k in keys if k.startswith(b + "/"))
    order += [p for p in PEER_ORDER if p in keys and p not in order]
    order += sorted(k for k in keys if k not in order)
    return order


def fmt_num(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.2f}G"
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def size_label(s):
    try:
        n = int(s)
    except (TypeError, ValueError):
        return s or ""
    for unit, k in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= k and n % k == 0:
            return f"{n // k} {unit}"
    return f"{n} B"


def side_by_side(cells, cols, lower_better=True):
    """cells: {col: stats}; returns formatted cells with ratio to the best."""
    meds = {c: cells[c]["median"] for c in cols if cells.get(c)}
    if not meds:
        return ["" for _ in cols]
    best = min(meds.values()) if lower_better else max(meds.values())
    out = []
    for c in cols:
        s = cells.get(c)
        if not s:
            out.append("")
            continue
        ratio = s["median"] / best if lower_better else best / s["median"] if s["median"] else 0
        txt = f"{fmt_num(s['median'])} ±{s['spread']:.0f}% ({ratio:.2f}x)"
        if s["median"] == best:
            txt = f"**{txt}**"
        out.append(txt)
    return out


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(lines)


def text_table(header, rows):
    strip = [[re.sub(r"\*\*", "", str(x)) for x in r] for r in [header] + rows]
    w = [max(len(r[i]) for r in strip) for i in range(len(header))]
    out = []
    for k, r in enumerate(strip):
        out.append("  ".join(x.ljust(w[i]) for i, x in enumerate(r)))
        if k == 0:
            out.append("  ".join("-" * w[i] for i in range(len(header))))
    return "\n".join(out)


# ---------------------------------------------------------------------------
# tables

def micro_groups(rows, metric):
    """{(case, size, params, threads): {who: stats}} for micro GB rows."""
    acc = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["kind"] != "micro" or r["metric"] != metric or r["case"].startswith("hitpath_"):
            continue
        acc[(r["case"], r["size"], r["params"], r["threads"])][who(r)].append(r["value"])
    return {k: {c: stats(v) for c, v in d.items()} for k, d in acc.items()}


def case_sort_key(k):
    case, size, params, threads = k
    order = ["hit", "handle_hit", "backend", "working_set", "batch", "prodcons", "evict",
             "idle_budget", "mixed_server"]
    ci = order.index(case) if case in order else len(order)
    try:
        sz = int(size)
    except ValueError:
        sz = 0
    nums = [int(x) for x in re.findall(r"\d+", params)]
    return (ci, case, threads, sz, nums, params)


def micro_table(rows, backends, metric="ns_per_pair"):
    groups = micro_groups(rows, metric)
    if not groups:
        return None, None
    keys = set()
    for d in groups.values():
        keys.update(c for c, s in d.items() if s)
    cols = column_order(keys, backends)
    header = ["case", "size", "params", "thr"] + cols
    body = []
    for k in sorted(groups, key=case_sort_key):
        case, size, params, threads = k
        body.append([case, size_label(size), params.replace(";", " "), threads] +
                    side_by_side(groups[k], cols))
    return header, body


def counters_table(rows, backends):
    metrics = ["hit_rate", "evict_per_put", "discard_per_put", "fresh_per_get",
               "contention_per_op"]
    acc = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["kind"] == "micro" and r["metric"] in metrics and r["case"] in (
                "working_set", "batch", "prodcons", "evict", "idle_budget", "mixed_server"):
            acc[(r["case"], r["size"], r["params"], r["threads"])][
                (r["backend"], r["metric"])].append(r["value"])
    if not acc:
        return None, None
    bes = [b for b in backends if any(b == k[0] for d in acc.values() for k in d)]
    header = ["case", "size", "params", "thr"] + bes
    body = []
    for k in sorted(acc, key=case_sort_key):
        cells = []
        for b in bes:
            vals = []
            for m, short in zip(metrics, ["hit", "evict", "disc", "fresh", "cont"]):
                v = acc[k].get((b, m))
                if v:
                    vals.append(f"{short} {statistics.median(v):.2f}")
            cells.append(" / ".join(vals))
        body.append([k[0], size_label(k[1]), k[2].replace(";", " "), k[3]] + cells)
    return header, body


def hitpath_table(rows, backends):
    ns = defaultdict(list)
    ir = {}
    irn = {}
    for r in rows:
        if r["kind"] != "micro" or not r["case"].startswith("hitpath_"):
            continue
        key = (r["case"][len("hitpath_"):], who(r))
        if r["metric"] == "ns_per_pair":
            ns[key].append(r["value"])
        elif r["metric"] == "instructions_per_pair":
            ir[key] = r["value"]
        elif r["metric"] == "instructions_per_pair_net":
            irn[key] = r["value"]
    if not ns and not ir:
        return None, None
    labels = {"get": "zp_get+zp_put (shared lib)", "call": "(zp_get)+(zp_put) exported, called",
              "get_static": "zp_get+zp_put (static lib)",
              "handle": "zp_cache_get+put (inline handle)",
              "backend": "backend path (cache_depth 0)", "malloc": "malloc+free",
              "tls": "TLS array stack (floor)", "empty": "empty loop"}
    keys = sorted(set(ns) | set(ir), key=lambda k: (
        list(labels).index(k[0]) if k[0] in labels else 99,
        backends.index(k[1]) if k[1] in backends else 50, k[1]))
    header = ["path", "backend / peer", "ns/pair median", "min–max", "Ir/pair", "Ir/pair net"]
    body = []
    for k in keys:
        s = stats(ns.get(k, []))
        body.append([labels.get(k[0], k[0]), k[1],
                     f"{s['median']:.2f}" if s else "–",
                     f"{s['min']:.2f}–{s['max']:.2f}" if s else "–",
                     f"{ir[k]:.1f}" if k in ir else "–",
                     f"{irn[k]:.1f}" if k in irn else "–"])
    return header, body


def workload_cell(r):
    """(params without config:, column): a pool run with the drivers'
    --config defaults is the column <backend>/defaults next to <backend>
    (the original programs' settings, config:zeropool) and the peers."""
    params, config = [], "zeropool"
    for p in r["params"].split(";"):
        if p.startswith("config:"):
            config = p[len("config:"):]
        elif p:
            params.append(p)
    col = who(r) if config == "zeropool" else f"{who(r)}/{config}"
    return ";".join(params), col


def workload_groups(rows, metric):
    acc = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["kind"] == "workload" and r["metric"] == metric:
            params, col = workload_cell(r)
            acc[(r["name"], params)][col].append(r["value"])
    return {k: {c: stats(v) for c, v in d.items()} for k, d in acc.items()}


def workload_table(rows, backends, metric, scale=1.0):
    groups = workload_groups(rows, metric)
    if not groups:
        return None, None
    keys = set()
    for d in groups.values():
        keys.update(d)
    cols = column_order(keys, backends)
    header = ["workload", "params"] + cols
    body = []
    for k in sorted(groups):
        cells = {c: ({kk: (v * scale if kk in ("median", "min", "max") else v)
                      for kk, v in s.items()} if s else None)
                 for c, s in groups[k].items()}
        body.append([k[0], k[1].replace(";", " ")] + side_by_side(cells, cols))
    return header, body


def profile_tables(d, max_rows=8):
    """Top self-% symbols per workload, backends side by side."""
    pdir = os.path.join(d, "profile")
    if not os.path.isdir(pdir):
        return []
    tops = defaultdict(dict)
    for fn in sorted(os.listdir(pdir)):
        m = re.match(r"^(.+?)\.(.+)\.top\.txt$", fn)
        if not m:
            continue
        prog, target = m.group(1), m.group(2)
        syms = []
        with open(os.path.join(pdir, fn), errors="replace") as f:
            for line in f:
                # perf report --sort dso,sym:  "  45.12%  libzeropool.so.0  [.] zp_get"
                mm = re.match(r"^\s*([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.+?)\s*$", line)
                if mm:
                    syms.append((float(mm.group(1)), mm.group(4), mm.group(2)))
        tops[prog][target] = syms[:max_rows]
    out = []
    for prog in sorted(tops):
        targets = sorted(tops[prog])
        header = ["#"] + targets
        body = []
        for i in range(max_rows):
            row = [i + 1]
            for t in targets:
                s = tops[prog][t]
                row.append(f"{s[i][1][:40]} {s[i][0]:.1f}%" if i < len(s) else "")
            body.append(row)
        out.append((prog, header, body))
    return out


# ---------------------------------------------------------------------------
# plots

def plots(rows, backends, outdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"summarize: matplotlib not available ({e}); no plots", file=sys.stderr)
        return []
    os.makedirs(outdir, exist_ok=True)
    written = []

    def series(metric, case_pred):
        acc = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r["kind"] == "micro" and r["metric"] == metric and case_pred(r):
                acc[who(r)][(r["threads"], r["size"], r["params"])].append(r["value"])
        return acc

    # 1. Throughput vs threads, one panel per threaded case.
    thr_cases = sorted({(r["case"], r["size"], r["params"]) for r in rows
                        if r["kind"] == "micro" and r["metric"] == "items_per_second"
                        and r["threads"] > 1 and not r["case"].startswith("hitpath_")},
                       key=lambda k: case_sort_key((k[0], k[1], k[2], 0)))
    if thr_cases:
        n = len(thr_cases)
        cols = min(3, n)
        nrows = (n + cols - 1) // cols
        fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.8 * nrows), squeeze=False)
        for ax, (case, size, params) in zip(axes.flat, thr_cases):
            acc = series("items_per_second", lambda r, c=case, s=size, p=params:
                         r["case"] == c and r["size"] == s and r["params"] == p)
            for w in column_order(set(acc), backends):
                pts = sorted((t, statistics.median(v)) for (t, _, _), v in acc[w].items())
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] / 1e6 for p in pts], marker="o", label=w)
            ax.set_title(f"{case} {size_label(size)} {params.replace(';', ' ')}".strip(),
                         fontsize=9)
            ax.set_xlabel("threads")
            ax.set_ylabel("M pairs/s (aggregate)")
            ax.set_xscale("log", base=2)
            ts = sorted({t for w in acc for (t, _, _) in acc[w]})
            ax.set_xticks(ts)
            ax.set_xticklabels([str(t) for t in ts])
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        fig.tight_layout()
        p = os.path.join(outdir, "throughput_vs_threads.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)

    # 2. ns per pair vs size, one panel per size-swept case (1 thread).
    size_cases = [c for c in ("hit", "handle_hit", "backend")
                  if any(r["case"] == c and r["kind"] == "micro" for r in rows)]
    if size_cases:
        fig, axes = plt.subplots(1, len(size_cases), figsize=(5.5 * len(size_cases), 4.2),
                                 squeeze=False)
        for ax, case in zip(axes.flat, size_cases):
            acc = series("ns_per_pair", lambda r, c=case: r["case"] == c and r["threads"] == 1)
            for w in column_order(set(acc), backends):
                pts = sorted((int(s), statistics.median(v)) for (_, s, _), v in acc[w].items()
                             if str(s).isdigit())
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=w)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            sizes = sorted({int(s) for w in acc for (_, s, _) in acc[w] if str(s).isdigit()})
            ticks = sizes[::2] if len(sizes) > 6 else sizes
            ax.set_xticks(ticks)
            ax.set_xticklabels([size_label(t).replace(" ", "") for t in ticks], fontsize=7)
            ax.minorticks_off()
            ax.set_title(f"{case}: get+put, 1 thread", fontsize=9)
            ax.set_xlabel("buffer size (bytes)")
            ax.set_ylabel("ns per pair (median)")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
        fig.tight_layout()
        p = os.path.join(outdir, "ns_vs_size.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)

    # 3. Batch sweep.
    acc = series("ns_per_pair", lambda r: r["case"] == "batch")
    if acc:
        fig, ax = plt.subplots(figsize=(6, 4))
        for w in column_order(set(acc), backends):
            pts = []
            for (_, _, params), v in acc[w].items():
                m = re.search(r"batch:(\d+)", params)
                if m:
                    pts.append((int(m.group(1)), statistics.median(v)))
            pts.sort()
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=w)
        ax.set_xscale("log", base=2)
        bs = sorted({p[0] for w in acc for p in [(int(m.group(1)),) for (_, _, pr) in acc[w]
                                                   for m in [re.search(r"batch:(\d+)", pr)]
                                                   if m]})
        ax.set_xticks(bs)
        ax.set_xticklabels([str(b) for b in bs])
        ax.set_xlabel("refill/drain batch (cache depth 64, working set 256)")
        ax.set_ylabel("ns per pair (median)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = os.path.join(outdir, "batch.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)

    # 4. Workloads: wall time and peak RSS per backend and peer.
    for metric, fname, ylabel, scale in (("wall_s", "workloads_time.png", "wall time (ms)", 1e3),
                                         ("peak_rss_kib", "workloads_rss.png", "peak RSS (MiB)",
                                          1 / 1024)):
        groups = workload_groups(rows, metric)
        if not groups:
            continue
        progs = sorted(groups)
        fig, axes = plt.subplots(1, len(progs), figsize=(4.2 * len(progs), 4), squeeze=False)
        for ax, k in zip(axes.flat, progs):
            g = groups[k]
            cols = column_order({c for c, s in g.items() if s}, backends)
            med = [g[c]["median"] * scale for c in cols]
            lo = [(g[c]["median"] - g[c]["min"]) * scale for c in cols]
            hi = [(g[c]["max"] - g[c]["median"]) * scale for c in cols]
            colors = ["tab:gray" if c.startswith("malloc") else
                      "tab:cyan" if c.endswith("/defaults") else "tab:blue" for c in cols]
            ax.bar(range(len(cols)), med, yerr=[lo, hi], color=colors, capsize=3)
            ax.set_xticks(range(len(cols)))
            ax.set_xticklabels(cols, rotation=60, ha="right", fontsize=7)
            ax.set_title(f"{k[0]} ({k[1].replace(';', ' ')})", fontsize=8)
            ax.set_ylabel(ylabel)
            if med and min(med) > 0 and max(med) / min(med) > 50:
                ax.set_yscale("log")
            ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        p = os.path.join(outdir, fname)
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written


# ---------------------------------------------------------------------------

def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quiet = "--quiet" in sys.argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    d = args[0]
    rows = load_rows(d)
    machine = load_json(os.path.join(d, "machine.json"), {})
    errors = load_json(os.path.join(d, "errors.json"), [])
    backends = machine.get("backends") or sorted(
        {r["backend"] for r in rows if r["kind"] == "micro" and r["name"].startswith("pool/")})

    md = [f"# Benchmark summary: {os.path.basename(os.path.abspath(d))}", ""]
    if machine:
        pk = machine.get("packages", {})
        md += ["| | |", "|---|---|",
               f"| date | {machine.get('date', '')} |",
               f"| host | {machine.get('host', '')} |",
               f"| CPU | {machine.get('cpu_model', '')} ({machine.get('cpus_online', '')} CPUs) |",
               f"| kernel | {machine.get('kernel', '')} |",
               f"| compiler | {machine.get('compiler', '')} |",
               f"| glibc | {machine.get('glibc_confstr', machine.get('glibc', ''))} |",
               f"| build | {machine.get('cmake_build_type', '')} |",
               f"| mode / threads | {machine.get('mode', '')} / {machine.get('threads', '')} |",
               f"| backends | {', '.join(backends)} |",
               f"| load average start / end | {machine.get('loadavg_start', '')} / "
               f"{machine.get('loadavg_end', '')} |",
               "| packages | " + ", ".join(f"{k} {v}" for k, v in pk.items() if v) + " |",
               ""]
    md += ["Cells: median over repetitions, ±half the min–max range relative to the median, "
           "(ratio to the fastest in the row; fastest in bold). See docs/benchmarks.md.", ""]
    out_txt = []

    def section(title, header, body, note=None):
        if header is None:
            return
        md.extend([f"## {title}", ""])
        if note:
            md.extend([note, ""])
        md.extend([md_table(header, body), ""])
        out_txt.extend([f"== {title}", text_table(header, body), ""])

    h, b = hitpath_table(rows, backends)
    section("Hit path: one get+put pair (zp_hitpath, 64 B, 1 thread)", h, b,
            "ns: median of repetitions of N pairs. Ir: callgrind instructions per pair inside "
            "the loop function (loop overhead included; 'net' subtracts the empty loop). "
            "Targets (issue 5): <= 50 Ir via the shared library, ~25 via the inline handle, "
            "<= 6 ns median.")
    h, b = micro_table(rows, backends)
    section("Micro-benchmarks: ns per get+put pair (wall time / pairs, all threads)", h, b,
            "With threads > 1 the value is the inverse of aggregate throughput "
            "(items_per_second); per-thread latency is threads x this. Pool cases run the "
            "library's default configuration except for the settings their params name; "
            "store:N marks a tuned variant (max_per_class N).")
    h, b = micro_table(rows, backends, "cpu_ns_per_pair")
    section("Micro-benchmarks: CPU ns per get+put pair (all threads' CPU time / pairs)", h, b,
            "Less sensitive than wall time to other load on the machine; includes spinning "
            "and lock waiting done on a CPU, excludes time preempted or asleep.")
    h, b = counters_table(rows, backends)
    section("Pool behaviour in the store-bound cases (medians of zp_stats deltas)", h, b)
    wl_note = ("<backend>: the original programs' pool settings (the drivers' --config "
               "zeropool); <backend>/defaults: the library's defaults, only the backend set.")
    h, b = workload_table(rows, backends, "wall_s", 1e3)
    section("Workloads: wall time (ms)", h, b, wl_note)
    h, b = workload_table(rows, backends, "peak_rss_kib", 1 / 1024)
    section("Workloads: peak RSS (MiB)", h, b, wl_note)
    # Stages that write a page of their own: linked when the run has it.
    for title, page, what in (
            ("A real server", "server/summary.md",
             "workloads/http_server under wrk, every backend and the malloc peers "
             "(bench/server_bench.py): requests/s, p50/p99/p99.9 latency, server CPU per "
             "request, peak RSS."),
            ("Real files", "files/summary.md",
             "the drivers' real-file mode, O_DIRECT into pooled buffers against buffered reads "
             "into malloc'd ones (bench/files_bench.py): CPU per byte of the cold pass and of all "
             "passes, throughput, page cache added, RSS."),
            ("Flame graphs", "profile/flamegraphs.html",
             "every workload's flame graphs side by side, one per backend and glibc malloc "
             "(analysis/profile.sh; each `profile/<workload>.<target>.flame.html` also opens "
             "alone).")):
        if os.path.isfile(os.path.join(d, page)):
            md.extend([f"## {title}", "", f"[{page}]({page}): {what}", ""])
    for prog, h, b in profile_tables(d):
        section(f"Profile: {prog}, top symbols by self time (perf, cpu-clock)", h, b)

    pngs = plots(rows, backends, os.path.join(d, "plots"))
    if pngs:
        md += ["## Plots", ""]
        for p in pngs:
            rel = os.path.relpath(p, d)
            md += [f"![{os.path.basename(p)}]({rel})", ""]
    if errors:
        md += ["## Errors during the run", ""]
        for e in errors:
            md.append(f"- [{e.get('stage')}] {e.get('what')}")
        md.append("")
    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write("\n".join(md))
    if not quiet:
        print("\n".join(out_txt))
        print(f"summary: {os.path.join(d, 'summary.md')}; plots: {len(pngs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
