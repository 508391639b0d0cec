#!/usr/bin/python3
"""Drive workloads/http_server with wrk: every pool backend and malloc under
glibc, jemalloc, mimalloc and tcmalloc, for 64 B, 4 KiB and 64 KiB responses.

    bench/server_bench.py [--quick | --full | --smoke] [--rounds N] [--out DIR] [--idle N]

Each run starts the server on an ephemeral port of 127.0.0.1 (--port-file),
runs `wrk -t1 -cC -dSs --latency -s bench/server_wrk.lua URL` (bounded by
-d and a timeout), stops the server with SIGTERM and reads its JSON report.
Rounds alternate the configurations (A B C A B C ...); the summary takes
medians.  The server's CPU time per request (getrusage, user + sys) is the
main figure: on a 2-core machine wrk shares the CPUs, and requests/s
follows whichever process the scheduler favours, while the server's own
CPU per request does not.  Where there are more CPUs than server threads,
the server runs on the last --threads CPUs this process may use and wrk on
the others (sched_setaffinity; --no-pin leaves both to the scheduler), so
that the two never queue behind each other on one core and p99 measures
the server rather than the scheduler.

Where the server has the io_uring model (--io uring: built with liburing,
and the kernel allows io_uring), the default backend also runs with
--io uring (multishot recv into a buffer ring per worker); every other row
is --io epoll.

--idle N compares peak RSS with N idle keep-alive connections: a read
buffer per connection (malloc) against buffers taken per read (pool and
malloc), and the io_uring buffer ring where there is one.  Writes DIR/server.csv, DIR/idle.csv (with --idle) and
DIR/summary.md.  Standard library only.
"""

import argparse
import csv
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from run_matrix import ALLOCATORS, cpu_model, driver_backends, preload_env  # noqa: E402

LUA = os.path.join(HERE, "server_wrk.lua")
SIZES = [64, 4096, 65536]
MODES = {
    # duration of each wrk run (s), rounds
    "smoke": dict(duration=1, rounds=1),
    "quick": dict(duration=1, rounds=2),
    "full": dict(duration=5, rounds=5),
}
UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}
FIELDS = ["round", "backend", "allocator", "io", "size", "requests_per_s", "p50_us", "p75_us",
          "p90_us", "p99_us", "p999_us", "requests", "cpu_ns_per_request", "vmhwm_kib",
          "maxrss_kib", "hit_rate"]
IDLE_FIELDS = ["backend", "buffers", "io", "idle_conns", "rss_base_kib", "rss_idle_kib",
               "vmhwm_kib", "maxrss_kib", "read_buffers_peak"]


def log(msg):
    print("[server_bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def cpu_split(threads, pin):
    """(server CPUs, client CPUs), or (None, None) where they are not pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) <= threads:
        return None, None
    return cpus[-threads:], cpus[:-threads]


def pinned(cpus):
    """A preexec_fn that binds the child to cpus (None: not at all)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def start_server(args, backend, env, extra, duration):
    fd, port_file = tempfile.mkstemp(prefix="zp_srv_port_")
    os.close(fd)
    os.unlink(port_file)
    cmd = [args.server, "--backend", backend, "--threads", str(args.threads), "--port", "0",
           "--port-file", port_file, "--duration", str(duration), "--json", "--quiet"] + extra
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=pinned(args.server_cpus))
    deadline = time.time() + 10
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError("server did not start: %s" % err.strip())
        time.sleep(0.01)
    with open(port_file) as f:
        port = int(f.read())
    os.unlink(port_file)
    return proc, port


def stop_server(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError("server exit %d: %s" % (proc.returncode, err.strip()))
    return json.loads(out)


def parse_wrk(text):
    """requests/s and latency percentiles (us) from wrk --latency output."""
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m is None:
        raise RuntimeError("no Requests/sec in wrk output: %r" % text[-400:])
    r["requests_per_s"] = float(m.group(1))
    for pct, key in (("50", "p50_us"), ("75", "p75_us"), ("90", "p90_us"), ("99", "p99_us")):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, text, re.M)
        if m is None:
            raise RuntimeError("no %s%% latency in wrk output" % pct)
        r[key] = float(m.group(1)) * UNITS[m.group(2)]
    m = re.search(r"^p99\.9_us ([\d.]+)", text, re.M)
    if m is None:
        raise RuntimeError("no p99.9 line (server_wrk.lua) in wrk output")
    r["p999_us"] = float(m.group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors is not None:
        raise RuntimeError("wrk saw %s non-2xx responses" % errors.group(1))
    return r


def has_uring(server, backend):
    """Whether --io uring runs here: built in, and the kernel allows it."""
    p = subprocess.run([server, "--backend", backend, "--io", "uring", "--self-test", "1",
                        "--duration", "10", "--quiet"], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        why = p.stderr.strip().splitlines() or ["exit %d" % p.returncode]
        log("--io uring left out: %s" % why[0])
    return p.returncode == 0


def run_one(args, backend, alloc, io, size, rnd):
    env = preload_env(alloc)
    secs = args.duration
    proc, port = start_server(args, backend, env, ["--buffers", "pooled", "--io", io], secs + 20)
    try:
        wrk = subprocess.run([args.wrk, "-t1", "-c%d" % args.connections, "-d%ds" % secs,
                              "--latency", "-s", LUA, "http://127.0.0.1:%d/%d" % (port, size)],
                             capture_output=True, text=True, timeout=secs + 30,
                             preexec_fn=pinned(args.client_cpus))
    finally:
        doc = stop_server(proc)
    if wrk.returncode != 0:
        raise RuntimeError("wrk exit %d: %s" % (wrk.returncode, wrk.stderr.strip()))
    row = parse_wrk(wrk.stdout)
    row.update(round=rnd, backend=backend, allocator=alloc, io=io, size=size,
               requests=doc["requests"], cpu_ns_per_request=doc["cpu_ns_per_request"],
               vmhwm_kib=doc["vmhwm_kib"], maxrss_kib=doc["maxrss_kib"],
               hit_rate=doc.get("hit_rate"))
    if doc["requests"] == 0 or not doc["ok"]:
        raise RuntimeError("server served nothing or reported failure")
    return row


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def summarize(rows, configs):
    """Markdown: medians per (size, config), ratios to the best malloc peer."""
    lines = ["| size | backend | allocator | io | req/s | p50 us | p99 us | p99.9 us | "
             "CPU ns/req | VmHWM KiB | CPU / best malloc | p99 / best malloc |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for size in sorted({r["size"] for r in rows}):
        med = {}
        for b, a, io in configs:
            rs = [r for r in rows if r["size"] == size and r["backend"] == b
                  and r["allocator"] == a and r["io"] == io]
            if rs:
                med[(b, a, io)] = {k: median(rs, k) for k in
                               ("requests_per_s", "p50_us", "p99_us", "p999_us",
                                "cpu_ns_per_request", "vmhwm_kib")}
        mallocs = [m for (b, _, _), m in med.items() if b == "malloc"]
        best_cpu = min((m["cpu_ns_per_request"] for m in mallocs), default=None)
        best_p99 = min((m["p99_us"] for m in mallocs), default=None)
        for (b, a, io), m in med.items():
            cpu_r = "%.2fx" % (m["cpu_ns_per_request"] / best_cpu) if best_cpu else "-"
            p99_r = "%.2fx" % (m["p99_us"] / best_p99) if best_p99 else "-"
            lines.append("| %d | %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %d | %s | %s |" % (
                size, b, a, io, m["requests_per_s"], m["p50_us"], m["p99_us"], m["p999_us"],
                m["cpu_ns_per_request"], m["vmhwm_kib"], cpu_r, p99_r))
    return "\n".join(lines) + "\n"


def run_idle(args, default_backend, uring):
    rows = []
    runs = [("malloc", "per-connection", "epoll"), ("malloc", "pooled", "epoll"),
            (default_backend, "pooled", "epoll"), (default_backend, "per-connection", "epoll")]
    if uring:
        runs.append((default_backend, "pooled", "uring"))
    for backend, buffers, io in runs:
        cmd = [args.server, "--backend", backend, "--buffers", buffers, "--io", io,
               "--idle-conns", str(args.idle), "--duration", "120", "--json", "--quiet"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                           env=preload_env("glibc"))
        if p.returncode != 0:
            raise RuntimeError("idle run failed: %s" % p.stderr.strip())
        d = json.loads(p.stdout)
        rows.append({"backend": backend, "buffers": "ring" if io == "uring" else buffers,
                     "io": io, "idle_conns": d["idle_conns_held"],
                     "rss_base_kib": d["rss_base_kib"], "rss_idle_kib": d["rss_idle_kib"],
                     "vmhwm_kib": d["vmhwm_kib"], "maxrss_kib": d["maxrss_kib"],
                     "read_buffers_peak": d["read_buffers_peak"]})
        log("idle %s/%s/%s: VmHWM %d KiB" % (backend, buffers, io, d["vmhwm_kib"]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group()
    for m in MODES:
        g.add_argument("--" + m, dest="mode", action="store_const", const=m)
    ap.add_argument("--out", default=None, help="directory for CSV and summary.md")
    ap.add_argument("--server", default=os.path.join(REPO, "build", "release", "workloads",
                                                     "http_server"))
    ap.add_argument("--wrk", default="wrk")
    ap.add_argument("--backends", help="comma list (default: all, the default first)")
    ap.add_argument("--allocators", default=",".join(ALLOCATORS),
                    help="malloc peers (pool backends run under glibc)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--threads", type=int, default=1, help="server worker threads")
    ap.add_argument("--connections", type=int, default=32, help="wrk -c")
    ap.add_argument("--idle", type=int, default=0, help="also the idle-connections run")
    ap.add_argument("--idle-only", action="store_true", help="with --idle: no wrk runs")
    ap.add_argument("--no-uring", action="store_true", help="leave the --io uring rows out")
    ap.add_argument("--rounds", type=int, default=None,
                    help="alternating rounds (default: the mode's, quick 2, full 5)")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not bind the server and wrk to separate CPUs")
    args = ap.parse_args()
    if args.threads < 1 or args.connections < 1:
        sys.exit("--threads and --connections must be at least 1")
    args.server_cpus, args.client_cpus = cpu_split(args.threads, not args.no_pin)
    mode = MODES[args.mode or "quick"]
    args.duration = mode["duration"]
    if args.rounds is not None:
        if args.rounds < 1:
            sys.exit("--rounds must be at least 1")
        mode = dict(mode, rounds=args.rounds)
    if not os.path.exists(args.server):
        sys.exit("no %s: build with cmake --preset release && cmake --build --preset release"
                 % args.server)
    pools = args.backends.split(",") if args.backends else driver_backends(args.server)
    allocs = args.allocators.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.mode == "smoke":
        pools, allocs, sizes = pools[:1], ["glibc"], [4096]
    configs = [(b, "glibc", "epoll") for b in pools]
    uring = args.mode != "smoke" and not args.no_uring and has_uring(args.server, pools[0])
    if uring:
        configs.insert(1, (pools[0], "glibc", "uring"))
    for a in allocs:
        if preload_env(a) is None:
            log("%s is not installed: left out (scripts/deps.sh --bench)" % a)
        else:
            configs.append(("malloc", a, "epoll"))
    out = args.out or tempfile.mkdtemp(prefix="server_bench_")
    os.makedirs(out, exist_ok=True)

    rows = []
    t0 = time.time()
    for rnd in range(0 if args.idle_only else mode["rounds"]):
        for size in sizes:
            for b, a, io in configs:  # alternating: A B C A B C ...
                row = run_one(args, b, a, io, size, rnd)
                rows.append(row)
                log("round %d %6d B %-14s %-9s %-5s %9.0f req/s p99 %7.0f us CPU %6d ns/req" % (
                    rnd, size, b, a, io, row["requests_per_s"], row["p99_us"],
                    row["cpu_ns_per_request"]))
    with open(os.path.join(out, "server.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    md = ["# http_server under wrk", "",
          "CPU: %s, %d CPUs; wrk -t1 -c%d -d%ds --latency, server --threads %d, "
          "--buffers pooled; %s; medians of %d rounds (%.0f s in all)." % (
              cpu_model(), os.cpu_count(), args.connections,
              args.duration, args.threads,
              "server on CPU %s, wrk on CPU %s" % (
                  ",".join(map(str, args.server_cpus)), ",".join(map(str, args.client_cpus)))
              if args.server_cpus else "not pinned",
              mode["rounds"], time.time() - t0),
          "Ratios: to the lowest CPU per request and the lowest p99 among the malloc peers "
          "(all --io epoll) of the same size.  Peak RSS is VmHWM: ru_maxrss survives execve on Linux, so a "
          "server started from Python reports Python's.", "", summarize(rows, configs)]
    if args.idle:
        idle = run_idle(args, pools[0], uring)
        with open(os.path.join(out, "idle.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=IDLE_FIELDS)
            w.writeheader()
            w.writerows(idle)
        md += ["## %d idle keep-alive connections" % args.idle, "",
               "| backend | read buffers | io | RSS before KiB | RSS with all open KiB | "
               "VmHWM KiB | ru_maxrss KiB | read buffers held at peak |",
               "|---|---|---|---|---|---|---|---|"]
        for r in idle:
            md.append("| %s | %s | %s | %d | %d | %d | %d | %d |" % (
                r["backend"], r["buffers"], r["io"], r["rss_base_kib"], r["rss_idle_kib"],
                r["vmhwm_kib"], r["maxrss_kib"], r["read_buffers_peak"]))
        md.append("")
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))
    log("wrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
