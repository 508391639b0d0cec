#!/usr/bin/python3
"""findings.py - docs/findings.md, rendered from one results run.

    analysis/findings.py [RESULTS_DIR] [--out FILE] [--no-plots] [--check]

Reads RESULTS_DIR (bench/run_matrix.py --full: results.csv, machine.json,
raw/callgrind/, profile/, server/, files/) and writes a document that
answers the project's questions about contention, batching, eviction,
reclamation, safety features, where pooling pays, the four workloads and
real I/O (a server under wrk, files read with O_DIRECT).  Every number in it is
computed here from the run's files; the document names the command that
reproduces each.  Plots go to RESULTS_DIR/findings/ (matplotlib; skipped
with --no-plots, the text does not change).

Without RESULTS_DIR, the run FILE names in its first lines.  --check
renders without writing and exits 1 when a question that the run
should answer lacks data, or when FILE (default docs/findings.md) differs
from the rendering (the committed document is stale).  Questions this
project has not measured yet are listed as open, by name, in the document.

Standard library only, plus matplotlib for the plots.
"""

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summarize as S  # noqa: E402  (the loaders and formatting of the summary)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))
import run_matrix as RM  # noqa: E402  (zp_bench's JSON parser)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ["locked", "lockfree-ck", "lockfree-urcu"]
PEERS = ["glibc", "jemalloc", "mimalloc", "tcmalloc"]
WORKLOADS = ["network_server", "stress_test", "file_pipeline", "ml_checkpoint_loader"]
SERVER_SIZES = [64, 4096, 65536]


class Missing(Exception):
    """A value the finding needs is not in the run."""


# ---------------------------------------------------------------------------
# selecting values

def select(rows, **want):
    """Rows whose fields equal every given value (params: exact string)."""
    out = []
    for r in rows:
        if all(str(r.get(k)) == str(v) for k, v in want.items()):
            out.append(r)
    return out


def cell(rows, **want):
    """Median, min and max of the matching rows' values; Missing if none."""
    st = S.stats([r["value"] for r in select(rows, **want)])
    if st is None:
        raise Missing(", ".join(f"{k}={v}" for k, v in want.items()))
    return st


def span(values, fmt="{:.2f}"):
    """'a' when every value prints the same, else 'lo-hi'."""
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def spread(st, fmt="{:.1f}"):
    return f"{fmt.format(st['median'])} ({fmt.format(st['min'])}-{fmt.format(st['max'])})"


def pair(rows, backend, case, size, threads=1, params="", allocator="glibc",
         metric="ns_per_pair"):
    return cell(rows, kind="micro", case=case, backend=backend, allocator=allocator,
                size=size, threads=threads, params=params, metric=metric)


def peer(rows, case, size, alloc, threads=1, params=""):
    return pair(rows, "malloc", case, size, threads, params, alloc)


# ---------------------------------------------------------------------------
# evidence: callgrind per function, perf top symbols

def callgrind_functions(path, iters, limit=8):
    """[(function, Ir per pair)] of a callgrind output, largest first."""
    try:
        out = subprocess.run(["callgrind_annotate", "--inclusive=no", path], text=True,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise Missing(f"callgrind_annotate {path}: {e}") from e
    funcs = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+\S*?:(\S+)", line)
        if m and "PROGRAM TOTALS" not in line:
            funcs.append((m.group(2), int(m.group(1).replace(",", "")) / iters))
    if not funcs:
        raise Missing(f"no functions in {path}")
    return funcs[:limit]


def cg_iters(path):
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r"--iters (\d+)", line)
            if m:
                return int(m.group(1))
    raise Missing(f"no --iters in {path}")


def perf_top(path, limit=8):
    """[(percent, dso, symbol)] from a perf report --sort dso,sym file."""
    if not os.path.exists(path):
        raise Missing(path)
    top = []
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.+?)\s*$", line)
            if m:
                top.append((float(m.group(1)), m.group(2), m.group(3)))
    if not top:
        raise Missing(f"no samples in {path}")
    return top[:limit]


def annotate_hot(path, per_symbol=4):
    """The first lines of each symbol's section of findings_extra.sh's
    annotate file (already sorted hottest first), trimmed."""
    if not os.path.exists(path):
        raise Missing(path)
    out, n = [], 0
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip()
            if line.startswith("====="):
                out.append("  " + line.strip("= "))
                n = 0
            elif n < per_symbol and line.strip():
                out.append("    " + re.sub(r"\s+", " ", line.strip()))
                n += 1
    if not out:
        raise Missing(f"no annotation in {path}")
    return out


# ---------------------------------------------------------------------------
# plots

class Plotter:
    def __init__(self, outdir, enabled):
        self.outdir = outdir
        self.plt = None
        if enabled:
            try:
                import matplotlib
                matplotlib.use("Agg")
                import matplotlib.pyplot as plt
                self.plt = plt
            except ImportError:
                print("findings.py: matplotlib missing, no plots", file=sys.stderr)

    def _save(self, fig, ax, fname, title, ylabel):
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
        fig.tight_layout()
        os.makedirs(self.outdir, exist_ok=True)
        fig.savefig(os.path.join(self.outdir, fname), dpi=100)
        self.plt.close(fig)

    def lines(self, name, title, xlabel, ylabel, series, xlog=False, ylog=False, xticks=None):
        """series: {label: [(x, y), ...]}; returns the file name (written if able)."""
        fname = f"{name}.png"
        if self.plt is None:
            return fname
        fig, ax = self.plt.subplots(figsize=(6.4, 4))
        for label, pts in series.items():
            pts = [p for p in pts if p[1] is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        if xlog:
            ax.set_xscale("log", base=2)
        if ylog:
            ax.set_yscale("log")
        if xticks:
            ax.set_xticks(xticks[0])
            ax.set_xticklabels(xticks[1], rotation=45, fontsize=7)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        self._save(fig, ax, fname, title, ylabel)
        return fname

    def bars(self, name, title, ylabel, groups, labels):
        """groups: {group: [value per label]}."""
        fname = f"{name}.png"
        if self.plt is None:
            return fname
        fig, ax = self.plt.subplots(figsize=(6.4, 4))
        n = len(labels)
        width = 0.8 / n
        for i, label in enumerate(labels):
            xs = [g + i * width for g in range(len(groups))]
            ax.bar(xs, [v[i] for v in groups.values()], width, label=label)
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))])
        ax.set_xticklabels(list(groups), fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        self._save(fig, ax, fname, title, ylabel)
        return fname


# ---------------------------------------------------------------------------
# the findings: each returns (answer paragraphs, table lines, plot, evidence)

def f_contention(run, rows, plot):
    threads = [1, 2, 4]
    table = ["| backend | path | " + " | ".join(f"{t} thr: ns/pair (contention /1000 ops)"
                                                  for t in threads) + " |",
             "|---|---|" + "---|" * len(threads)]
    series = {}
    at = {}
    for b in BACKENDS:
        for path, case, params in (("backend", "backend", ""),
                                   ("magazine", "working_set", "keep:256")):
            cells = []
            for t in threads:
                ns = pair(rows, b, case, 4096, t, params)
                ev = pair(rows, b, case, 4096, t, params, metric="contention_per_op")
                at[(b, path, t)] = (ns, ev["median"] * 1000)
                cells.append(f"{ns['median']:.1f} [{ns['min']:.1f}-{ns['max']:.1f}] "
                             f"({ev['median'] * 1000:.1f})")
                series.setdefault(f"{b} {path}", []).append((t, ns["median"]))
            table.append(f"| {b} | {path} | " + " | ".join(cells) + " |")
    png = plot.lines("q1_contention", "4 KiB get+put pairs by thread count",
                     "threads", "ns per pair (median)", series, xticks=(threads, threads))
    lines = []
    for t in threads:
        lk = at[("locked", "backend", t)][0]["median"]
        best = min(("lockfree-ck", "lockfree-urcu"), key=lambda b: at[(b, "backend", t)][0]["median"])
        lf = at[(best, "backend", t)][0]["median"]
        lines.append(f"{t} thread{'s' if t > 1 else ''}: locked {lk:.1f} ns, {best} {lf:.1f} ns "
                     f"({lk / lf:.2f}x)")
    wins = [t for t in threads
            if at[("locked", "backend", t)][0]["min"] >
            min(at[(b, "backend", t)][0]["max"] for b in ("lockfree-ck", "lockfree-urcu"))]
    ev4 = {b: at[(b, "backend", 4)][1] for b in BACKENDS}
    answer = [
        "On the backend path (no thread cache: every get and put goes to the shared store), "
        "per 4 KiB pair, the mutex against the faster lock-free backend (the ratio is the "
        "mutex's time over the lock-free one's: above 1, lock-free is faster): " +
        "; ".join(lines) + ". Lock-free beats the mutex beyond the spread of the runs (the "
        "mutex's fastest run slower than the lock-free one's slowest) at " +
        (", ".join(f"{t} thread{'s' if t > 1 else ''}" for t in wins) if wins else
         "no thread count of this run") + ". Contention events per 1000 operations at 4 threads (failed trylocks for the mutex, "
        "CAS retries for the lock-free stacks): " +
        ", ".join(f"{b} {ev4[b]:.1f}" for b in BACKENDS) + " (lockfree-urcu reports none: "
        "liburcu's stack does not count its retries, so its 0 is not a measurement).",
        "On the magazine path (256 buffers kept per thread, so the cache refills and drains the "
        "store in batches) the backend's share is amortised over a batch: at 4 threads " +
        ", ".join(f"{b} {at[(b, 'magazine', 4)][0]['median']:.1f} ns"
                  for b in BACKENDS) + " per pair.",
    ]
    ev = []
    for b in BACKENDS:
        path = os.path.join(run, "raw", "callgrind", f"callgrind.backend-{b}.out")
        funcs = callgrind_functions(path, cg_iters(path), limit=6)
        ev.append(f"{b}: " + ", ".join(f"{f} {ir:.0f}" for f, ir in funcs))
    ev.append("")
    ev.append("Under contention, 2 threads, self time by symbol (perf cpu-clock, "
              "`analysis/findings_extra.sh`):")
    for b in BACKENDS:
        top = perf_top(os.path.join(run, "extra", f"{b}.top.txt"), limit=6)
        ev.append(f"{b}: " + ", ".join(f"{sym} {pct:.1f}%" for pct, _, sym in top))
    ev.append("")
    ev.append("Hottest instructions of the hottest symbols (perf annotate, percent of the "
              "symbol's samples):")
    for b in BACKENDS:
        ev += [f"{b}:"] + annotate_hot(os.path.join(run, "extra", f"{b}.annotate.txt"))
    evidence = ("Instructions per pair on the backend path by function, one thread (callgrind, "
                "`zp_hitpath --count --depth 0`):", ev)
    return answer, table, png, evidence


def f_batching(run, rows, plot):
    batches = [1, 2, 4, 8, 16, 32, 64]
    table = ["| backend | " + " | ".join(f"batch {b}" for b in batches) + " |",
             "|---|" + "---|" * len(batches)]
    series = {}
    answer_parts = []
    for b in BACKENDS:
        vals = [pair(rows, b, "batch", 4096, 1, f"keep:256;depth:64;batch:{n}") for n in batches]
        table.append(f"| {b} | " + " | ".join(f"{v['median']:.1f}" for v in vals) + " |")
        series[b] = [(n, v["median"]) for n, v in zip(batches, vals)]
        best = min(v["median"] for v in vals)
        stop = next(n for n, v in zip(batches, vals) if v["median"] <= best * 1.10)
        answer_parts.append(f"{b} {vals[0]['median']:.1f} ns at batch 1, {best:.1f} at best, "
                            f"within 10% of it from batch {stop}")
    png = plot.lines("q2_batching", "256 buffers of 4 KiB, cache depth 64, one thread",
                     "refill/drain batch", "ns per pair (median)", series, xlog=True,
                     xticks=(batches, batches))
    answer = ["Cost per get+put pair against the refill/drain batch (`batch` case: a thread "
              "keeps 256 buffers of 4 KiB through a cache of 64, one thread): " +
              "; ".join(answer_parts) + ". The returns stop where the next doubling gains "
              "less than the spread of the runs."]
    chose = adaptive_choice(run)
    answer.append(
        "What the adaptive cache (the default, `--config defaults`) chose on each workload, "
        "for lockfree-ck at scale 1: the most slots one thread's cache gave each class the "
        "workload used (`cache_limit_peak` of `zp_class_stats`; a refill or drain then "
        "moves half of it, at most `batch`), as size: slots: " + "; ".join(
            f"{w} " + ", ".join(f"{S.size_label(sz)}: {lim}" for sz, lim in cl)
            for w, cl in chose.items()) + ". A class gets 4 slots on first use and doubles "
        "them whenever it overflows or refills, within the 4 MiB of `cache_bytes` per "
        "thread: classes larger than that get none.")
    return answer, table, png, None


def adaptive_choice(run):
    """{workload: [(class size, cache_limit_peak)]} from the first repetition's
    driver JSON of lockfree-ck with --config defaults."""
    out = {}
    for w in WORKLOADS:
        path = os.path.join(run, "raw", "workloads", f"{w}.lockfree-ck.defaults.rep0.json")
        doc = S.load_json(path, None)
        if doc is None or not isinstance(doc.get("classes"), list):
            raise Missing(f"per-class statistics in {path}")
        out[w] = [(c["size"], c["cache_limit_peak"]) for c in doc["classes"]]
    return out


def f_eviction(run, rows, plot):
    table = ["| backend | size | policy | ns/pair | evictions/put | fresh/get | hit rate | "
             "pool's memory KiB |", "|---|---|---|---|---|---|---|---|"]
    groups = {}
    parts = []
    rates = []
    prof = evict_profile(run)
    for size in (4096, 1048576):
        for b in BACKENDS:
            got = {}
            for pol in ("coldest", "newest"):
                p = f"keep:8;mpc:4;policy:{pol}"
                ns = pair(rows, b, "evict", size, 1, p)
                ev = pair(rows, b, "evict", size, 1, p, metric="evict_per_put")["median"]
                fr = pair(rows, b, "evict", size, 1, p, metric="fresh_per_get")["median"]
                hr = pair(rows, b, "evict", size, 1, p, metric="hit_rate")["median"]
                live = pair(rows, b, "evict", size, 1, p, metric="live_kib")
                got[pol] = ns["median"]
                rates.append((ev, fr))
                table.append(f"| {b} | {S.size_label(size)} | {pol} | {spread(ns)} | "
                             f"{ev:.2f} | {fr:.2f} | {hr:.2f} | {spread(live, '{:.0f}')} |")
            groups[f"{b}\n{S.size_label(size)}"] = [got["coldest"], got["newest"]]
            parts.append((size, b, got["coldest"], got["newest"]))
    png = plot.bars("q3_eviction", "evict: 8 buffers through a store of 4 per class",
                    "ns per pair (median)", groups, ["drop coldest", "drop newest"])
    by = {}
    for size, b, c, n in parts:
        by.setdefault(size, []).append(f"{b} {c:.0f} vs {n:.0f}")
    budget = []
    for size, cap in ((16384, 65536), (1048576, 4194304)):
        for b in BACKENDS:
            p = f"keep:32;budget:{cap}"
            bound = pair(rows, b, "idle_budget", size, 1, p)
            free = pair(rows, b, "idle_budget", size, 1, p + ";store:4096")
            disc = pair(rows, b, "idle_budget", size, 1, p, metric="discard_per_put")["median"]
            budget.append((size, b, bound["median"], free["median"], disc))
    answer = [
        "Under a store too small for the load (`evict`: 8 buffers cycled through a store of 4 "
        "per class, no thread cache), ns per pair, drop-coldest vs drop-newest: at 4 KiB " +
        ", ".join(by[4096]) + "; at 1 MiB " + ", ".join(by[1048576]) + ". Under either policy "
        f"{span([e for e, _ in rates])} evictions per put and "
        f"{span([f for _, f in rates])} fresh allocations per get in every row (table): the "
        "policy changes which buffer goes, not how many. " + prof[0],
        "The idle-bytes budget (`idle_budget`: 32 buffers cycled with `max_idle_bytes` of 4 "
        "buffers, the default cache in front) against the same case with a store that keeps "
        "all (`store:4096`), ns per pair and the budget's discards per put: " +
        "; ".join(f"{b} {S.size_label(s)} {x:.0f} vs {y:.0f} ns, {d:.2f} discards/put"
                  for s, b, x, y, d in budget) + ". Where it discards nothing the thread cache "
        "holds the 32 buffers and the budget is not reached.",
    ]
    evidence = ("The evict case under perf (cpu-clock, kernel included, lockfree-ck, "
                "`analysis/findings_extra.sh`), self time by symbol:", prof[1])
    return answer, table, png, evidence


def trial_rows(run):
    """The liburcu flavour trials' rows (findings_extra.sh, extra/urcu/*.json),
    parsed as the matrix parses zp_bench's JSON."""
    d = os.path.join(run, "extra", "urcu")
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith(".json"))
    except OSError as e:
        raise Missing(d) from e
    out = []
    for n in names:
        doc = S.load_json(os.path.join(d, n), None)
        if doc is None:
            raise Missing(f"unreadable {d}/{n}")
        rnd = int(n.rsplit(".", 2)[1])
        out += [dict(r, allocator="glibc") for r in RM.micro_rows(doc, n, rnd)]
    if not out:
        raise Missing(f"no liburcu flavour results in {d}")
    return out


def f_reclamation(run, rows, plot):
    lf = ["lockfree-ck", "lockfree-urcu"]
    threads = [1, 2, 4]
    table = ["| backend | path | thr | ns/pair | reused after a grace period /1000 ops | "
             "grace period ms, mean (longest) | store's own memory KiB | "
             "worker CPU ns/op |", "|---|---|---|---|---|---|---|---|"]
    got = {}
    cases = [("backend", "backend", t) for t in threads] + \
            [("prodcons", "prodcons", t) for t in (2, 4)]
    for b in BACKENDS:
        for path, case, t in cases:
            m = {k: pair(rows, b, case, 4096, t, metric=k)
                 for k in ("ns_per_pair", "reclaimed_per_op", "grace_us", "grace_max_us",
                           "store_meta_kib", "bg_cpu_ns_per_op")}
            got[(b, path, t)] = m
            g = m["grace_us"]["median"] / 1e3
            table.append(f"| {b} | {path} | {t} | {spread(m['ns_per_pair'])} | "
                         f"{m['reclaimed_per_op']['median'] * 1000:.0f} | "
                         + (f"{g:.2f} ({m['grace_max_us']['median'] / 1e3:.1f})" if g else "-")
                         + f" | {spread(m['store_meta_kib'], '{:.0f}')} | "
                         f"{m['bg_cpu_ns_per_op']['median']:.1f} |")
    groups = {f"{path} {t} thr": [got[(b, path, t)]["store_meta_kib"]["median"] for b in lf]
              for path, _, t in cases}
    png = plot.bars("q4_reclamation", "store's own memory (magazines), 4 KiB pairs",
                    "KiB (median)", groups, lf)
    u, c = "lockfree-urcu", "lockfree-ck"
    per_mag = []
    for path, _, t in cases:
        m = got[(u, path, t)]
        r = m["reclaimed_per_op"]["median"]
        if r > 0:
            per_mag.append(f"{path} {t} thr {m['bg_cpu_ns_per_op']['median'] / r:.0f} ns")
    held = [f"{path} {t} thr {got[(u, path, t)]['store_meta_kib']['median']:.0f} vs "
            f"{got[(c, path, t)]['store_meta_kib']['median']:.0f} KiB" for path, _, t in cases]
    lat = [f"{path} {t} thr {got[(u, path, t)]['grace_us']['median'] / 1e3:.1f} ms" for path, _, t
           in cases]
    cost = [f"{path} {t} thr {got[(c, path, t)]['ns_per_pair']['median']:.0f} vs "
            f"{got[(u, path, t)]['ns_per_pair']['median']:.0f} ns" for path, _, t in cases]
    answer = [
        "Concurrency Kit's stack never waits: a popped magazine goes straight back to a stack, "
        "because the generation counter beside the head makes a stale pop's double-width CAS "
        "fail (its reused-after-a-grace-period count is 0 in every case). liburcu's stack has "
        "no such counter, so a popped magazine may be pushed again only after a grace period: "
        "this backend parks it in a limbo stack and hands every 32 of them to one `call_rcu`, "
        "whose callback, on liburcu's worker thread, files them as spares again. On the "
        "backend path (no thread cache, 4 KiB) every take retires one magazine.",
        "Grace-period latency (call_rcu queued to callback run, mean of the run): " +
        ", ".join(lat) + ". The worker's CPU time per reused magazine (CPU time outside the "
        "benchmark's threads over the magazines reused): " +
        (", ".join(per_mag) if per_mag else "none: no grace period ended inside these runs") +
        ". Memory "
        "held while waiting, as the store's own memory at the end of the case, lockfree-urcu "
        "vs lockfree-ck: " + ", ".join(held) + ": the magazines retired during one grace "
        "period are allocated beside the ones in use, and stay allocated (chunks are freed "
        "only with the store). Per pair, lockfree-ck vs lockfree-urcu: " + ", ".join(cost) +
        " (the difference holds the read side and the retirement as well as the stacks' "
        "different CAS).",
    ]
    trial = trial_rows(run)
    flavours = [("mb", u), ("memb", "lockfree-urcu-memb"), ("bp", "lockfree-urcu-bp"),
                ("QSBR", "lockfree-urcu-qsbr")]
    qt = ["", "| flavour case | thr | " + " | ".join(f"{f} ns/pair" for f, _ in flavours) +
          " | " + " | ".join(f"{f} / memb" for f, _ in flavours if f != "memb") +
          " | grace ms " + "/".join(f for f, _ in flavours) + " |",
          "|---|---|" + "---|" * (2 * len(flavours) - 1) + "---|"]
    ratios = {f: [] for f, _ in flavours}
    beyond = {f: 0 for f, _ in flavours}
    for path, case, t in cases:
        st = {f: pair(trial, b, case, 4096, t) for f, b in flavours}
        gr = {f: pair(trial, b, case, 4096, t, metric="grace_us")["median"] / 1e3
              for f, b in flavours}
        memb = st["memb"]
        cells = []
        for f, _ in flavours:
            if f == "memb":
                continue
            ratios[f].append(f"{path} {t} thr {st[f]['median'] / memb['median']:.2f}x")
            cells.append(f"{st[f]['median'] / memb['median']:.2f}")
            beyond[f] += st[f]["min"] > memb["max"]
        qt.append(f"| {path} | {t} | " + " | ".join(spread(st[f]) for f, _ in flavours) +
                  " | " + " | ".join(cells) + " | " +
                  "/".join(f"{gr[f]:.1f}" for f, _ in flavours) + " |")
    table += qt
    answer.append(
        "Which liburcu flavour (the backend and three trials of the same build, CMake preset "
        "`urcu-trials`, alternating processes, 4 KiB): memb, the backend's flavour until issue "
        "24, and bp, liburcu's flavour for libraries, keep the read side to a compiler barrier "
        "and make the writer pay with `membarrier(2)`, and liburcu aborts the process when that "
        "call fails, which a seccomp filter installed after start-up makes it do "
        "(`tests/test_resource_limits.c`, mode `membarrier`). mb, the backend's flavour now, "
        "never calls membarrier and pays a full fence on entry to and exit from each read-side "
        "section; QSBR needs its callers' threads to announce quiescent states, so its trial "
        "goes online and offline around every call, a fence each way. mb over memb: " +
        ", ".join(ratios["mb"]) + f" (slower beyond the spread of the rounds in "
        f"{beyond['mb']} of {len(cases)} cases); bp over memb: " + ", ".join(ratios["bp"]) +
        "; QSBR over memb: " + ", ".join(ratios["QSBR"]) + ". The fences are paid per store "
        "call (a batch of buffers), never on a cache hit. A forked child calls no flavour "
        "again (docs/lockfree.md, fork).")
    return answer, table, png, None


# Samples spent freeing and allocating buffer memory: the kernel (mmap,
# munmap, page faults, zeroing), libc's mapping calls, the library's OS
# layer and page arena, and the making and unmaking of pooled buffers.
def _frees_or_allocs(dso, sym):
    return (dso.startswith("[kernel") or
            sym.lstrip("_").startswith(("mmap", "munmap", "madvise", "GI___mmap",
                                        "GI___munmap")) or
            sym.startswith(("_zp_os_", "_zp_arena_", "_zp_store_buf_", "take_released",
                            "malloc", "free", "_int_malloc", "_int_free", "cfree")))


def evict_profile(run):
    """The sentence on the evict case's perf profile (findings_extra.sh)."""
    parts, ev = [], []
    for size in (4096, 1048576):
        for pol in ("coldest", "newest"):
            top = perf_top(os.path.join(run, "extra", "evict", f"{size}.{pol}.top.txt"),
                           limit=60)
            ev.append(f"{S.size_label(size)} drop-{pol}: " +
                      ", ".join(f"{sym} {pct:.1f}%" for pct, _, sym in top[:6]))
            share = sum(p for p, dso, sym in top if _frees_or_allocs(dso, sym))
            kern = sum(p for p, dso, _ in top if dso.startswith("[kernel"))
            parts.append(f"{S.size_label(size)} drop-{pol} {share:.0f}% ({kern:.0f}% in the "
                         "kernel)")
    return ("The share of the cycles spent freeing and allocating buffer memory (perf, "
            "lockfree-ck, counted by symbol, so a lower bound: the kernel's mmap, munmap and "
            "page faults, libc's mapping calls, the library's OS layer and page arena, and "
            "making and unmaking pooled buffers): " +
            ", ".join(parts) + "; the rest is mostly the store's takes and gives and the "
            "benchmark's touch of each buffer (top symbols below).", ev)


def f_safety(run, rows, plot):
    # Since issue 23, zp_get/zp_put are the header's macros (the hit inline)
    # and the exported functions are the `call` path; older runs have no
    # `call` rows, and there `get` was the call.
    has_call = bool(select(rows, case="hitpath_call"))
    cols = ["zp_get+zp_put", "inline handle"] + (["exported call"] if has_call else [])
    cases = ["hitpath_get", "hitpath_handle"] + (["hitpath_call"] if has_call else [])
    table = ["| backend | " + " | ".join(f"{c} Ir" for c in cols) + " | " +
             " | ".join(f"{c} ns" for c in cols) + " |",
             "|---|" + "---|" * (2 * len(cols))]
    if not has_call:  # the old table, word for word
        table[0] = "| backend | zp_get+zp_put Ir | inline handle Ir | zp_get+zp_put ns | handle ns |"
    groups = {}
    for b in BACKENDS:
        ir = [cell(rows, case=c, backend=b, metric="instructions_per_pair") for c in cases]
        ns = [cell(rows, case=c, backend=b, metric="ns_per_pair") for c in cases]
        table.append(f"| {b} | " + " | ".join(f"{x['median']:.0f}" for x in ir) + " | " +
                     " | ".join(spread(x, '{:.2f}') for x in ns) + " |")
        groups[b] = [x["median"] for x in ns]
    png = plot.bars("q5_hitpath", "one cached 64 B get+put", "ns per pair (median)", groups, cols)
    b = "lockfree-ck"
    ir = {c: cell(rows, case=c, backend=b, metric="instructions_per_pair")["median"] for c in cases}
    ns = {c: cell(rows, case=c, backend=b, metric="ns_per_pair")["median"] for c in cases}
    mal = {a: cell(rows, case="hitpath_malloc", allocator=a, metric="ns_per_pair")["median"]
           for a in PEERS}
    if has_call:
        head = (f"The inline handle, zp_get/zp_put (the header's macros: the cache hit inline in the "
                f"caller) and the exported functions called through the PLT, {b}: "
                f"{ir['hitpath_handle']:.0f}, {ir['hitpath_get']:.0f} and {ir['hitpath_call']:.0f} "
                "instructions per cached pair (callgrind), "
                f"{ns['hitpath_handle']:.2f}, {ns['hitpath_get']:.2f} and {ns['hitpath_call']:.2f} ns")
    else:
        head = (f"The inline handle against the library call, {b}: {ir['hitpath_handle']:.0f} "
                f"against {ir['hitpath_get']:.0f} instructions per cached pair (callgrind), "
                f"{ns['hitpath_handle']:.2f} against {ns['hitpath_get']:.2f} ns")
    answer = [
        head + "; the malloc peers' malloc+free of 64 B: " +
        ", ".join(f"{a} {v:.2f} ns" for a, v in mal.items()) + ". " + check_cost(run) +
        " " + poison_cost(run)]
    return answer, table, png, None


def poison_cost(run):
    """The sentence of bench/zp_poison_cost's ASan result (findings_extra.sh)."""
    path, text = extra_text(run, "poison_cost.txt")
    got = re.findall(r"poisoning \(AddressSanitizer\) size (\d+): ([\d.]+) ns/pair "
                     r"\(median paired difference, \[([\d.]+)-([\d.]+)\]\)", text)
    if not got:
        raise Missing(f"no AddressSanitizer result in {path}")
    return ("Use-after-put poisoning exists only in debug-checks builds (`ZP_DEBUG_CHECKS`); "
            "under AddressSanitizer it adds, per pair (one poison at the put, one unpoison "
            "at the get, of the whole capacity): " +
            ", ".join(f"{S.size_label(int(sz))} {md} ns [{lo}-{hi}]" for sz, md, lo, hi in got) +
            " (`bench/zp_poison_cost`, medians of 11 interleaved runs): it grows with the "
            "buffer, since ASan writes one shadow byte per 8 bytes. Release builds compile it "
            "out.")


def extra_text(run, name):
    """(path, text) of a file findings_extra.sh wrote; Missing if absent."""
    path = os.path.join(run, "extra", name)
    try:
        with open(path) as f:
            return path, f.read()
    except OSError as e:
        raise Missing(path) from e


def check_cost(run):
    """The sentence of bench/zp_check_cost's result (findings_extra.sh)."""
    path, text = extra_text(run, "check_cost.txt")
    m = re.search(r"with check ([\d.]+) ns/pair, without ([\d.]+) ns/pair, median paired "
                  r"difference ([-\d.]+) ns", text)
    if m is None:
        raise Missing(f"no result in {path}")
    # Before the hit ledger the owner bumped two counters ("counters"); since,
    # one ("put counter": hits are derived from the count).
    c = re.search(r"without check and (counters|put counter) ([\d.]+) ns/pair, median paired "
                  r"difference to without check ([-\d.]+) ns", text)
    if c is None:
        raise Missing(f"no counters result in {path}")
    what = ("the hits and puts counters the owner bumps" if c.group(1) == "counters" else
            "the puts counter the owner bumps; hits are derived from the count")
    return (f"The double-put check (the owner tag's stores and compare) costs {m.group(3)} ns "
            f"per pair on the inline handle path: {m.group(1)} ns with it, {m.group(2)} without; "
            f"the per-class statistics ({what}) cost "
            f"{c.group(3)} more: {c.group(2)} ns per pair without both (medians of 11 "
            "interleaved runs, `bench/zp_check_cost`, 4 KiB).")


# The hit case profiled per size (findings_extra.sh) and how its samples are
# told apart: the pool's inline cache path, its shared store (the backend and
# the front end's store layer and miss paths), libc, the kernel.
PROFILED_SIZES = (1048576, 16777216, 268435456)
SAMPLE_KINDS = {
    "cache": lambda dso, sym: sym.split("@")[0] in ("zp_get", "zp_put"),
    "store": lambda dso, sym: sym.startswith(("ck_", "_zp_store_", "get_miss",
                                              "_zp_cache_put_slow", "_zp_cache_get_slow")),
    "libc": lambda dso, sym: dso.startswith("libc."),
    "kernel": lambda dso, sym: dso.startswith("[kernel"),
}


def crossover(ratios):
    """The sentence on where a good malloc stops being as fast: ratios are
    (size, best malloc time / best pool time, that malloc), by size."""
    near = 0
    for s, r, _ in ratios:
        if r >= 1.10:
            break
        near = s
    if near == 0:
        return "The pool is more than 10% faster than every malloc from the smallest size on."
    s1, r1, a1 = next((s, r, a) for s, r, a in ratios if s > near)
    odd = [S.size_label(s) for s, r, _ in ratios if s > s1 and r < 1.10]
    return (f"The crossover: up to {S.size_label(near)} the best malloc is within 10% of the "
            f"pool (or faster); from {S.size_label(s1)} on it is slower ({r1:.1f}x at "
            f"{S.size_label(s1)}, {a1})" +
            (f", except at {', '.join(odd)} (below)." if odd else "."))


def f_sizes(run, rows, plot):
    sizes = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
             67108864, 268435456]
    table = ["| size | " + " | ".join(BACKENDS + PEERS) + " | best pool / best malloc |",
             "|---|" + "---|" * (len(BACKENDS) + len(PEERS) + 1)]
    series = {}
    ratios = []
    for s in sizes:
        pool = {b: pair(rows, b, "hit", s)["median"] for b in BACKENDS}
        mal = {a: peer(rows, "hit", s, a)["median"] for a in PEERS}
        bp, bm = min(pool.values()), min(mal.values())
        ratios.append((s, bm / bp, min(mal, key=mal.get)))
        table.append(f"| {S.size_label(s)} | " +
                     " | ".join(f"{pool[b]:.1f}" for b in BACKENDS) + " | " +
                     " | ".join(S.fmt_num(mal[a]) for a in PEERS) + f" | {bp / bm:.3f} |")
        for k, v in list(pool.items()) + list(mal.items()):
            series.setdefault(k, []).append((s, v))
    png = plot.lines("q6_sizes", "hit: get, touch, put, one thread", "buffer size (bytes)",
                     "ns per pair (median)", series, xlog=True, ylog=True)
    slower = [f"{S.size_label(s)} ({1 / r:.2f}x)" for s, r, _ in ratios if r < 0.97]
    faster = [f"{S.size_label(s)} ({r:.1f}x, {a})" for s, r, a in ratios if r >= 2.0]
    answer = [
        "Pool (the fastest backend at each size) against the fastest malloc, one thread, a "
        "buffer that stays cached (`hit`): the pool is slower at " +
        (", ".join(slower) if slower else "no size") +
        " (its time over the best malloc's, where it is over 3% slower); the best malloc is at least twice as slow at " +
        (", ".join(faster) if faster else "no size") +
        " (its time over the pool's). " + crossover(ratios)]
    ev = []
    share = {}
    for size in PROFILED_SIZES:
        for who in ("lockfree-ck", "glibc"):
            top = perf_top(os.path.join(run, "extra", "sizes", f"{who}.{size}.top.txt"),
                           limit=40)
            share[(who, size)] = {k: sum(p for p, dso, sym in top if pred(dso, sym))
                                  for k, pred in SAMPLE_KINDS.items()}
            ev.append(f"{S.size_label(size)} {who}: " +
                      ", ".join(f"{sym} {pct:.1f}%" for pct, _, sym in top[:6]))
    answer.append(
        "Why, from perf (`hit` case, one thread, self time by symbol, kernel included, "
        "`analysis/findings_extra.sh`), the shares of the samples: " + "; ".join(
            f"{S.size_label(sz)}: pool {share[('lockfree-ck', sz)]['cache']:.0f}% in its "
            f"thread-cache path, {share[('lockfree-ck', sz)]['store']:.0f}% in the shared "
            f"store, {share[('lockfree-ck', sz)]['kernel']:.0f}% kernel; glibc "
            f"{share[('glibc', sz)]['libc']:.0f}% in libc, "
            f"{share[('glibc', sz)]['kernel']:.0f}% kernel" for sz in PROFILED_SIZES) +
        ". Where glibc spends its time in the kernel it maps fresh pages for each malloc "
        "(page-table updates, `clear_page` zeroing the pages the touch faults in) and unmaps "
        "them at free; where it stays in libc it reuses heap chunks, through the slower "
        "paths of large chunks. Where the pool's time is in the shared store, the class is "
        "larger than the thread cache's `cache_bytes` (4 MiB), so every get and put moves "
        "the buffer through the store (question 2: such classes get no cache slots).")
    evidence = ("Self time by symbol (perf cpu-clock, kernel included):", ev)
    return answer, table, png, evidence


def f_workloads(run, rows, plot):
    table = ["| workload | " + " | ".join(BACKENDS + PEERS) + " |",
             "|---|" + "---|" * (len(BACKENDS) + len(PEERS))]
    rss_rows = []
    groups = {}
    for w in WORKLOADS:
        t, m = [], []
        for b in BACKENDS:
            p = "scale:1;api:get;config:zeropool"
            t.append(cell(rows, kind="workload", case=w, backend=b, params=p, metric="wall_s"))
            m.append(cell(rows, kind="workload", case=w, backend=b, params=p,
                          metric="peak_rss_kib"))
        for a in PEERS:
            p = "scale:1;api:get"
            t.append(cell(rows, kind="workload", case=w, backend="malloc", allocator=a, params=p,
                          metric="wall_s"))
            m.append(cell(rows, kind="workload", case=w, backend="malloc", allocator=a,
                          params=p, metric="peak_rss_kib"))
        table.append(f"| {w} time s | " + " | ".join(f"{x['median']:.3f}" for x in t) + " |")
        rss_rows.append(f"| {w} peak MiB | " +
                        " | ".join(f"{x['median'] / 1024:.1f}" for x in m) + " |")
        groups[w] = [min(x["median"] for x in t[:3]), min(x["median"] for x in t[3:])]
    table += rss_rows
    png = plot.bars("q7_workloads", "workloads at scale 1: best backend vs best malloc",
                    "wall seconds (median)", groups, ["pool", "malloc"])
    answer = ["Wall time and peak RSS at scale 1, the original programs' pool settings, "
              "medians of the run's repetitions (table). Best pool backend against best "
              "malloc: " + ", ".join(f"{w} {g[0]:.3f} vs {g[1]:.3f} s ({g[1] / g[0]:.1f}x)"
                                     for w, g in groups.items()) + "."]
    ev = []
    for w in WORKLOADS:
        for target in ("lockfree-ck", "malloc-glibc"):
            top = perf_top(os.path.join(run, "profile", f"{w}.{target}.top.txt"), limit=5)
            ev.append(f"{w} {target}: " + ", ".join(f"{sym} {pct:.1f}%" for pct, _, sym in top))
    stress = []
    for w in WORKLOADS:
        p = "scale:1;api:get;config:zeropool"
        q = {m: cell(rows, kind="workload", case=w, backend="lockfree-ck", params=p,
                     metric=m)["median"]
             for m in ("gets", "hit_rate", "fresh", "evictions", "minor_faults")}
        stress.append(f"{w}: {q['gets']:.0f} gets, {q['hit_rate'] * 100:.2f}% hits, "
                      f"{q['fresh']:.0f} fresh allocations, {q['evictions']:.0f} evictions, "
                      f"{q['minor_faults']:.0f} page faults")
    answer.append("What each stresses in the pool (lockfree-ck, the run's medians): " +
                  "; ".join(stress) + ". A workload whose gets nearly all hit measures the "
                  "thread cache; fresh allocations and evictions measure the store's bounds "
                  "and the allocator behind it.")
    evidence = ("Top symbols by self time (perf, `analysis/profile.sh`):", ev)
    return answer, table, png, evidence


# ---------------------------------------------------------------------------
# question 8: real I/O (the run's server/ and files/ stages)

def read_csv(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError as e:
        raise Missing(f"{os.path.relpath(path, ROOT)}: {e.strerror}")


def server_cells(srv, size):
    """Per configuration (backend, allocator, io) of one response size: CPU
    ns/request and p99 by round."""
    out = {}
    for r in srv:
        if int(r["size"]) != size:
            continue
        k = (r["backend"], r["allocator"], r["io"])
        out.setdefault(k, {"cpu": {}, "p99": {}})
        out[k]["cpu"][r["round"]] = float(r["cpu_ns_per_request"])
        out[k]["p99"][r["round"]] = float(r["p99_us"])
    if not out:
        raise Missing(f"server/server.csv has no {size}-byte rows")
    return out


def best(cells, pred, key):
    cand = {k: statistics.median(v[key].values()) for k, v in cells.items() if pred(k)}
    if not cand:
        raise Missing("server/server.csv lacks a configuration")
    k = min(cand, key=cand.get)
    return k, cand[k]


def round_ratios(cells, pool_pred, malloc_pred):
    """Per round: the best pool's CPU/request over the best malloc's."""
    rounds = sorted({r for v in cells.values() for r in v["cpu"]})
    out = []
    for rnd in rounds:
        p = [v["cpu"][rnd] for k, v in cells.items() if pool_pred(k) and rnd in v["cpu"]]
        m = [v["cpu"][rnd] for k, v in cells.items() if malloc_pred(k) and rnd in v["cpu"]]
        if p and m:
            out.append(min(p) / min(m))
    return out


def files_answer(run, table):
    """The files stage: O_DIRECT into pooled buffers against buffered reads
    into malloc'd ones; appends its rows to table, returns the paragraph."""
    summ = read_csv(os.path.join(run, "files", "summary.csv"))
    table += ["", "| program | pass | best O_DIRECT + pool CPU ns/byte | best buffered + malloc "
              "CPU ns/byte | ratio | page cache added MB, direct / buffered |",
              "|---|---|---|---|---|---|"]
    said = []
    for prog in ("file_pipeline", "ml_checkpoint_loader"):
        mine = [r for r in summ if r["program"] == prog]
        pool = [r for r in mine if r["kind"].endswith("+pool") and r["read_mode"] != "buffered"]
        mal = [r for r in mine if r["kind"] == "buffered+malloc"]
        if not pool or not mal:
            raise Missing(f"files/summary.csv lacks {prog}'s direct or buffered rows")
        cache_p = max(float(r["page_cache_added"]) for r in pool) / 1e6
        cache_m = min(float(r["page_cache_added"]) for r in mal) / 1e6
        passes = [("cold", "cold_cpu_ns_per_byte"), ("all", "cpu_ns_per_byte")]
        for label, col in passes:
            if col not in mine[0] or not mine[0][col]:
                continue
            bp = min(pool, key=lambda r: float(r[col]))
            bm = min(mal, key=lambda r: float(r[col]))
            ratio = float(bp[col]) / float(bm[col])
            table.append(f"| {prog} | {label} | {float(bp[col]):.3f} ({bp['config']}) | "
                         f"{float(bm[col]):.3f} ({bm['config']}) | {ratio:.2f}x | "
                         f"{cache_p:.1f} / {cache_m:.1f} |")
            said.append(f"{prog} {label} {ratio:.2f}x")
    return ["**A real file reader.** `file_pipeline` and `ml_checkpoint_loader` in their "
            "real-file mode (`bench/files_bench.py`, the matrix's `files` stage): `O_DIRECT` "
            "reads (pread, and io_uring where the row says so) into the pool's page-aligned "
            "buffers against buffered reads into malloc'd ones, the same requests in both "
            "(a read-ahead window of up to 16 chunks per request), CPU per byte read (user + "
            "system) over the best malloc peer's: " + ", ".join(said) + ". The cold pass "
            "reads each byte once from the device, as a loader reads a checkpoint; on later "
            "passes buffered reads copy from the page cache they filled (the table's last "
            "column), which `O_DIRECT` leaves as it was."]


def by_size(ratios):
    """"64 B 0.99x, 4 KiB 1.00x, ..." for {size: ratio}."""
    return ", ".join(f"{S.size_label(s)} {r:.2f}x" for s, r in ratios.items())


def f_real_io(run, rows, plot):
    srv = read_csv(os.path.join(run, "server", "server.csv"))
    idle = read_csv(os.path.join(run, "server", "idle.csv"))
    is_pool = lambda k: k[0] != "malloc" and k[2] == "epoll"  # noqa: E731
    is_malloc = lambda k: k[0] == "malloc" and k[2] == "epoll"  # noqa: E731
    is_uring = lambda k: k[2] == "uring"  # noqa: E731
    table = ["| response | best pool (epoll) CPU ns/req | best malloc CPU ns/req | pool / malloc "
             "[per round] | p99 us pool / malloc | io_uring + ring CPU ns/req | io_uring / "
             "best malloc, epoll |", "|---|---|---|---|---|---|---|"]
    groups, cpu_ratio, p99_ratio, ring_ratio = {}, {}, {}, {}
    for size in SERVER_SIZES:
        c = server_cells(srv, size)
        pk, pv = best(c, is_pool, "cpu")
        mk, mv = best(c, is_malloc, "cpu")
        _, pp = best(c, is_pool, "p99")
        _, mp = best(c, is_malloc, "p99")
        rr = round_ratios(c, is_pool, is_malloc)
        try:
            uk, uv = best(c, is_uring, "cpu")
            ring = f"{uv:.0f} ({uk[0]}) | {uv / mv:.2f}x"
            ring_ratio[size] = uv / mv
        except Missing:
            uv, ring = None, "not run | -"
        cpu_ratio[size], p99_ratio[size] = pv / mv, pp / mp
        label = S.size_label(size)
        table.append(f"| {label} | {pv:.0f} ({pk[0]}) | {mv:.0f} ({mk[1]}) | {pv / mv:.2f}x "
                     f"[{span(rr)}] | {pp:.0f} / {mp:.0f} = {pp / mp:.2f}x | {ring} |")
        groups[label] = [pv, mv, uv if uv is not None else 0.0]
    png = plot.bars("q8_server", "http_server under wrk: server CPU per request",
                    "CPU ns per request (median)", groups,
                    ["best pool, epoll", "best malloc, epoll", "pool, io_uring buffer ring"])
    answer = [
        "**A real server.** `workloads/http_server` (HTTP/1.1 keep-alive on 127.0.0.1, one "
        "worker) under `wrk -c32 --latency`, alternating rounds (`bench/server_bench.py`, the "
        "matrix's `server` stage). Server CPU per request, best pool backend against the best "
        "malloc: " + by_size(cpu_ratio) + "; p99 latency " + by_size(p99_ratio) +
        ". A request costs microseconds of system calls and TCP; the allocator's share is "
        "tens of nanoseconds, so with the same I/O model the pool and malloc are within the "
        "rounds' spread of each other (the per-round ratios in brackets; the server and wrk "
        "each run on a core of their own). What a pool changes is what it "
        "lets the server do instead: " + (
            "with io_uring multishot recv into a buffer ring the pool feeds, the CPU per "
            "request is " + by_size(ring_ratio) +
            " the epoll server with the best malloc" if ring_ratio else
            "(io_uring did not run here)") + "."]
    idle_by = {(r["backend"] == "malloc", r["buffers"], r["io"]): r for r in idle}
    per_conn = idle_by.get((True, "per-connection", "epoll"))
    if per_conn is None:
        raise Missing("server/idle.csv lacks the malloc per-connection row")
    base = float(per_conn["vmhwm_kib"])
    n = int(per_conn["idle_conns"])
    idle_txt = []
    for key, what in (((True, "pooled", "epoll"), "malloc, a buffer per read"),
                      ((False, "pooled", "epoll"), "pool, a buffer per read"),
                      ((False, "ring", "uring"), "pool, io_uring buffer ring")):
        r = idle_by.get(key)
        if r is not None:
            v = float(r["vmhwm_kib"])
            idle_txt.append(f"{what} {v / 1024:.1f} MiB ({v / base:.2f}x)")
    answer.append(
        f"**{n:,} idle keep-alive connections** (`server_bench.py --idle {n}`): peak RSS "
        f"{base / 1024:.1f} MiB with a 16 KiB malloc'd buffer per connection; " +
        "; ".join(idle_txt) + ". Taking a buffer only when data arrives bounds the memory by "
        "the requests in flight rather than by the connections; the buffer ring does the same "
        "with the kernel choosing the buffer.")
    answer += files_answer(run, table)
    return answer, table, png, None


QUESTIONS = [
    ("contention", "Contention: where does lock-free beat the mutex, and by how much?",
     f_contention),
    ("batching", "Batching: cost per pair against batch size; where do the returns stop?",
     f_batching),
    ("eviction", "Eviction: drop-newest vs drop-coldest under a tight store; what does the "
     "idle-bytes budget cost when it binds?", f_eviction),
    ("reclamation", "Reclamation: Concurrency Kit's generation-counted stack vs liburcu's "
     "grace periods", f_reclamation),
    ("safety", "Safety features and the inline handle: what does a cached pair cost?", f_safety),
    ("sizes", "Where pooling pays: pool vs malloc by buffer size", f_sizes),
    ("workloads", "The four workloads: time, peak RSS, top symbols", f_workloads),
    ("real-io", "Real I/O: what does a pool change in a real server and a real file reader?",
     f_real_io),
]

# What a question still lacks in every run of this project, said in the
# document rather than hidden.
OPEN = {}


def render(run, plots_enabled):
    rows = S.load_rows(run)
    machine = S.load_json(os.path.join(run, "machine.json"), {})
    rel = os.path.relpath(run, os.path.join(ROOT, "docs"))
    name = os.path.basename(os.path.normpath(run))
    plot = Plotter(os.path.join(run, "findings"), plots_enabled)
    out = ["# Findings", "",
           "<!-- Generated by analysis/findings.py from " + name + "; do not edit. -->", "",
           f"Every number below comes from one run of the matrix, [`{name}`]({rel}/summary.md) "
           f"({machine.get('mode', '?')} mode, {machine.get('cpus_online', '?')} CPUs, "
           f"{machine.get('cpu_model', '?')}, {machine.get('date', '?')[:10]}, commit "
           f"{str(machine.get('git_commit', '?'))[:7]}), reproduced by "
           "`bench/run_matrix.sh --full --out DIR`, `analysis/findings_extra.sh DIR` and "
           "`analysis/findings.py DIR`. Cells are "
           "medians of the run's repetitions, with [min-max] where shown; ns are per get+put "
           "pair. This machine has 2 cores: 4-thread numbers measure oversubscription as much "
           "as contention.", ""]
    missing = []
    for i, (key, q, fn) in enumerate(QUESTIONS, 1):
        out += [f"## {i}. {q}", ""]
        if fn is None:
            out += [f"Open: {OPEN[key]}", ""]
            continue
        try:
            answer, table, png, evidence = fn(run, rows, plot)
        except Missing as e:
            missing.append(f"{key}: {e}")
            out += [f"Missing data: {e}", ""]
            continue
        for a in answer:
            out += [a, ""]
        out += table + [""]
        out += [f"![{key}]({rel}/findings/{png})", ""]
        if evidence:
            out += [evidence[0], "", "```"] + evidence[1] + ["```", ""]
    return "\n".join(out).rstrip() + "\n", missing


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?",
                    help="a results directory (default: the one FILE was rendered from)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "findings.md"))
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.run is None:
        try:
            with open(a.out) as f:
                m = re.search(r"Generated by analysis/findings.py from (\S+);", f.read())
        except OSError:
            m = None
        if m is None:
            sys.exit(f"findings.py: no results directory given, and none named in {a.out}")
        a.run = os.path.join(ROOT, "results", m.group(1))
    if not os.path.exists(os.path.join(a.run, "results.csv")):
        sys.exit(f"findings.py: {a.run}/results.csv not found")
    text, missing = render(os.path.abspath(a.run), not (a.no_plots or a.check))
    if a.check:
        bad = [f"missing data: {m}" for m in missing]
        try:
            with open(a.out) as f:
                if f.read() != text:
                    bad.append(f"{a.out} differs from the rendering: rerun analysis/findings.py")
        except OSError as e:
            bad.append(f"{a.out}: {e}")
        for b in bad:
            print(f"findings.py: {b}", file=sys.stderr)
        print(f"findings.py: {len(QUESTIONS)} questions, {len(OPEN)} open, "
              f"{len(missing)} missing data")
        return 1 if bad else 0
    with open(a.out, "w") as f:
        f.write(text)
    for m in missing:
        print(f"findings.py: missing data: {m}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
