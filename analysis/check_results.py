#!/usr/bin/python3
"""check_results.py - check that a results directory is complete.

    analysis/check_results.py RESULTS_DIR

Checks, against RESULTS_DIR/machine.json (what the run was asked to do):
  - results.csv has rows for every registered backend x micro case (every
    thread count for the threaded cases, both eviction policies, the
    default configuration and the tuned store:N variant), for the malloc
    peer under every allocator and for the TLS-stack floor;
  - hit-path timings and callgrind instruction counts for every backend;
  - every workload that was built x every backend (with every --config the
    run asked for) and malloc/allocator has wall time and peak RSS (skipped,
    with a note, when no workload driver was built);
  - when the server stage ran (machine.json's stage_seconds), server/server.csv
    has a row for every backend and for malloc, and summary.md links it;
  - when the files stage ran, files/summary.csv exists and summary.md links it;
  - errors.json is empty;
  - summarize.py wrote summary.md with its tables and valid PNG plots.
Exit status 0 when all hold, 1 otherwise (each problem is printed).
"""

import csv
import json
import os
import sys
from collections import defaultdict

POOL_CASES = ["hit", "handle_hit", "backend", "working_set", "batch", "prodcons", "evict",
              "idle_budget", "mixed_server"]
THREADED_POOL_CASES = ["hit", "handle_hit", "backend", "working_set"]
# Run at 1 and every asked thread count, except in the smoke matrix (2 only).
MIXED_CASES = ["mixed_server"]
# Pool cases run with the default configuration and, as a second row named
# store:<max_per_class>, with a bigger store.
TUNED_POOL_CASES = ["working_set", "batch", "prodcons", "idle_budget"]
MALLOC_CASES = ["hit", "working_set", "prodcons", "mixed_server"]
HIT_LABELS = ["get", "call", "get_static", "handle", "backend"]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    problems = []

    def need(cond, msg):
        if not cond:
            problems.append(msg)

    try:
        with open(os.path.join(d, "machine.json")) as f:
            machine = json.load(f)
        with open(os.path.join(d, "results.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError) as e:
        print(f"check_results: cannot read {d}: {e}")
        return 1
    backends = machine.get("backends") or []
    allocators = machine.get("allocators") or ["glibc"]
    threads = machine.get("threads") or [1]
    skipped = set(machine.get("skipped_stages") or [])
    bins = machine.get("binaries") or {}
    need(backends, "machine.json names no backends")

    # index: (kind, backend, allocator, case) -> set of (threads, params, metric)
    idx = defaultdict(set)
    for r in rows:
        idx[(r["kind"], r["backend"], r["allocator"], r["case"])].add(
            (int(r["threads"] or 0), r["params"], r["metric"]))

    def have(kind, backend, case, metric, allocator=None, threads=None, param=None,
             no_key=None):
        """param: a k:v the row's params must have; no_key: a key they must not."""
        for (k, b, a, c), s in idx.items():
            if k != kind or b != backend or c != case or (allocator and a != allocator):
                continue
            for t, p, m in s:
                ps = p.split(";")
                if m == metric and (threads is None or t == threads) and \
                        (param is None or param in ps) and \
                        (no_key is None or not any(x.startswith(no_key + ":") for x in ps)):
                    return True
        return False

    if "micro" not in skipped:
        for be in backends:
            for case in POOL_CASES:
                need(have("micro", be, case, "items_per_second"),
                     f"micro: no rows for pool/{be}/{case}")
            for case in THREADED_POOL_CASES:
                for t in threads:
                    need(have("micro", be, case, "items_per_second", threads=t),
                         f"micro: no rows for pool/{be}/{case} at {t} threads")
            for case in TUNED_POOL_CASES:
                need(have("micro", be, case, "items_per_second", no_key="store"),
                     f"micro: no default-configuration rows for pool/{be}/{case}")
                need(have("micro", be, case, "items_per_second", param="store:4096"),
                     f"micro: no store:4096 rows for pool/{be}/{case}")
            mixed_threads = [2] if machine.get("mode") == "smoke" else sorted({1, *threads})
            for case in MIXED_CASES:
                for t in mixed_threads:
                    need(have("micro", be, case, "items_per_second", threads=t),
                         f"micro: no rows for pool/{be}/{case} at {t} threads")
            for pol in ("coldest", "newest"):
                need(have("micro", be, "evict", "items_per_second", param=f"policy:{pol}"),
                     f"micro: no rows for pool/{be}/evict policy {pol}")
            even = [t for t in threads if t % 2 == 0] or [2]
            for t in even:
                need(have("micro", be, "prodcons", "items_per_second", threads=t),
                     f"micro: no rows for pool/{be}/prodcons at {t} threads")
        for a in allocators:
            for case in MALLOC_CASES:
                need(have("micro", "malloc", case, "items_per_second", allocator=a),
                     f"micro: no rows for malloc/{a}/{case}")
        need(have("micro", "tls_stack", "hit", "items_per_second"), "micro: no tls_stack rows")
    if "hitpath" not in skipped:
        for be in backends:
            for lab in HIT_LABELS:
                need(have("micro", be, f"hitpath_{lab}", "ns_per_pair"),
                     f"hitpath: no ns_per_pair for {be} {lab}")
    if "callgrind" not in skipped:
        for be in backends:
            for lab in HIT_LABELS:
                need(have("micro", be, f"hitpath_{lab}", "instructions_per_pair"),
                     f"callgrind: no instructions_per_pair for {be} {lab}")
    if "workloads" not in skipped:
        built = [w for w in machine.get("workloads") or [] if bins.get(w)]
        if not built:
            print("check_results: no workload driver was built; workload checks skipped")
        # Runs from before the drivers' --config have no config: in params.
        configs = machine.get("workload_configs") or [None]
        for w in built:
            for be in backends:
                for cfg in configs:
                    for m in ("wall_s", "peak_rss_kib"):
                        need(have("workload", be, w, m, param=cfg and f"config:{cfg}"),
                             f"workloads: no {m} for {w} on {be}"
                             + (f" with --config {cfg}" if cfg else ""))
            for a in allocators:
                for m in ("wall_s", "peak_rss_kib"):
                    need(have("workload", "malloc", w, m, allocator=a),
                         f"workloads: no {m} for {w} on malloc/{a}")

    if "server" in (machine.get("stage_seconds") or {}):
        seen = set()
        try:
            with open(os.path.join(d, "server", "server.csv"), newline="") as f:
                seen = {r["backend"] for r in csv.DictReader(f)}
        except (OSError, KeyError):
            problems.append("server: server/server.csv missing or unreadable")
        for b in list(backends[:1] if machine.get("mode") == "smoke" else backends) + ["malloc"]:
            need(b in seen, f"server: no row for {b} in server/server.csv")

    if "files" in (machine.get("stage_seconds") or {}):
        need(os.path.isfile(os.path.join(d, "files", "summary.csv")),
             "files: files/summary.csv missing")

    try:
        with open(os.path.join(d, "errors.json")) as f:
            errs = json.load(f)
    except (OSError, ValueError):
        errs = [{"what": "errors.json missing or unreadable"}]
    for e in errs:
        problems.append(f"run error: [{e.get('stage')}] {e.get('what')}")

    if "summary" not in skipped:
        sm = os.path.join(d, "summary.md")
        try:
            with open(sm) as f:
                text = f.read()
        except OSError:
            text = ""
            problems.append("summary.md missing")
        for title, stage in (("## Hit path", "hitpath"), ("## Micro-benchmarks", "micro")):
            if stage not in skipped:
                need(title in text, f"summary.md lacks '{title}'")
        if "workloads" not in skipped and any(bins.get(w) for w in machine.get("workloads", [])):
            need("## Workloads: wall time" in text, "summary.md lacks the workload table")
        if "server" in (machine.get("stage_seconds") or {}):
            need("## A real server" in text, "summary.md does not link server/summary.md")
        if "files" in (machine.get("stage_seconds") or {}):
            need("## Real files" in text, "summary.md does not link files/summary.md")
        pngs = [] if "micro" in skipped else ["ns_vs_size.png", "throughput_vs_threads.png"]
        if "workloads" not in skipped and any(bins.get(w) for w in machine.get("workloads", [])):
            pngs += ["workloads_time.png", "workloads_rss.png"]
        for p in pngs:
            path = os.path.join(d, "plots", p)
            try:
                with open(path, "rb") as f:
                    ok = f.read(8) == b"\x89PNG\r\n\x1a\n"
            except OSError:
                ok = False
            need(ok, f"plot missing or not a PNG: plots/{p}")

    if problems:
        print(f"check_results: {len(problems)} problem(s) in {d}:")
        for p in problems:
            print("  - " + p)
        return 1
    n_micro = sum(1 for r in rows if r["kind"] == "micro")
    n_wl = sum(1 for r in rows if r["kind"] == "workload")
    print(f"check_results: OK ({len(rows)} rows: {n_micro} micro, {n_wl} workload; "
          f"{len(backends)} backends, allocators {','.join(allocators)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
