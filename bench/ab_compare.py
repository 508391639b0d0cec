#!/usr/bin/env python3
"""Side-by-side comparison of the hit path: this working tree against an
earlier revision, with the malloc peers, in one run, alternating rounds.

    bench/ab_compare.py [--base REV] [--rounds N] [--filter REGEX] [--out DIR]

Builds REV (default HEAD) in build/ab-<rev> from a `git worktree` and this
tree in build/ab-this (Release, the default configuration), then runs N
rounds (default 7); each round runs, in turn:

  * zp_hitpath --path get, --path call and --path handle (64 B, pinned to
    CPU 0) of the base and of this tree (the header's macros, the exported
    functions, the handle: issue 23 has a target for each), and --path
    malloc under each peer allocator
    (glibc, jemalloc, mimalloc, tcmalloc; LD_PRELOAD, as run_matrix does);
  * with --filter, the zp_bench rows whose name matches (pool rows of the
    default backend of both builds, and the same rows' malloc peers).

Prints per row the median of the rounds, the new/base ratio and the ratio
to the fastest malloc of the same rows; --out DIR also keeps every sample
(samples.csv), the table (summary.txt) and the machine (machine.txt: lscpu,
the two commits).  Ratios measured here are what docs/design.md quotes for
a layout or ordering; the machine is shared and noisy, so read medians and
ratios from one run, never absolute times across runs.
"""
import argparse
import collections
import csv
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import run_matrix  # noqa: E402  (the allocator table, find_lib, preload_env)

PEERS = ["glibc", "jemalloc", "mimalloc", "tcmalloc"]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def build(src, bdir, targets):
    sh(["cmake", "-S", src, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release", "-DZP_BUILD_WORKLOADS=OFF"],
       stdout=subprocess.DEVNULL)
    sh(["cmake", "--build", bdir, "-j2", "--target"] + targets, stdout=subprocess.DEVNULL)


def base_build(rev, targets):
    """Build `rev` from a worktree under build/; returns its build dir and commit."""
    commit = sh(["git", "-C", REPO, "rev-parse", "--verify", rev + "^{commit}"],
                capture_output=True).stdout.strip()
    src = os.path.join(REPO, "build", "ab-src-" + commit[:12])
    if not os.path.isdir(src):
        sh(["git", "-C", REPO, "worktree", "add", "--detach", src, commit],
           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bdir = os.path.join(REPO, "build", "ab-" + commit[:12])
    build(src, bdir, targets)
    return bdir, commit


def hitpath(bdir, path, env=None):
    out = subprocess.run([os.path.join(bdir, "bench", "zp_hitpath"), "--path", path, "--size", "64",
                          "--cpu", "0", "--reps", "5", "--json"] +
                         ([] if path == "malloc" else ["--backend", "lockfree-ck"]),
                         env=env, capture_output=True, text=True, check=True).stdout
    return [json.loads(line)["median_ns"] for line in out.splitlines() if line.startswith("{")][0]


def bench_rows(bdir, flt, env=None):
    out = subprocess.run([os.path.join(bdir, "bench", "zp_bench"), "--benchmark_filter=" + flt,
                          "--benchmark_min_time=0.1", "--benchmark_format=json"],
                         env=env, capture_output=True, text=True, check=True).stdout
    rows = {}
    for b in json.loads(out)["benchmarks"]:
        name = re.sub(r"^(pool|malloc)/[^/]+/", "", b["name"]).replace("/manual_time", "")
        rows[name] = b.get("ns_per_pair", b["real_time"])
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="HEAD", help="revision to compare against (default HEAD)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--filter", default="", help="zp_bench rows of the pool (regex on the name "
                    "after pool/BACKEND/, e.g. 'working_set/size:64/keep:16/manual_time/threads:1$')")
    ap.add_argument("--out", help="directory for samples.csv, summary.txt, machine.txt")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    targets = ["zp_hitpath", "zp_bench"]
    print(f"ab_compare: building {args.base} and this tree", file=sys.stderr)
    bdir, commit = base_build(args.base, targets)
    new = os.path.join(REPO, "build", "ab-this")  # not build/release: its options stay the user's
    build(REPO, new, targets)
    envs = {p: run_matrix.preload_env(p) for p in PEERS}
    envs = {p: e for p, e in envs.items() if e is not None}
    pool_flt = "pool/lockfree-ck/(" + args.filter + ")" if args.filter else ""
    peer_flt = "malloc/[^/]+/(" + args.filter + ")" if args.filter else ""

    samples = collections.defaultdict(list)  # (row, who) -> [ns]
    for r in range(args.rounds):
        print(f"ab_compare: round {r + 1}/{args.rounds}", file=sys.stderr)
        for who, d in (("base", bdir), ("new", new)):
            for path in ("get", "call", "handle"):
                samples[("hitpath/" + path, who)].append(hitpath(d, path))
            if pool_flt:
                for row, v in bench_rows(d, pool_flt).items():
                    samples[(row, who)].append(v)
        for peer, env in envs.items():
            samples[("hitpath/malloc", peer)].append(hitpath(bdir, "malloc", env))
            if peer_flt:
                for row, v in bench_rows(bdir, peer_flt, env).items():
                    samples[(row, peer)].append(v)

    rows = sorted({k[0] for k in samples})
    lines = [f"base {commit[:12]} vs this tree; medians of {args.rounds} alternating rounds "
             "(ns per get+put pair, zp_bench: per iteration); fastest rounds = the ratio of the "
             "two builds' fastest rounds (a process can land in a slow mode for all its rows: "
             "docs/benchmarks.md); best = the fastest malloc in the row (medians)"]
    for row in rows:
        med = {who: statistics.median(v) for (r, who), v in samples.items() if r == row}
        peers_of_row = {p: med[p] for p in envs if p in med}
        if row.startswith("hitpath/"):  # the peers' malloc+free pair is one row
            peers_of_row = {p: statistics.median(samples[("hitpath/malloc", p)]) for p in envs}
            if row == "hitpath/malloc":
                continue
        best = min(peers_of_row.values()) if peers_of_row else None
        bp = min(peers_of_row, key=peers_of_row.get) if peers_of_row else "-"
        lo = {who: min(v) for (r, who), v in samples.items() if r == row}
        cells = (f"base {med['base']:8.2f}  new {med['new']:8.2f}  new/base {med['new'] / med['base']:.2f}"
                 f"  (fastest rounds {lo['new'] / lo['base']:.2f})")
        if best:
            cells += (f"  best {bp} {best:8.2f}  base/best {med['base'] / best:.2f}"
                      f"  new/best {med['new'] / best:.2f}")
        lines.append(f"{row:55s} {cells}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "summary.txt"), "w") as f:
            f.write(text)
        with open(os.path.join(args.out, "samples.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["row", "who", "round", "ns_per_pair"])
            for (row, who), v in sorted(samples.items()):
                for i, x in enumerate(v):
                    w.writerow([row, who, i, f"{x:.4f}"])
        head = sh(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True).stdout.strip()
        dirty = sh(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                   capture_output=True).stdout.strip()
        lscpu = sh(["lscpu"], capture_output=True).stdout
        with open(os.path.join(args.out, "machine.txt"), "w") as f:
            f.write(f"base: {commit}\nnew: {head}{' (with uncommitted changes)' if dirty else ''}\n"
                    f"command: {' '.join(sys.argv)}\n\n{lscpu}")


if __name__ == "__main__":
    main()
