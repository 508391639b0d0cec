#!/usr/bin/python3
"""Real-file reads: O_DIRECT into pooled buffers against buffered reads into
malloc'd buffers (docs/workloads.md, "Real files").

    /usr/bin/python3 bench/files_bench.py --out DIR [--quick | --full]
        [--build-dir build/release] [--dir auto|DIR] [--rounds N]

Runs file_pipeline and ml_checkpoint_loader in their real-file mode
(--files): O_DIRECT + pool on every backend (the library's default first),
and buffered + malloc under glibc, jemalloc, mimalloc and tcmalloc
(LD_PRELOAD, as bench/run_matrix.py does; a peer whose library is missing
is left out and said so).  Rounds alternate: each round runs every
configuration once, so slow drift of the machine falls on all of them.
Per configuration the medians of CPU time per byte read (getrusage user +
sys over the reads), throughput, peak RSS and the page cache the files
gained; the ratio is CPU/byte over the best buffered + malloc peer's.

--quick (the default): about 200 MB and 160 MB read per run, 3 rounds,
under a minute on 2 cores.  --full: about 1 GiB read per run and driver,
5 rounds.  Writes raw.csv (every run), summary.csv and summary.md into
--out.  Standard library only.
"""

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_matrix import ALLOCATORS, preload_env  # noqa: E402  (the LD_PRELOAD table)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = ("file_pipeline", "ml_checkpoint_loader")
# --scale per mode: file_pipeline reads its files 3 times (5 files of
# 68 MB in all at 0.01; 25 files, 1.02 GB read at 0.05); ml_checkpoint_loader
# scales epochs and shard sizes (2 epochs of 81 MB at 0.002; 5 of 201 MB
# at 0.0054).
SCALES = {
    "quick": {"file_pipeline": 0.01, "ml_checkpoint_loader": 0.002},
    "full": {"file_pipeline": 0.05, "ml_checkpoint_loader": 0.0054},
}
ROUNDS = {"quick": 3, "full": 5}
FIELDS = ("cpu_ns_per_byte", "throughput_mb_s", "peak_rss_bytes", "page_cache_added",
          "bytes_read", "cpu_s", "read_s")


def log(msg):
    print("[files_bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def backends(binary):
    """The built backends, the library's default first (from --help)."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    names, default = [], None
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("one of:"):
            names = [n.strip() for n in s[len("one of:"):].split(",") if n.strip() != "malloc"]
        elif s.startswith("default: the library's"):
            default = s.rsplit("else ", 1)[-1].rstrip(")")
    env_default = os.environ.get("ZP_BACKEND")
    default = env_default if env_default in names else default
    if default in names:
        names.remove(default)
        names.insert(0, default)
    return names


def configs(binary):
    """(label, driver args, environment, kind)."""
    out = []
    for b in backends(binary):
        out.append(("direct+" + b, ["--read", "direct", "--backend", b], None, "direct+pool"))
    for peer in ("glibc", "jemalloc", "mimalloc", "tcmalloc"):
        env = preload_env(peer)
        if env is None:
            log("peer %s: none of %s installed, left out" % (peer, ALLOCATORS[peer]))
            continue
        if peer == "glibc":
            env.pop("LD_PRELOAD", None)
        out.append(("buffered+malloc(%s)" % peer, ["--read", "buffered", "--backend", "malloc"],
                    env, "buffered+malloc"))
    return out


def run_one(binary, scale, args, env, files_dir):
    cmd = [binary, "--scale", str(scale), "--files", files_dir, "--json", "--quiet"] + args
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr[-500:]))
    doc = json.loads(p.stdout)
    rf = doc["real_files"]
    row = {k: rf[k] for k in FIELDS}
    row["cold_cpu_ns_per_byte"] = rf.get("cold_cpu_ns_per_byte")
    row.update(read_mode=rf["read_mode"], backend=doc["backend"], allocator=doc["allocator"],
               fs_type=rf["fs_type"], dir=os.path.dirname(rf["dir"]), wall_s=doc["wall_s"])
    return row


def machine(files_dir):
    cpu = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    where = "/var/tmp" if files_dir == "auto" else files_dir
    if files_dir == "auto" and os.environ.get("TMPDIR"):
        where = os.environ["TMPDIR"]
    df = subprocess.run(["df", "-T", where], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(), "dir": where,
            "df": df}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick")
    mode.add_argument("--full", action="store_const", dest="mode", const="full")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build", "release"))
    ap.add_argument("--dir", default="auto", help="--files of the drivers (default auto)")
    ap.add_argument("--rounds", type=int)
    args = ap.parse_args()
    args.mode = args.mode or "quick"
    rounds = args.rounds or ROUNDS[args.mode]
    if rounds < 1:
        ap.error("--rounds must be at least 1")
    os.makedirs(args.out, exist_ok=True)
    bins = {p: os.path.join(args.build_dir, "workloads", p) for p in PROGRAMS}
    for p, b in bins.items():
        if not os.access(b, os.X_OK):
            sys.exit("no %s: build first (cmake --preset release && cmake --build "
                     "--preset release)" % b)

    info = machine(args.dir)
    log("%s, %s cores; files in %s" % (info["cpu"], info["nproc"], info["dir"]))
    rows = []
    start = time.time()
    for prog in PROGRAMS:
        scale = SCALES[args.mode][prog]
        cfgs = configs(bins[prog])
        for r in range(rounds):
            # Alternate: every configuration once per round, the order
            # reversed every other round.
            order = cfgs if r % 2 == 0 else list(reversed(cfgs))
            for label, extra, env, kind in order:
                row = run_one(bins[prog], scale, extra, env, args.dir)
                row.update(program=prog, config=label, kind=kind, round=r, scale=scale)
                rows.append(row)
                log("%s %s round %d: %.3f ns/B, %.0f MB/s, %s" % (
                    prog, label, r + 1, row["cpu_ns_per_byte"], row["throughput_mb_s"],
                    row["read_mode"]))
    elapsed = time.time() - start

    raw_keys = ["program", "config", "kind", "round", "scale", "backend", "allocator",
                "read_mode", "fs_type", "dir", "wall_s"] + list(FIELDS) + ["cold_cpu_ns_per_byte"]
    with open(os.path.join(args.out, "raw.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=raw_keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

    summary = []
    for prog in PROGRAMS:
        labels = []
        for row in rows:
            if row["program"] == prog and row["config"] not in labels:
                labels.append(row["config"])
        med = {}
        for label in labels:
            rs = [x for x in rows if x["program"] == prog and x["config"] == label]
            m = {k: statistics.median(x[k] for x in rs) for k in FIELDS}
            colds = [x["cold_cpu_ns_per_byte"] for x in rs if x["cold_cpu_ns_per_byte"] is not None]
            m["cold_cpu_ns_per_byte"] = statistics.median(colds) if colds else None
            m.update(program=prog, config=label, kind=rs[0]["kind"], runs=len(rs),
                     read_mode=sorted({x["read_mode"] for x in rs}))
            med[label] = m
        peers = [m["cpu_ns_per_byte"] for m in med.values() if m["kind"] == "buffered+malloc"]
        best = min(peers) if peers else None
        cold_peers = [m["cold_cpu_ns_per_byte"] for m in med.values()
                      if m["kind"] == "buffered+malloc" and m["cold_cpu_ns_per_byte"]]
        cold_best = min(cold_peers) if cold_peers else None
        for m in med.values():
            m["ratio_to_best_buffered_malloc"] = (m["cpu_ns_per_byte"] / best
                                                  if best else float("nan"))
            m["cold_ratio"] = (m["cold_cpu_ns_per_byte"] / cold_best
                               if cold_best and m["cold_cpu_ns_per_byte"] else None)
            summary.append(m)

    sum_keys = ["program", "config", "kind", "runs", "read_mode", "cpu_ns_per_byte",
                "ratio_to_best_buffered_malloc", "cold_cpu_ns_per_byte", "cold_ratio",
                "throughput_mb_s", "peak_rss_bytes", "page_cache_added", "bytes_read"]
    with open(os.path.join(args.out, "summary.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=sum_keys, extrasaction="ignore")
        w.writeheader()
        for m in summary:
            w.writerow(dict(m, read_mode="; ".join(m["read_mode"])))

    lines = ["# Real-file reads: O_DIRECT + pool vs buffered + malloc (%s)" % args.mode, "",
             "CPU: %s, %s cores, kernel %s. Files in %s:" % (info["cpu"], info["nproc"],
                                                               info["kernel"], info["dir"]),
             "", "```", info["df"], "```", "",
             "%d rounds, alternating; medians. CPU/byte is getrusage user+sys over the reads "
             "divided by the bytes read; the ratio is to the best buffered + malloc peer. "
             "Page cache added: the files' resident bytes (mincore) after the reads minus "
             "before. Cold: file_pipeline's run 1 alone, which reads every file once with "
             "none of it cached (each file's pages were let go after it was written); runs "
             "2 and 3 of buffered reads come from the page cache. %.0f s in all."
             % (rounds, elapsed), ""]
    for prog in PROGRAMS:
        ms = [m for m in summary if m["program"] == prog]
        lines += ["## %s (--scale %g, %.0f MB read per run)" % (
            prog, SCALES[args.mode][prog], ms[0]["bytes_read"] / 1e6), "",
            "| configuration | read mode | CPU ns/byte | ratio | cold CPU ns/byte | cold ratio "
            "| MB/s | peak RSS MiB | page cache added MB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m in ms:
            cold = m["cold_cpu_ns_per_byte"]
            lines.append("| %s | %s | %.3f | %.2f | %s | %s | %.0f | %.1f | %.1f |" % (
                m["config"], "; ".join(m["read_mode"]), m["cpu_ns_per_byte"],
                m["ratio_to_best_buffered_malloc"],
                "%.3f" % cold if cold else "-",
                "%.2f" % m["cold_ratio"] if m["cold_ratio"] else "-", m["throughput_mb_s"],
                m["peak_rss_bytes"] / 2**20, m["page_cache_added"] / 1e6))
        lines.append("")
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(args.out, "machine.json"), "w") as f:
        json.dump(info, f, indent=1)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
