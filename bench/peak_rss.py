#!/usr/bin/env python3
"""Peak RSS and wall time of the workloads, pool beside the malloc peers.

    bench/peak_rss.py [--rounds N] [--workloads a,b] [--build DIR] OUTDIR

For each workload (default stress_test and network_server, scale 1) runs,
in alternating rounds so that every variant samples the same stretch of a
noisy machine: the pool with the workload's own settings (its default),
the pool with the library's defaults (--config defaults), and the same work
on plain malloc: glibc, then jemalloc, tcmalloc and mimalloc by LD_PRELOAD
(those not installed are skipped).  Peak RSS is ru_maxrss from
bench/zp_rusage (docs/benchmarks.md, "Methodology").  Writes OUTDIR/peak.csv
(one row per run), OUTDIR/summary.md (medians, ranges, and each pool row's
ratio to the lowest malloc median of its workload) and OUTDIR/machine.txt.
Standard library only.
"""

import argparse
import csv
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the matrix's allocator table, library lookup and zp_rusage runner
from run_matrix import ALLOCATORS, find_lib, run_measured  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = ["jemalloc", "tcmalloc", "mimalloc"]


def variants(build, workload):
    prog = os.path.join(build, "workloads", workload)
    v = [("pool", [prog], None), ("pool-defaults", [prog, "--config", "defaults"], None),
         ("glibc", [prog, "--backend", "malloc"], None)]
    for name in PEERS:
        path = find_lib(ALLOCATORS[name])
        if path is None:
            print(f"peak_rss.py: {name} not found, skipped", file=sys.stderr)
            continue
        env = dict(os.environ, LD_PRELOAD=path)
        v.append((name, [prog, "--backend", "malloc"], env))
    return v


def run_one(rusage, cmd, env):
    rc, _, err, usage, wall = run_measured(cmd + ["--quiet"], rusage, env=env, timeout=600)
    if rc != 0 or usage is None:
        sys.exit(f"peak_rss.py: {' '.join(cmd)} failed ({rc}): {err[-500:]}")
    return usage["maxrss_kib"] / 1024.0, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--workloads", default="stress_test,network_server")
    ap.add_argument("--build", default=os.environ.get("ZP_BUILD_DIR",
                                                      os.path.join(ROOT, "build", "release")))
    a = ap.parse_args()
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    rusage = os.path.join(a.build, "bench", "zp_rusage")
    if not os.access(rusage, os.X_OK):
        sys.exit(f"peak_rss.py: build first ({rusage} missing)")
    os.makedirs(a.outdir, exist_ok=True)
    rows = []
    for wl in a.workloads.split(","):
        vs = variants(a.build, wl)
        for r in range(a.rounds):
            print(f"peak_rss.py: {wl} round {r + 1}/{a.rounds}", file=sys.stderr)
            for name, cmd, env in vs:
                mib, wall = run_one(rusage, cmd, env)
                rows.append({"workload": wl, "variant": name, "round": r + 1,
                             "peak_mib": round(mib, 2), "wall_s": round(wall, 3)})
    with open(os.path.join(a.outdir, "peak.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], text=True,
                            capture_output=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD", "--", "lib"]).returncode
    with open(os.path.join(a.outdir, "machine.txt"), "w") as f:
        f.write(f"commit {commit}{' (lib/ modified)' if dirty else ''}\n")
        f.write(f"cpus {os.cpu_count()}, kernel {os.uname().release}\n")
    lines = ["# Peak RSS of the workloads at scale 1", "",
             f"`bench/peak_rss.py --rounds {a.rounds}`: {a.rounds} alternating rounds; "
             "medians, [min-max]. `pool` runs the workload's own settings (its default), "
             "`pool-defaults` the library's defaults; ratio: a pool row's median peak over the "
             "lowest malloc median of the same workload.", ""]
    for wl in a.workloads.split(","):
        sel = [x for x in rows if x["workload"] == wl]
        names = list(dict.fromkeys(x["variant"] for x in sel))
        med = {n: statistics.median(x["peak_mib"] for x in sel if x["variant"] == n)
               for n in names}
        best = min((n for n in names if not n.startswith("pool")), key=lambda n: med[n])
        lines += [f"## {wl}", "", "| variant | peak RSS MiB | range | wall s | ratio to best malloc |",
                  "|---|---|---|---|---|"]
        for n in names:
            p = [x["peak_mib"] for x in sel if x["variant"] == n]
            t = [x["wall_s"] for x in sel if x["variant"] == n]
            ratio = f"{med[n] / med[best]:.2f}x ({best})" if n.startswith("pool") else ""
            lines.append(f"| {n} | {med[n]:.1f} | {min(p):.1f}-{max(p):.1f} | "
                         f"{statistics.median(t):.3f} | {ratio} |")
        lines.append("")
    with open(os.path.join(a.outdir, "summary.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
