#!/usr/bin/python3
"""run_matrix.py - the whole benchmark matrix in one command.

    bench/run_matrix.py [--smoke | --quick | --full] [--threads "1 2 4"] [--out DIR]

Stages (each can be skipped, see --help):
  1. packages   scripts/deps.sh --bench: apt-get install only the missing
                Debian packages (root or sudo; --no-install only reports,
                through deps.sh --check)
  2. build      cmake Release build in its own tree (default build/release)
  3. micro      zp_bench (Google Benchmark, JSON out) with glibc, then its
                malloc peers again under LD_PRELOADed jemalloc, mimalloc and
                tcmalloc, in rounds (each round runs every allocator's
                process once; a cell's repetitions are its rounds);
                zp_hitpath ns/pair (shared and static library)
  4. callgrind  instructions per get+put pair, per backend and path
                (zp_hitpath --count under callgrind --toggle-collect)
  5. workloads  the four drivers x {every registered backend, malloc with
                glibc/jemalloc/mimalloc/tcmalloc}, the backends with both
                pool settings (--config zeropool: the original programs';
                --config defaults: the library's), repeated, repetitions
                interleaved; wall time from the driver's JSON, peak RSS and
                CPU time from wait4() in the small bench/zp_rusage wrapper
                (ru_maxrss of the driver), and the driver's "allocator"
                field checked against the allocator preloaded
  6. server     bench/server_bench.py in the same mode: workloads/http_server
                under wrk, every backend and the four mallocs, alternating
                rounds (quick: under a minute), into server/ (left out with
                a note where wrk or http_server is missing)
  7. files      bench/files_bench.py (quick for smoke and quick, full for
                full): the drivers' real-file mode, O_DIRECT (pread and,
                where built, io_uring) into pooled buffers against buffered
                reads into malloc'd ones, CPU/byte of the cold pass first,
                into files/
  8. summary    analysis/summarize.py: table, summary.md, plots
  (profile      analysis/profile.sh with --profile; on by default in --full)

Output: results/<date>-<host>/ (or --out DIR): raw JSON of every run,
results.csv (one row per measurement), machine.json, errors.json, logs.

Modes (time on a 2-core machine):
  --smoke   reduced matrix, tiny runs, 1 repetition         (< 2 min)
  --quick   full matrix, short runs, 3 rounds               (the default; 4 min,
                                                             + about 1 for server, files)
  --full    full matrix, longer runs, 5 rounds, scale 1     (about 30 min,
                                                             + about 13 for server, files)

Standard library only (python3 from /usr/bin; matplotlib is needed by the
summary stage only).
"""

import argparse
import csv
import datetime
import glob
import json
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The summary needs matplotlib, which Debian's python3-matplotlib gives
# /usr/bin/python3 (another python3 first on PATH may lack it).
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# The Debian packages are scripts/deps.sh's --bench list, the only one.
DEPS = os.path.join(REPO, "scripts", "deps.sh")
# Versions recorded in machine.json.
VERSION_PACKAGES = [
    "libck-dev", "liburcu-dev", "libbenchmark-dev", "libjemalloc2", "libmimalloc2.0",
    "libgoogle-perftools4", "libtcmalloc-minimal4", "libc6", "gcc", "cmake", "valgrind",
    "linux-perf", "libdpdk-dev",
]

# LD_PRELOAD candidates per allocator (first that exists wins).
ALLOCATORS = {
    "glibc": [],
    "jemalloc": ["libjemalloc.so.2"],
    "mimalloc": ["libmimalloc.so.2", "libmimalloc.so"],
    "tcmalloc": ["libtcmalloc_minimal.so.4", "libtcmalloc.so.4"],
}
LIBDIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
           "/usr/local/lib"]

WORKLOADS = ["ml_checkpoint_loader", "network_server", "file_pipeline", "stress_test"]
# The drivers' --config: the original programs' pool settings, and what a
# user who sets nothing but the backend gets.
WL_CONFIGS = ["zeropool", "defaults"]

MODES = {
    # micro: --benchmark_min_time, repetitions; hitpath: iters, reps;
    # callgrind: iters; workloads: scale per program, repetitions.
    "smoke": dict(min_time=0.002, micro_reps=1, interleave=False, smoke_matrix=True,
                  hit_iters=200000, hit_reps=3, cg_iters=20000,
                  scale={"ml_checkpoint_loader": 0.01, "network_server": 0.01,
                         "file_pipeline": 0.02, "stress_test": 0.01},
                  wl_reps=1, wl_timeout=120, profile=False),
    "quick": dict(min_time=0.05, micro_reps=3, interleave=False, smoke_matrix=False,
                  hit_iters=2000000, hit_reps=11, cg_iters=200000,
                  scale={"ml_checkpoint_loader": 0.1, "network_server": 0.25,
                         "file_pipeline": 1.0, "stress_test": 0.25},
                  wl_reps=3, wl_timeout=300, profile=False),
    "full": dict(min_time=0.2, micro_reps=5, interleave=True, smoke_matrix=False,
                 hit_iters=5000000, hit_reps=21, cg_iters=1000000,
                 scale={"ml_checkpoint_loader": 1.0, "network_server": 1.0,
                        "file_pipeline": 1.0, "stress_test": 1.0},
                 wl_reps=5, wl_timeout=900, profile=True),
}

CSV_FIELDS = ["kind", "name", "case", "backend", "allocator", "threads", "size", "params",
              "repetition", "metric", "value", "unit"]


# ---------------------------------------------------------------------------
# small helpers

def hitpath_options(backend, depth):
    """zp_hitpath options naming the backend and the cache depth, if any."""
    opts = []
    if backend:
        opts += ["--backend", backend]
    if depth is not None:
        opts += ["--depth", str(depth)]
    return opts


def preload_env(alloc):
    """The environment that makes `alloc` serve malloc (LD_PRELOAD for the
    peers; for glibc none, not even one this process inherited), or None
    when its library is not installed."""
    env = dict(os.environ)
    if alloc == "glibc":
        env.pop("LD_PRELOAD", None)
    elif alloc:
        lib = find_lib(ALLOCATORS[alloc])
        if lib is None:
            return None
        env["LD_PRELOAD"] = lib
    return env


def driver_backends(binary):
    """A workload driver's pool backends, from its --help, the one it uses
    by default first (ZP_BACKEND where that names one, else the library's)."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    names = re.search(r"one of: (.*)", out).group(1).split(", ")
    names = [n.strip() for n in names if n.strip() != "malloc"]
    default = re.search(r"ZP_BACKEND, else ([\w-]+)\)", out).group(1)
    default = os.environ.get("ZP_BACKEND") if os.environ.get("ZP_BACKEND") in names else default
    return [default] + [n for n in names if n != default]


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), for every table's caption."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def log(msg):
    print(f"[run_matrix {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, **kw):
    """Run, return CompletedProcess (text)."""
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def find_lib(names):
    for d in LIBDIRS:
        for n in names:
            p = os.path.join(d, n)
            if os.path.exists(p):
                return p
    return None


def allocator_of(reported):
    """Normalise what a program reports as its malloc library."""
    r = (reported or "").lower()
    for a in ("jemalloc", "mimalloc", "tcmalloc"):
        if a in r:
            return a
    if r.startswith("libc.so") or r.startswith("libc-") or r == "glibc":
        return "glibc"
    return r or "unknown"


class Errors:
    def __init__(self):
        self.items = []

    def add(self, stage, what, detail=""):
        self.items.append({"stage": stage, "what": what, "detail": detail[-2000:]})
        log(f"ERROR [{stage}] {what}" + (f": {detail.strip()[-300:]}" if detail else ""))


# ---------------------------------------------------------------------------
# 1. packages

def ensure_packages(args, errors):
    if args.no_install:
        # deps.sh --check exits 1 when something is missing: reported only
        r = sh(["bash", DEPS, "--bench", "--check"])
        log("packages (not installing, --no-install): " + (r.stdout + r.stderr).strip())
        return
    # apt-get's progress goes straight to the terminal, as deps.sh prints it
    r = subprocess.run(["bash", DEPS, "--bench"],
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if r.returncode != 0:
        errors.add("packages", f"scripts/deps.sh --bench exited {r.returncode}")


# ---------------------------------------------------------------------------
# 2. build

def build(args, errors):
    bd = args.build_dir
    if args.no_build:
        log(f"build: skipped (--no-build), using {bd}")
        return
    jobs = args.jobs or os.cpu_count() or 2
    log(f"build: Release in {bd} (-j{jobs})")
    cfg = ["cmake", "-S", REPO, "-B", bd, "-DCMAKE_BUILD_TYPE=Release", "-DZP_BUILD_BENCH=ON",
           "-DZP_BUILD_WORKLOADS=ON"]
    for cmd in (cfg, ["cmake", "--build", bd, "-j", str(jobs)]):
        r = sh(cmd)
        with open(os.path.join(args.out, "build.log"), "a") as f:
            f.write("$ " + " ".join(cmd) + "\n" + r.stdout + r.stderr)
        if r.returncode != 0:
            errors.add("build", " ".join(cmd), r.stdout + r.stderr)
            sys.exit(f"build failed, see {args.out}/build.log")


def find_binary(bd, name):
    for p in [os.path.join(bd, "bench", name), os.path.join(bd, "workloads", name),
              os.path.join(bd, name)]:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    hits = [p for p in glob.glob(os.path.join(bd, "**", name), recursive=True)
            if os.path.isfile(p) and os.access(p, os.X_OK)]
    return sorted(hits)[0] if hits else None


# ---------------------------------------------------------------------------
# machine description

def cmake_cache(bd):
    out = {}
    try:
        with open(os.path.join(bd, "CMakeCache.txt")) as f:
            for line in f:
                m = re.match(r"^([A-Za-z0-9_]+):[A-Z]+=(.*)$", line.strip())
                if m:
                    out[m.group(1)] = m.group(2)
    except OSError:
        pass
    return out


def machine_info(args, backends):
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": socket.gethostname(), "mode": args.mode, "threads": args.threads}
    info["cpu_model"] = cpu_model()
    info["cpus_online"] = os.cpu_count()
    try:
        info["cpus_affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    r = sh(["lscpu"])
    if r.returncode == 0:
        for line in r.stdout.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Thread(s) per core", "Core(s) per socket", "Socket(s)",
                             "Hypervisor vendor", "L2 cache", "L3 cache", "CPU max MHz"):
                info["lscpu_" + k.strip()] = v.strip()
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    u = os.uname()
    info["kernel"] = f"{u.sysname} {u.release} {u.version} {u.machine}"
    info["glibc"] = " ".join(platform.libc_ver())
    try:
        info["glibc_confstr"] = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        pass
    cache = cmake_cache(args.build_dir)
    cc = cache.get("CMAKE_C_COMPILER", "cc")
    r = sh([cc, "--version"])
    info["compiler"] = r.stdout.splitlines()[0] if r.returncode == 0 and r.stdout else cc
    info["cmake_build_type"] = cache.get("CMAKE_BUILD_TYPE", "")
    info["cmake_c_flags"] = cache.get("CMAKE_C_FLAGS", "")
    info["zp_backend_default"] = cache.get("ZP_BACKEND", "")
    info["backends"] = backends
    r = sh(["cmake", "--version"])
    info["cmake"] = r.stdout.splitlines()[0] if r.returncode == 0 else ""
    versions = {}
    for p in VERSION_PACKAGES:
        r = sh(["dpkg-query", "-W", "-f", "${Version}", p])
        versions[p] = r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None
    info["packages"] = versions
    info["allocator_libs"] = {a: find_lib(n) if n else "libc.so.6" for a, n in ALLOCATORS.items()}
    r = sh(["git", "-C", REPO, "rev-parse", "HEAD"])
    info["git_commit"] = r.stdout.strip() if r.returncode == 0 else None
    # Dirty: changes to the tree, not counting this run's own output.
    spec = ["--", "."]
    out = os.path.relpath(os.path.abspath(args.out), REPO)
    if not out.startswith(".."):
        spec.append(f":(exclude){out}")
    r = sh(["git", "-C", REPO, "status", "--porcelain"] + spec)
    info["git_dirty"] = bool(r.stdout.strip()) if r.returncode == 0 else None
    info["loadavg_start"] = os.getloadavg()
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") as f:
            info["cpu_governor"] = f.read().strip()
    except OSError:
        info["cpu_governor"] = None
    info["python"] = sys.version.split()[0]
    return info


# ---------------------------------------------------------------------------
# running a workload with its peak RSS

def run_measured(cmd, rusage_bin, env=None, timeout=None):
    """Run cmd under zp_rusage; return (rc, stdout, stderr, usage dict or None,
    wall seconds).

    Peak RSS is ru_maxrss from wait4() in bench/zp_rusage.c, a 1 MB
    process: getrusage/wait4 from this Python process would report at least
    Python's own RSS, because Linux carries the pre-exec address space's
    high-water mark into the child's ru_maxrss."""
    with tempfile.TemporaryDirectory() as tmp:
        ufile = os.path.join(tmp, "rusage.json")
        full = [rusage_bin, ufile] + cmd
        t0 = time.monotonic()
        try:
            r = subprocess.run(full, env=env, text=True, capture_output=True, timeout=timeout)
            rc, out, err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            rc = 124
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = (e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")) + \
                f"\n[timed out after {timeout} s]"
        wall = time.monotonic() - t0
        usage = None
        try:
            with open(ufile) as f:
                usage = json.load(f)
        except (OSError, ValueError):
            pass
        return rc, out, err, usage, wall


# ---------------------------------------------------------------------------
# 3. micro-benchmarks

def micro_name_fields(name):
    """pool/<backend>/<case>/k:v.../real_time/threads:N -> dict."""
    parts = name.split("/")
    d = {"family": parts[0], "who": parts[1] if len(parts) > 1 else "",
         "case": parts[2] if len(parts) > 2 else "", "size": "", "params": []}
    for p in parts[3:]:
        if p in ("real_time", "manual_time", "process_time") or p.startswith("threads:") \
                or p.startswith("repeats:") or p.startswith("min_time:"):
            continue
        k, _, v = p.partition(":")
        if k == "size":
            d["size"] = v
        else:
            d["params"].append(p)
    return d


def micro_rows(doc, tag, rnd=0):
    ctx = doc.get("context", {})
    proc_alloc = ctx.get("malloc_allocator", "")
    rows = []
    for b in doc.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
            continue
        name = b.get("run_name") or b["name"]
        f = micro_name_fields(name)
        if f["family"] == "pool":
            backend, allocator = f["who"], proc_alloc
        elif f["family"] == "malloc":
            backend, allocator = "malloc", f["who"]
        elif f["family"] == "tls_stack":
            backend, allocator = "tls_stack", ""
        elif f["family"] == "dpdk":
            backend, allocator = "dpdk", ""
        else:
            backend, allocator = f["family"], proc_alloc
        threads = int(b.get("threads", 1))
        rep = rnd + int(b.get("repetition_index", 0))
        base = {"kind": "micro", "name": name, "case": f["case"], "backend": backend,
                "allocator": allocator, "threads": threads, "size": f["size"],
                "params": ";".join(f["params"]), "repetition": rep}
        ips = b.get("items_per_second")
        if ips:
            rows.append(dict(base, metric="items_per_second", value=ips, unit="items/s"))
            rows.append(dict(base, metric="ns_per_pair", value=1e9 / ips, unit="ns"))
            rows.append(dict(base, metric="ns_per_pair_thread", value=threads * 1e9 / ips,
                             unit="ns"))
        unit = b.get("time_unit", "ns")
        rt, ct = b.get("real_time"), b.get("cpu_time")
        if ips and rt and ct is not None and unit == "ns":
            # CPU time of all threads per pair: robust where wall time is not
            # (a loaded machine), and what a pair costs whoever runs it.
            rows.append(dict(base, metric="cpu_ns_per_pair", value=ct / (ips * rt * 1e-9),
                             unit="ns"))
        rows.append(dict(base, metric="real_time", value=b.get("real_time"), unit=unit))
        rows.append(dict(base, metric="cpu_time", value=b.get("cpu_time"), unit=unit))
        for k in ("hit_rate", "store_hit_rate", "fresh_per_get", "refills_per_get",
                  "drains_per_put", "evict_per_put", "discard_per_put", "contention_per_op",
                  "reclaimed_per_op", "handoff_per_get"):
            if k in b:
                rows.append(dict(base, metric=k, value=b[k], unit="ratio"))
        for k, kunit in (("grace_us", "us"), ("grace_max_us", "us"), ("store_meta_kib", "KiB"),
                         ("bg_cpu_ns_per_op", "ns"), ("live_kib", "KiB")):
            if k in b:
                rows.append(dict(base, metric=k, value=b[k], unit=kunit))
    return rows


def run_micro(args, m, bins, errors, rows):
    """zp_bench once per allocator per round, for m['micro_reps'] rounds.

    Each process measures its cases once; a round runs every allocator's
    process, starting at a different allocator each round.  The pool's rows
    (measured in the glibc process) and each peer's rows so sample the same
    stretch of time, and a spell of host noise lands on one round of every
    column instead of on every repetition of one column (with repetitions
    inside one process, the pool and tcmalloc were measured minutes apart).
    """
    zb = bins.get("zp_bench")
    if zb is None:
        errors.add("micro", "zp_bench not built (libbenchmark-dev missing?)")
        return
    threads = ",".join(str(t) for t in args.threads)
    common = [f"--zp_threads={threads}", f"--benchmark_min_time={m['min_time']}",
              "--benchmark_out_format=json", "--benchmark_format=console"]
    if m["interleave"]:
        common.append("--benchmark_enable_random_interleaving=true")
    if m["smoke_matrix"]:
        common.append("--zp_smoke")
    procs = []  # (allocator, env, filter)
    for alloc in args.allocators:
        env = dict(os.environ)
        if alloc == "glibc":
            flt = args.micro_filter
        else:
            lib = find_lib(ALLOCATORS[alloc])
            if lib is None:
                errors.add("micro", f"{alloc}: library not found, peer skipped")
                continue
            env["LD_PRELOAD"] = lib
            flt = "^malloc/"
            if args.micro_filter:
                flt = f"^malloc/.*({args.micro_filter})"
        procs.append((alloc, env, flt))
    rounds = max(1, m["micro_reps"])
    for rnd in range(rounds):
        order = procs[rnd % len(procs):] + procs[:rnd % len(procs)] if procs else []
        for alloc, env, flt in order:
            run_micro_once(args, zb, common, alloc, env, flt, rnd, rounds, errors, rows)


def run_micro_once(args, zb, common, alloc, env, flt, rnd, rounds, errors, rows):
    cmd = [zb] + common + ([f"--benchmark_filter={flt}"] if flt else [])
    out = os.path.join(args.out, "raw", f"micro-{alloc}.r{rnd}.json")
    cmd.append(f"--benchmark_out={out}")
    log(f"micro: round {rnd + 1}/{rounds}: zp_bench with {alloc}" +
        (f" (LD_PRELOAD={env.get('LD_PRELOAD')})" if alloc != "glibc" else ""))
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, text=True, capture_output=True, timeout=args.micro_timeout)
    with open(os.path.join(args.out, "logs", f"micro-{alloc}.r{rnd}.log"), "w") as f:
        f.write("$ " + shlex.join(cmd) + "\n" + r.stdout + r.stderr)
    log(f"micro: round {rnd + 1}/{rounds}: {alloc} done in {time.monotonic() - t0:.0f} s, "
        f"rc {r.returncode}")
    if r.returncode != 0:
        errors.add("micro", f"zp_bench ({alloc}, round {rnd + 1}) exited {r.returncode}", r.stderr)
    try:
        with open(out) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        errors.add("micro", f"no JSON from zp_bench ({alloc}, round {rnd + 1})", str(e))
        return
    got = doc.get("context", {}).get("malloc_allocator")
    if got != alloc:
        errors.add("micro", f"allocator mismatch: wanted {alloc}, zp_bench reports {got}")
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred"):
            errors.add("micro", f"{b.get('name')}: {b.get('error_message')}")
    rows.extend(micro_rows(doc, alloc, rnd))


# ---------------------------------------------------------------------------
# 3b. hit path timing and 4. callgrind

HIT_PATHS = [
    # label, binary key, path, depth (None = library default)
    ("get", "zp_hitpath", "get", None),       # zp_get/zp_put: the header's macros
    ("call", "zp_hitpath", "call", None),     # the exported functions, through the PLT
    ("get_static", "zp_hitpath_static", "get", None),
    ("handle", "zp_hitpath", "handle", None),
    ("backend", "zp_hitpath", "get", 0),
]


def hit_base(label, backend, allocator, size, depth, link):
    params = [f"link:{link}"]
    if depth is not None:
        params.append(f"depth:{depth}")
    return {"kind": "micro", "name": f"hitpath/{backend}/{label}/size:{size}",
            "case": f"hitpath_{label}", "backend": backend, "allocator": allocator,
            "threads": 1, "size": size, "params": ";".join(params)}


def hitpath_jobs(args, backends):
    """(label, binary, path, depth, backend, allocator) for every hit-path
    cell: each pool path per backend, malloc per allocator, the TLS floor."""
    jobs = []
    for label, key, path, depth in HIT_PATHS:
        for be in backends:
            jobs.append((label, key, path, depth, be, None))
    for alloc in args.allocators:
        jobs.append(("malloc", "zp_hitpath", "malloc", None, None, alloc))
    jobs.append(("tls", "zp_hitpath", "tls", None, None, None))
    return jobs


def run_hitpath(args, m, bins, backends, errors, rows):
    size = 64
    raw = []
    jobs = hitpath_jobs(args, backends) + [("empty", "zp_hitpath", "empty", None, None, None)]
    log(f"hitpath: {len(jobs)} timings of {m['hit_reps']} x {m['hit_iters']} pairs")
    for label, key, path, depth, be, alloc in jobs:
        b = bins.get(key)
        if b is None:
            errors.add("hitpath", f"{key} not built")
            continue
        cmd = [b, "--json", "--path", path, "--size", str(size), "--iters", str(m["hit_iters"]),
               "--reps", str(m["hit_reps"])] + hitpath_options(be, depth)
        env = preload_env(alloc)
        if env is None:
            continue
        r = sh(cmd, env=env, timeout=600)
        if r.returncode != 0:
            errors.add("hitpath", shlex.join(cmd), r.stderr)
            continue
        for line in r.stdout.splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            d["label"] = label
            raw.append(d)
            backend = be or ("malloc" if path == "malloc" else path)
            allocator = allocator_of(d.get("allocator"))
            if alloc and allocator != alloc:
                errors.add("hitpath", f"allocator mismatch: wanted {alloc}, got {allocator}")
            base = hit_base(label, backend, allocator, size,
                            d.get("depth") if be else None, d.get("link"))
            for i, v in enumerate(d.get("ns", [])):
                rows.append(dict(base, repetition=i, metric="ns_per_pair", value=v, unit="ns"))
    with open(os.path.join(args.out, "raw", "hitpath.jsonl"), "w") as f:
        for d in raw:
            f.write(json.dumps(d) + "\n")


def callgrind_ir(outfile):
    """Total Ir collected (the 'totals:' or 'summary:' line)."""
    tot = None
    with open(outfile) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                tot = int(line.split()[1])
    return tot


def run_callgrind(args, m, bins, backends, errors, rows):
    if shutil.which("valgrind") is None:
        errors.add("callgrind", "valgrind not installed")
        return
    size, n = 64, m["cg_iters"]
    cgdir = os.path.join(args.out, "raw", "callgrind")
    os.makedirs(cgdir, exist_ok=True)
    # the empty loop first: the others subtract its count
    jobs = [("empty", "zp_hitpath", "empty", None, None, None)] + hitpath_jobs(args, backends)
    log(f"callgrind: {len(jobs)} runs of {n} pairs")
    empty = None
    raw = []
    for label, key, path, depth, be, alloc in jobs:
        b = bins.get(key)
        if b is None:
            continue
        tag = "-".join(x for x in (label, be or alloc or "") if x)
        out = os.path.join(cgdir, f"callgrind.{tag}.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               f"--toggle-collect=zph_loop_{path}", b, "--count", "--json", "--path", path,
               "--size", str(size), "--iters", str(n)] + hitpath_options(be, depth)
        env = preload_env(alloc)
        if env is None:
            continue
        r = sh(cmd, env=env, timeout=900)
        if r.returncode != 0:
            errors.add("callgrind", shlex.join(cmd), r.stderr)
            continue
        try:
            ir = callgrind_ir(out)
        except OSError as e:
            errors.add("callgrind", f"no output for {tag}", str(e))
            continue
        info = {}
        for line in r.stdout.splitlines():
            try:
                info = json.loads(line)
            except ValueError:
                pass
        per = ir / n
        if label == "empty":
            empty = per
        raw.append({"label": label, "backend": be, "allocator": alloc, "path": path,
                    "depth": info.get("depth"), "link": info.get("link"), "iters": n, "ir": ir,
                    "ir_per_pair": per})
        backend = be or ("malloc" if path == "malloc" else path)
        allocator = allocator_of(info.get("allocator")) if info else (alloc or "")
        base = hit_base(label, backend, allocator, size, info.get("depth") if be else None,
                        info.get("link", "shared"))
        rows.append(dict(base, repetition=0, metric="instructions_per_pair", value=per,
                         unit="instructions"))
        if empty is not None and label != "empty":
            rows.append(dict(base, repetition=0, metric="instructions_per_pair_net",
                             value=per - empty, unit="instructions"))
    with open(os.path.join(args.out, "raw", "callgrind.json"), "w") as f:
        json.dump(raw, f, indent=1)


# ---------------------------------------------------------------------------
# 5. workloads

def run_workloads(args, m, bins, backends, errors, rows):
    if bins.get("zp_rusage") is None:
        errors.add("workloads", "bench/zp_rusage not built: no workload runs")
        return
    progs = [w for w in args.workloads if bins.get(w)]
    for w in args.workloads:
        if not bins.get(w):
            log(f"workloads: {w} not built, skipped")
    if not progs:
        return
    targets = [(be, None) for be in backends]
    for alloc in args.allocators:
        if alloc != "glibc" and find_lib(ALLOCATORS[alloc]) is None:
            errors.add("workloads", f"{alloc}: library not found, peer skipped")
            continue
        targets.append(("malloc", alloc))
    reps = args.reps or m["wl_reps"]
    apis = args.apis
    # (api, config) per pool target; malloc has one entry point ("get") and
    # no settings: it runs once, with the first config.
    variants = [(api, cfg) for api in apis for cfg in args.configs]

    def runs(be, api, cfg):
        return be != "malloc" or (api == "get" and cfg == args.configs[0])
    total = len(progs) * reps * sum(runs(be, api, cfg) for be, _ in targets
                                    for api, cfg in variants)
    log(f"workloads: {len(progs)} programs x {len(targets)} targets x {reps} reps"
        f" x api {','.join(apis)} x config {','.join(args.configs)} (pools) = {total} runs")
    rawdir = os.path.join(args.out, "raw", "workloads")
    os.makedirs(rawdir, exist_ok=True)
    done = 0
    t_start = time.monotonic()
    # Repetitions outermost: a slow drift of the machine's load spreads over
    # every cell instead of landing on one.
    for rep in range(reps):
        for prog in progs:
            scale = args.scale if args.scale is not None else m["scale"][prog]
            for be, alloc in targets:
                for api, cfg in variants:
                    if not runs(be, api, cfg):
                        continue
                    done += 1
                    cmd = [bins[prog], "--backend", be, "--scale", f"{scale:g}", "--json",
                           "--quiet"]
                    if api != "get":
                        cmd += ["--api", api]
                    if be != "malloc":
                        cmd += ["--config", cfg]
                    env = dict(os.environ)
                    env.pop("LD_PRELOAD", None)
                    env.pop("ZP_BACKEND", None)
                    want = alloc or "glibc"
                    if alloc and alloc != "glibc":
                        env["LD_PRELOAD"] = find_lib(ALLOCATORS[alloc])
                    tag = f"{prog}.{be}{'-' + alloc if alloc else ''}" \
                          f"{'' if api == 'get' else '.' + api}" \
                          f"{'.' + cfg if be != 'malloc' and cfg != 'zeropool' else ''}.rep{rep}"
                    rc, out, err, ru, wall = run_measured(cmd, bins["zp_rusage"], env=env,
                                                          timeout=m["wl_timeout"])
                    with open(os.path.join(rawdir, tag + ".json"), "w") as f:
                        f.write(out)
                    if err.strip():
                        with open(os.path.join(args.out, "logs", tag + ".stderr"), "w") as f:
                            f.write(err)
                    if rc != 0:
                        errors.add("workloads", f"{tag}: exit {rc}", err)
                        continue
                    try:
                        d = json.loads(out)
                    except ValueError as e:
                        errors.add("workloads", f"{tag}: bad JSON", str(e) + out[:500])
                        continue
                    got = allocator_of(d.get("allocator"))
                    if got != want:
                        errors.add("workloads", f"{tag}: allocator mismatch: wanted {want},"
                                   f" driver reports {d.get('allocator')}")
                        continue
                    if be != "malloc" and d.get("backend") not in (be, None):
                        errors.add("workloads", f"{tag}: backend mismatch: {d.get('backend')}")
                    if be != "malloc" and d.get("config_preset") != cfg:
                        errors.add("workloads", f"{tag}: config mismatch: wanted {cfg},"
                                   f" driver reports {d.get('config_preset')}")
                        continue
                    params = f"scale:{scale:g};api:{api}"
                    if be != "malloc":
                        params += f";config:{cfg}"
                    base = {"kind": "workload", "name": prog, "case": prog, "backend": be,
                            "allocator": got, "threads": d.get("threads", ""), "size": "",
                            "params": params, "repetition": rep}

                    def add(metric, value, unit):
                        if value is not None:
                            rows.append(dict(base, metric=metric, value=value, unit=unit))
                    add("wall_s", d.get("wall_s"), "s")
                    add("setup_s", d.get("setup_s"), "s")
                    add("process_wall_s", wall, "s")
                    if ru is not None:
                        add("peak_rss_kib", ru.get("maxrss_kib"), "KiB")
                        add("cpu_user_s", ru.get("utime_s"), "s")
                        add("cpu_sys_s", ru.get("stime_s"), "s")
                        add("minor_faults", ru.get("minflt"), "count")
                        add("involuntary_switches", ru.get("nivcsw"), "count")
                    gets = d.get("gets")
                    add("gets", gets, "count")
                    if gets and d.get("wall_s"):
                        add("ns_per_get", d["wall_s"] * 1e9 / gets, "ns")
                    if "hit_rate" in d:
                        add("hit_rate", d.get("hit_rate"), "ratio")
                    st = d.get("stats") or {}
                    for k in ("fresh", "evictions", "discards", "contention"):
                        if k in st:
                            add(k, st[k], "count")
                    for ph in d.get("phases", []):
                        pname = re.sub(r"[^a-z0-9]+", "_", str(ph.get("name", "")).lower())
                        add(f"phase_{pname.strip('_')}_s", ph.get("seconds"), "s")
        log(f"workloads: repetition {rep + 1}/{reps} done ({done}/{total} runs,"
            f" {time.monotonic() - t_start:.0f} s)")


# ---------------------------------------------------------------------------

def parse_threads(s):
    out = []
    for tok in re.split(r"[,\s]+", s.strip()):
        if tok:
            v = int(tok)
            if v < 1 or v > 64:
                raise argparse.ArgumentTypeError(f"thread count out of range: {v}")
            out.append(v)
    if not out:
        raise argparse.ArgumentTypeError("empty thread list")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--smoke", dest="mode", action="store_const", const="smoke")
    g.add_argument("--quick", dest="mode", action="store_const", const="quick")
    g.add_argument("--full", dest="mode", action="store_const", const="full")
    ap.set_defaults(mode="quick")
    ap.add_argument("--threads", type=parse_threads, default=[1, 2, 4],
                    help='thread counts for the threaded micro cases (default "1 2 4")')
    ap.add_argument("--out", help="results directory (default results/<date>-<host>/)")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build", "release"))
    ap.add_argument("--jobs", type=int, default=0, help="build parallelism (default: CPUs)")
    ap.add_argument("--no-install", action="store_true", help="only report missing packages")
    ap.add_argument("--no-build", action="store_true", help="use --build-dir as it is")
    ap.add_argument("--skip", default="",
                    help="comma list of stages to skip: micro,hitpath,callgrind,workloads,server,files,"
                         "profile,summary")
    ap.add_argument("--profile", action="store_true", default=None,
                    help="also run analysis/profile.sh (default: only in --full)")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--allocators", default=",".join(ALLOCATORS))
    ap.add_argument("--backends", default="", help="comma list (default: all registered)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--apis", default="get",
                    help="workload pool entry points: get, cache or get,cache")
    ap.add_argument("--configs", default=",".join(WL_CONFIGS),
                    help="workload pool settings (the drivers' --config): zeropool, defaults"
                         " or both (the default)")
    ap.add_argument("--scale", type=float, help="override every workload's --scale")
    ap.add_argument("--reps", type=int, help="override workload repetitions")
    ap.add_argument("--micro-filter", default="", help="--benchmark_filter regex for zp_bench")
    ap.add_argument("--micro-timeout", type=int, default=3600)
    args = ap.parse_args()
    args.allocators = [a for a in args.allocators.split(",") if a]
    for a in args.allocators:
        if a not in ALLOCATORS:
            ap.error(f"unknown allocator {a}; known: {', '.join(ALLOCATORS)}")
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.apis = [a for a in args.apis.split(",") if a]
    args.configs = [c for c in args.configs.split(",") if c]
    for c in args.configs:
        if c not in WL_CONFIGS:
            ap.error(f"unknown workload config {c}; known: {', '.join(WL_CONFIGS)}")
    if not args.configs:
        ap.error("--configs names no config")
    skip = set(s for s in args.skip.split(",") if s)
    m = MODES[args.mode]
    if args.profile is None:
        args.profile = m["profile"]

    host = socket.gethostname().split(".")[0]
    if not args.out:
        args.out = os.path.join(REPO, "results",
                                f"{datetime.date.today().isoformat()}-{host}")
    args.out = os.path.abspath(args.out)
    args.build_dir = os.path.abspath(args.build_dir)
    for d in ("", "raw", "logs"):
        os.makedirs(os.path.join(args.out, d), exist_ok=True)
    log(f"mode {args.mode}, threads {args.threads}, out {args.out}")
    errors = Errors()
    t_all = time.monotonic()

    ensure_packages(args, errors)
    build(args, errors)

    names = ["zp_bench", "zp_hitpath", "zp_hitpath_static", "zp_rusage", "http_server"] + WORKLOADS
    bins = {n: find_binary(args.build_dir, n) for n in names}
    if bins["zp_hitpath"] is None:
        sys.exit(f"zp_hitpath not found under {args.build_dir}: build first")
    r = sh([bins["zp_hitpath"], "--list"])
    registered = r.stdout.split()
    backends = [b for b in args.backends.split(",") if b] or registered
    for b in backends:
        if b not in registered:
            sys.exit(f"backend {b} is not registered (have: {' '.join(registered)})")
    log("backends: " + " ".join(backends) + "; binaries: " +
        ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in bins.items()))

    # What this machine cannot run is left out with a note, not an error
    # (after the packages stage there is nothing missing, unless
    # --no-install was given).
    missing_allocs = [a for a in args.allocators if ALLOCATORS[a] and find_lib(ALLOCATORS[a]) is None]
    if missing_allocs:
        log("allocators not installed, left out: " + " ".join(missing_allocs))
        args.allocators = [a for a in args.allocators if a not in missing_allocs]
    cflags = cmake_cache(args.build_dir).get("CMAKE_C_FLAGS", "")
    if "callgrind" not in skip and shutil.which("valgrind") is None:
        log("callgrind: valgrind not installed, stage left out")
        skip.add("callgrind")
    if "callgrind" not in skip and "-fsanitize" in cflags:
        log("callgrind: sanitizer build (CMAKE_C_FLAGS has -fsanitize), stage left out")
        skip.add("callgrind")
    if "micro" not in skip and bins.get("zp_bench") is None:
        log("micro: zp_bench not built (no Google Benchmark), stage left out")
        skip.add("micro")

    info = machine_info(args, backends)
    info["allocators_missing"] = missing_allocs
    info["binaries"] = bins
    info["mode_settings"] = m
    info["allocators"] = args.allocators
    info["workloads"] = args.workloads
    info["apis"] = args.apis
    info["workload_configs"] = args.configs
    info["skipped_stages"] = sorted(skip)
    rows = []
    stage_s = {}
    for stage, fn in (("micro", lambda: run_micro(args, m, bins, errors, rows)),
                      ("hitpath", lambda: run_hitpath(args, m, bins, backends, errors, rows)),
                      ("callgrind", lambda: run_callgrind(args, m, bins, backends, errors, rows)),
                      ("workloads", lambda: run_workloads(args, m, bins, backends, errors, rows))):
        if stage in skip:
            log(f"{stage}: skipped")
            continue
        t0 = time.monotonic()
        fn()
        stage_s[stage] = round(time.monotonic() - t0, 1)

    csv_path = os.path.join(args.out, "results.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for row in rows:
            w.writerow(row)
    log(f"wrote {len(rows)} rows to {csv_path}")

    def write_info():  # again after each later stage, so that a stop keeps the times so far
        info["stage_seconds"] = stage_s
        with open(os.path.join(args.out, "machine.json"), "w") as f:
            json.dump(info, f, indent=2, default=str)

    info["loadavg_end"] = os.getloadavg()
    write_info()
    for stage, fn in (("server", lambda: run_server(args, bins, backends, errors)),
                      ("files", lambda: run_files(args, errors))):
        if stage in skip:
            continue
        t0 = time.monotonic()
        fn()
        stage_s[stage] = round(time.monotonic() - t0, 1)
        write_info()

    if args.profile and "profile" not in skip:
        log("profile: analysis/profile.sh")
        t0 = time.monotonic()
        r = subprocess.run(["bash", os.path.join(REPO, "analysis", "profile.sh"),
                            "--out", os.path.join(args.out, "profile"),
                            "--mode", "smoke" if args.mode == "smoke" else "quick",
                            "--jobs", str(args.jobs or os.cpu_count() or 2)])
        if r.returncode != 0:
            errors.add("profile", f"profile.sh exited {r.returncode}")
        stage_s["profile"] = round(time.monotonic() - t0, 1)

    with open(os.path.join(args.out, "errors.json"), "w") as f:
        json.dump(errors.items, f, indent=1)

    if "summary" not in skip:
        r = subprocess.run([PYTHON, os.path.join(REPO, "analysis", "summarize.py"),
                            args.out])
        if r.returncode != 0:
            errors.add("summary", f"summarize.py exited {r.returncode}")
            with open(os.path.join(args.out, "errors.json"), "w") as f:
                json.dump(errors.items, f, indent=1)

    log(f"done in {time.monotonic() - t_all:.0f} s; stages {stage_s}; "
        f"{len(errors.items)} error(s); results in {args.out}")
    return 1 if errors.items else 0


def run_files(args, errors):
    """The files stage: bench/files_bench.py (quick for smoke, with one
    round, and quick; full for full) into OUT/files/."""
    log("files: bench/files_bench.py")
    cmd = [PYTHON, os.path.join(REPO, "bench", "files_bench.py"),
           "--full" if args.mode == "full" else "--quick",
           "--build-dir", args.build_dir, "--out", os.path.join(args.out, "files")]
    if args.mode == "smoke":
        cmd += ["--rounds", "1"]
    r = subprocess.run(cmd)
    if r.returncode != 0:
        errors.add("files", f"files_bench.py exited {r.returncode}")


def run_server(args, bins, backends, errors):
    """The server stage: bench/server_bench.py, in the matrix's mode, on the
    same backends and allocators, into OUT/server/ (its own summary.md,
    which the run's summary links)."""
    wrk = shutil.which("wrk")
    if bins.get("http_server") is None or wrk is None:
        log("server: skipped (" + ("wrk not installed" if wrk is None else
                                   "http_server not built") + ")")
        return
    log("server: bench/server_bench.py")
    cmd = [PYTHON, os.path.join(REPO, "bench", "server_bench.py"), "--" + args.mode,
           "--server", bins["http_server"], "--wrk", wrk, "--backends", ",".join(backends),
           "--allocators", ",".join(args.allocators),
           "--out", os.path.join(args.out, "server")]
    if args.mode == "full":
        cmd += ["--idle", "10000"]
    r = subprocess.run(cmd)
    if r.returncode != 0:
        errors.add("server", f"server_bench.py exited {r.returncode}")


if __name__ == "__main__":
    sys.exit(main())
