#!/usr/bin/env python3
"""Summarize and plot bench/decay_curve.sh's runs.

    analysis/decay_curve.py OUTDIR

Reads OUTDIR/params.txt (the zp_decay_curve arguments of the runs) and every
OUTDIR/*.csv (t_ms,phase,rss_kib; '#' lines are the pool's stats), writes
OUTDIR/summary.md (peak resident set, and what is left at the end of the
load, one and two decay times later and at the end, with each as a share of
the peak) and OUTDIR/decay_curve.png (RSS over time, when matplotlib is
there).  Exits 1 when a run has no samples.
"""

import csv
import glob
import os
import re
import sys


def load(path):
    rows, stats = [], ""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                stats = line[1:].strip()
    with open(path, encoding="utf-8") as f:
        for r in csv.DictReader(x for x in f if not x.startswith("#")):
            rows.append((float(r["t_ms"]), r["phase"], int(r["rss_kib"]) / 1024.0))
    return rows, stats


def at(rows, t):
    """RSS of the last sample at or before t (ms)."""
    best = rows[0][2]
    for tm, _, rss in rows:
        if tm <= t:
            best = rss
    return best


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    params = open(os.path.join(out, "params.txt"), encoding="utf-8").read()
    decay = float(re.search(r"--decay-ms (\d+)", params).group(1))
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "*.csv"))):
        rows, stats = load(path)
        if not rows:
            print(f"decay_curve.py: {path}: no samples", file=sys.stderr)
            return 1
        runs[os.path.basename(path)[:-4]] = (rows, stats)
    lines = [f"# RSS after the load stops ({params.strip()})", "",
             "MiB resident; in brackets, the share of the run's peak. "
             "`end` = first quiet sample; +1x, +2x = decay_ms later.", "",
             "| run | peak | load end | +1x decay | +2x decay | last |",
             "|---|---|---|---|---|---|"]
    for name, (rows, stats) in runs.items():
        peak = max(r[2] for r in rows)
        quiet = [r for r in rows if r[1] == "quiet"]
        t_end = quiet[0][0] if quiet else rows[-1][0]
        cells = [at(rows, t_end), at(rows, t_end + decay), at(rows, t_end + 2 * decay), rows[-1][2]]
        lines.append(f"| {name} | {peak:.1f} | " +
                     " | ".join(f"{v:.1f} ({100 * v / peak:.0f}%)" for v in cells) + " |")
    lines.append("")
    for name, (rows, stats) in runs.items():
        if stats:
            lines.append(f"- {name}: {stats}")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("decay_curve.py: no matplotlib, no plot", file=sys.stderr)
        return 0
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, (rows, _) in runs.items():
        ax.plot([r[0] / 1000 for r in rows], [r[2] for r in rows], label=name)
    first = next(iter(runs.values()))[0]
    quiet = [r for r in first if r[1] == "quiet"]
    if quiet:
        for k, style in ((0, "-"), (1, "--"), (2, ":")):
            ax.axvline((quiet[0][0] + k * decay) / 1000, color="grey", linestyle=style)
    ax.set_xlabel("seconds (grey: load end, +decay_ms, +2 x decay_ms)")
    ax.set_ylabel("resident set, MiB")
    ax.set_title("RSS after the load stops")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "decay_curve.png"), dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
