#!/usr/bin/env python3
"""Run a workload driver and check what it reports.

    check_json.py [--stats-header ZEROPOOL_H] [checks] -- DRIVER [ARGS...]
    check_json.py [--stats-header ZEROPOOL_H] --selftest

Without --expect-exit the driver must exit 0 and print exactly one JSON
object on stdout.  The object must have the required fields, conserve
buffers (gets == puts), and its number of gets must equal both the
driver's own "expected_gets" and the count this script computes from the
program, --scale and --threads with its own formulas (docs/workloads.md).
Its "config_preset" must be the --config of the command ("zeropool" when
the command has none).
Pool runs must also have statistics that agree with the driver's counts,
with every field of struct zp_stats as listed by the X-macros
ZP_STATS_U64_FIELDS and ZP_STATS_UNSIGNED_FIELDS of zeropool.h (read from
--stats-header; default: lib/include/zeropool.h of this source tree).

A command with --files (the real-file mode) must report a "real_files"
object: the read mode it asked for (--read; default direct, buffered with
--backend malloc), the mode that actually ran ("direct", "uring", "buffered
(O_DIRECT refused: why)" or "direct (io_uring refused: why)", each refusal
also on stderr: a silent fallback fails), bytes read equal to what the
program reads (its files three times for file_pipeline; every get's bytes,
the checkpoint once per epoch, for ml_checkpoint_loader), the cold pass
(file_pipeline's run 1, ml_checkpoint_loader's epoch 1), the measurements,
and its temporary directory gone after the run.  An argument @DIR@ in the
command is replaced by a fresh directory that must be empty after the run
(and is then removed).  --expect-fallback requires the O_DIRECT fallback
(ZP_WL_REFUSE_DIRECT makes the drivers act refused), --expect-uring-fallback
the io_uring one (ZP_WL_REFUSE_URING); a --read uring run that fell back
without it was refused by this kernel: skipped (77).  A command without
--files must report no "real_files".

A driver that exits 77 saying "io_uring refused" makes this script exit 77
(skipped).

With --expect-exit N only the exit status is checked (and, for a non-zero
N, that stdout is empty and stderr says something).

Standard library only.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import sys

# ---- the programs' loop constants (WORKLOADS.md), kept apart from the C code

ML_EPOCHS = 1000
ML_GETS_PER_EPOCH = 2 + 48 * (10 + 4 + 2 + 2) + 2

NET_THREADS = 8
NET_CONNECTIONS = 5000
NET_REQUESTS = 100

FILE_FILES = 500
FILE_CHUNKS = 50
FILE_RUNS = 3
FILE_CHUNK_SIZES = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20]

STRESS_THREADS = 12
STRESS_PHASES = ["Burst Allocations", "Cache Thrashing", "Mixed Sizes",
                 "Eviction Pressure", "Random Chaos"]

DEFAULT_THREADS = {
    "ml_checkpoint_loader": 1,
    "network_server": NET_THREADS,
    "file_pipeline": 1,
    "stress_test": STRESS_THREADS,
    "http_server": 2,
}

# http_server: its gets follow the reads the kernel delivers, so no formula
# gives them; its report has these numbers, and --expect-requests checks
# the responses its own client counted.
SERVER_FIELDS = ("requests", "not_found", "bad_requests", "connections", "partial_writes", "cpu_us",
                 "cpu_ns_per_request", "maxrss_kib", "vmhwm_kib", "rss_base_kib",
                 "read_buffers_peak")

# The drivers' pool settings (--config): the original program's, or the
# library's defaults with only the backend set.
CONFIG_PRESETS = ("zeropool", "defaults")

DEFAULT_HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                              "lib", "include", "zeropool.h")
STATS_MACROS = ("ZP_STATS_U64_FIELDS", "ZP_STATS_UNSIGNED_FIELDS")

M64 = (1 << 64) - 1


def scaled(n, scale):
    """n * scale rounded half up, at least 1 (the drivers' rule)."""
    return max(1, int(math.floor(n * scale + 0.5)))


def stress_phase_gets(scale, threads):
    burst = scaled(10, scale)
    thrash = scaled(50000, scale)
    mixed = scaled(50000, scale)
    evict = scaled(20, scale)
    chaos = scaled(50000, scale)
    evict_gets = sum(100 + (10 if r % 5 == 0 else 0) for r in range(evict))
    chaos_gets = 0
    for tid in range(threads):
        x = (tid * 1103515245 + 12345) & M64
        for _ in range(chaos):
            x = (x * 1103515245 + 12345) & M64
            chaos_gets += 6 if x % 10 == 0 else 1
    return [threads * burst * 200, threads * thrash * 4, threads * mixed,
            threads * evict_gets, chaos_gets]


def expected(program, scale, threads):
    """(gets, bytes or None, per-phase gets by name or None)."""
    if program == "ml_checkpoint_loader":
        return scaled(ML_EPOCHS, scale) * ML_GETS_PER_EPOCH, None, None
    if program == "network_server":
        return threads * scaled(NET_CONNECTIONS, scale) * NET_REQUESTS * 2, None, None
    if program == "file_pipeline":
        files = scaled(FILE_FILES, scale)
        per_run = sum(FILE_CHUNKS * 2 * FILE_CHUNK_SIZES[i % 5] for i in range(files))
        return FILE_RUNS * files * FILE_CHUNKS * 2, FILE_RUNS * per_run, None
    if program == "stress_test":
        phases = stress_phase_gets(scale, threads)
        return sum(phases), None, dict(zip(STRESS_PHASES, phases))
    if program == "http_server":
        return None, None, None
    raise ValueError("unknown program %r" % program)


def stats_fields(header):
    """The field names of struct zp_stats, in order, from the X-macros of
    zeropool.h: the header is the one list, the C writer expands the same."""
    with open(header, encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    fields = []
    for macro in STATS_MACROS:
        m = re.search(r"^[ \t]*#[ \t]*define[ \t]+%s\(X\)(.*)$" % macro, text, re.M)
        if m is None:
            raise ValueError("%s: no #define %s(X)" % (header, macro))
        names = re.findall(r"\bX\((\w+)\)", m.group(1))
        if not names:
            raise ValueError("%s: %s lists no fields" % (header, macro))
        fields += names
    return fields


def selftest(fields):
    """The formulas must give the spec's literal counts at scale 1, and the
    header's field lists must read as the counters the checks use."""
    checks = [
        (expected("ml_checkpoint_loader", 1.0, 1)[0], 868000),
        (expected("network_server", 1.0, 8)[0], 8000000),
        (expected("file_pipeline", 1.0, 1)[0], 150000),
        (expected("file_pipeline", 1.0, 1)[1], 3 * 13967360000),
        (stress_phase_gets(1.0, 12), [24000, 2400000, 600000, 24480, 899680]),
        (expected("ml_checkpoint_loader", 0.01, 1)[0], 8680),
        (len(fields) == len(set(fields)), True),
        (set(STATS_USED) <= set(fields), True),
    ]
    bad = [(got, want) for got, want in checks if got != want]
    for got, want in bad:
        print("selftest: got %r, want %r" % (got, want), file=sys.stderr)
    return 1 if bad else 0


class Failure(Exception):
    pass


# Exit status of a skipped test (ctest's SKIP_RETURN_CODE): a driver that
# exits 77 with "io_uring refused" on stderr (http_server --io uring where
# the kernel refuses io_uring) is skipped, not failed.
SKIP = 77


class Skip(Exception):
    pass


def require(cond, msg):
    if not cond:
        raise Failure(msg)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v))


# The counters check_stats reasons about (the header lists them all).
STATS_USED = ["gets", "puts", "outstanding", "cache_hits", "store_hits", "fresh", "oversize"]


def check_stats(doc, fields):
    st = doc["stats"]
    require(isinstance(st, dict), "stats must be an object for a pool backend")
    for k in fields:
        require(is_int(st.get(k)), "stats.%s missing or not an integer" % k)
    require(sorted(st) == sorted(fields),
            "stats has fields %s; zeropool.h lists %s" % (sorted(st), sorted(fields)))
    require(st["gets"] == doc["gets"], "stats.gets %d != gets %d" % (st["gets"], doc["gets"]))
    require(st["puts"] == doc["puts"], "stats.puts %d != puts %d" % (st["puts"], doc["puts"]))
    require(st["outstanding"] == 0, "stats.outstanding %d != 0" % st["outstanding"])
    served = st["cache_hits"] + st["store_hits"] + st["fresh"] + st["oversize"]
    require(served == st["gets"],
            "cache_hits + store_hits + fresh + oversize = %d != stats.gets %d"
            % (served, st["gets"]))
    require(is_num(doc["hit_rate"]), "hit_rate must be a number")
    want = (st["cache_hits"] + st["store_hits"]) / st["gets"] if st["gets"] else 0.0
    require(abs(doc["hit_rate"] - want) < 1e-6, "hit_rate %r != %r" % (doc["hit_rate"], want))
    require(isinstance(doc.get("config"), dict), "config must be an object")
    require(is_int(doc.get("preallocated")), "preallocated must be an integer")


def check_doc(doc, args):
    require(isinstance(doc, dict), "the JSON value is not an object")
    for k in ("program", "backend", "allocator", "api", "config_preset"):
        require(isinstance(doc.get(k), str) and doc[k], "%s missing or not a string" % k)
    require(doc["config_preset"] in CONFIG_PRESETS,
            "config_preset %r is none of %s" % (doc["config_preset"], ", ".join(CONFIG_PRESETS)))
    require(doc["config_preset"] == args.config_preset,
            "config_preset %r, but the command asked for %r"
            % (doc["config_preset"], args.config_preset))
    for k in ("scale", "wall_s", "setup_s"):
        require(is_num(doc.get(k)) and doc[k] >= 0, "%s missing or not a number" % k)
    for k in ("threads", "gets", "puts", "bytes", "expected_gets"):
        require(is_int(doc.get(k)) and doc[k] >= 0, "%s missing or not an integer" % k)
    require(doc.get("ok") is True, "ok is not true")
    program = doc["program"]
    require(program in DEFAULT_THREADS, "unknown program %r" % program)

    phases = doc.get("phases")
    require(isinstance(phases, list) and phases, "phases missing or empty")
    for p in phases:
        require(isinstance(p, dict) and isinstance(p.get("name"), str)
                and is_num(p.get("seconds")) and is_int(p.get("gets")),
                "bad phase entry %r" % (p,))
    require(sum(p["gets"] for p in phases) == doc["gets"],
            "the phases' gets do not add up to gets")

    gets = doc["gets"]
    require(gets == doc["puts"], "gets %d != puts %d" % (gets, doc["puts"]))
    require(gets == doc["expected_gets"],
            "gets %d != the driver's expected_gets %d" % (gets, doc["expected_gets"]))
    want_gets, want_bytes, want_phases = expected(program, doc["scale"], doc["threads"])
    if want_gets is not None:
        require(gets == want_gets, "gets %d != %d computed for %s at scale %r, %d threads"
                % (gets, want_gets, program, doc["scale"], doc["threads"]))
    if program == "http_server":
        check_server(doc, args)
    if want_bytes is not None:
        require(doc["bytes"] == want_bytes, "bytes %d != %d" % (doc["bytes"], want_bytes))
    if want_phases is not None:
        got = {p["name"]: p["gets"] for p in phases}
        require(got == want_phases, "phase gets %r != %r" % (got, want_phases))
    if args.expect_gets is not None:
        require(gets == args.expect_gets, "gets %d != %d" % (gets, args.expect_gets))
    if args.expect_bytes is not None:
        require(doc["bytes"] == args.expect_bytes,
                "bytes %d != %d" % (doc["bytes"], args.expect_bytes))

    if doc["backend"] == "malloc":
        require(doc.get("stats", 0) is None and doc.get("hit_rate", 0) is None,
                "malloc runs must have null stats and hit_rate")
    else:
        check_stats(doc, args.fields)


REAL_FILES_STR = ("dir", "dir_source", "fs_type", "read_requested", "read_mode",
                  "align_source")
REAL_FILES_INT = ("align", "count", "file_bytes", "bytes_read", "peak_rss_bytes",
                  "page_cache_before", "page_cache_after")
REAL_FILES_NUM = ("write_s", "read_s", "throughput_mb_s", "cpu_s", "cpu_ns_per_byte")
FALLBACK_PREFIX = "buffered (O_DIRECT refused: "
URING_FALLBACK_PREFIX = "direct (io_uring refused: "


def option(command, name, default=None):
    """The value of --name in the driver command (last one wins)."""
    want = default
    for i, a in enumerate(command):
        if a == name and i + 1 < len(command):
            want = command[i + 1]
        elif a.startswith(name + "="):
            want = a.split("=", 1)[1]
    return want


def check_real_files(doc, args, err):
    """The real-file mode's report (docs/workloads.md, "Real files")."""
    rf = doc.get("real_files")
    if option(args.command, "--files") is None:
        require(rf is None, "a simulated run must not report real_files")
        return
    require(isinstance(rf, dict), "real_files missing for a --files run")
    for k in REAL_FILES_STR:
        require(isinstance(rf.get(k), str) and rf[k], "real_files.%s missing" % k)
    for k in REAL_FILES_INT:
        require(is_int(rf.get(k)) and rf[k] >= 0, "real_files.%s missing" % k)
    for k in REAL_FILES_NUM:
        require(is_num(rf.get(k)) and rf[k] >= 0, "real_files.%s missing" % k)
    require(is_int(rf.get("page_cache_added")), "real_files.page_cache_added missing")
    passes = FILE_RUNS if doc["program"] == "file_pipeline" else scaled(ML_EPOCHS, doc["scale"])
    require(is_int(rf.get("cold_bytes_read")) and rf["cold_bytes_read"] * passes
            == rf.get("bytes_read"), "cold_bytes_read is not the first of %d passes' bytes"
            % passes)
    require(is_num(rf.get("cold_cpu_ns_per_byte")), "cold_cpu_ns_per_byte missing")
    window = option(args.command, "--read-window", str(4 << 20))
    if window.isdigit():
        require(rf.get("read_window") == int(window),
                "read_window %r, the command asked for %s" % (rf.get("read_window"), window))
    require(is_int(rf.get("read_requests")) and 0 < rf["read_requests"] <= doc["gets"],
            "read_requests %r: not 1 .. gets" % rf.get("read_requests"))
    if window == "0":
        require(rf["read_requests"] * 2 == doc["gets"] if doc["program"] == "file_pipeline"
                else rf["read_requests"] == doc["gets"],
                "read_requests %d: not one per buffer with --read-window 0"
                % rf["read_requests"])
    require(rf["page_cache_added"] == rf["page_cache_after"] - rf["page_cache_before"],
            "page_cache_added is not after - before")
    backend = option(args.command, "--backend")
    want = option(args.command, "--read", "buffered" if backend == "malloc" else "direct")
    require(rf["read_requested"] == want,
            "read_requested %r, the command asked for %r" % (rf["read_requested"], want))
    mode = rf["read_mode"]
    if want == "buffered":
        require(mode == "buffered", "read_mode %r for --read buffered" % mode)
        if backend is None:
            require(doc["backend"] == "malloc", "buffered reads default to malloc")
    else:
        require(doc["backend"] != "malloc", "direct reads need a pool")
        fell_back = mode.startswith(FALLBACK_PREFIX) and mode.endswith(")")
        uring_fell_back = (want == "uring" and mode.startswith(URING_FALLBACK_PREFIX)
                           and mode.endswith(")"))
        require(mode == want or fell_back or uring_fell_back,
                "read_mode %r: neither %s nor a fallback that says why" % (mode, want))
        if fell_back:
            require("O_DIRECT refused" in err, "O_DIRECT fallback not announced on stderr")
        if uring_fell_back:
            require("io_uring refused" in err, "io_uring fallback not announced on stderr")
        if args.expect_fallback:
            require(fell_back, "expected the O_DIRECT fallback, read_mode is %r" % mode)
        if args.expect_uring_fallback:
            require(uring_fell_back, "expected the io_uring fallback, read_mode is %r" % mode)
        elif uring_fell_back:
            raise Skip("io_uring refused by this kernel: %s" % mode)
    if doc["program"] == "file_pipeline":
        files = scaled(FILE_FILES, doc["scale"])
        want_file_bytes = sum(FILE_CHUNKS * FILE_CHUNK_SIZES[i % 5] for i in range(files))
        require(rf["count"] == files, "real_files.count %d != %d" % (rf["count"], files))
        require(rf["file_bytes"] == want_file_bytes,
                "file_bytes %d != %d" % (rf["file_bytes"], want_file_bytes))
        require(rf["bytes_read"] == FILE_RUNS * want_file_bytes,
                "bytes_read %d != %d" % (rf["bytes_read"], FILE_RUNS * want_file_bytes))
    else:
        require(rf["bytes_read"] == doc["bytes"],
                "bytes_read %d != bytes %d" % (rf["bytes_read"], doc["bytes"]))
        require(rf["count"] == 1, "ml_checkpoint_loader writes one checkpoint, not %d files"
                % rf["count"])
        require(rf["file_bytes"] == rf["cold_bytes_read"],
                "the checkpoint (%d bytes) is not one epoch's reads (%d)"
                % (rf["file_bytes"], rf["cold_bytes_read"]))
    require(rf["bytes_read"] > 0 and rf["file_bytes"] > 0, "nothing was read")
    require(not os.path.exists(rf["dir"]), "the temporary directory %s is still there"
            % rf["dir"])


def check_server(doc, args):
    for k in SERVER_FIELDS:
        require(is_int(doc.get(k)) and doc[k] >= 0, "%s missing or not an integer" % k)
    require(doc.get("self_test_failed", 0) == 0, "the self-test client's checks failed")
    if "self_test_failed" in doc:  # its 4 KiB-window connection forces partial writes
        require(doc.get("partial_writes", 0) > 0, "the self-test made no partial write")
    require(doc["maxrss_kib"] > 0 and doc["vmhwm_kib"] > 0, "no peak RSS read")
    if args.expect_requests is not None:
        require(doc["requests"] == args.expect_requests,
                "requests %d != %d" % (doc["requests"], args.expect_requests))
    if args.expect_idle is not None:
        require(doc.get("idle_conns_held") == args.expect_idle,
                "idle_conns_held %r != %d" % (doc.get("idle_conns_held"), args.expect_idle))
    for spec in args.expect_min:
        field, _, n = spec.partition("=")
        require(is_int(doc.get(field)) and doc[field] >= int(n),
                "%s %r, expected at least %s" % (field, doc.get(field), n))
    for spec in args.expect_share_below:
        ratio, _, r = spec.partition("=")
        part, _, whole = ratio.partition("/")
        require(is_num(doc.get(part)) and is_num(doc.get(whole)),
                "%s or %s missing" % (part, whole))
        require(doc[part] < float(r) * doc[whole], "%s %r is not below %s x %s %r"
                % (part, doc[part], r, whole, doc[whole]))


def run(args):
    try:
        proc = subprocess.run(args.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise Failure("timed out after %d s" % args.timeout)
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")

    if args.expect_exit is not None:
        require(proc.returncode == args.expect_exit, "exit status %d, expected %d; stderr: %s"
                % (proc.returncode, args.expect_exit, err.strip()))
        if args.expect_exit != 0:
            require(out == "", "stdout should be empty, got %r" % out[:200])
            require(err.strip() != "", "stderr should explain the error")
        if args.stdout_contains is not None:
            require(args.stdout_contains in out, "stdout lacks %r" % args.stdout_contains)
        return None

    if proc.returncode == SKIP and "io_uring refused" in err:
        raise Skip(err.strip())
    require(proc.returncode == 0, "exit status %d; stderr: %s" % (proc.returncode, err.strip()))
    try:
        doc = json.loads(out)
    except ValueError as e:
        raise Failure("stdout is not one JSON value (%s): %r" % (e, out[:200]))
    check_doc(doc, args)
    check_real_files(doc, args, err)
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--stats-header", default=DEFAULT_HEADER,
                    help="zeropool.h, whose X-macros list the stats fields")
    ap.add_argument("--expect-exit", type=int)
    ap.add_argument("--expect-gets", type=int)
    ap.add_argument("--expect-bytes", type=int)
    ap.add_argument("--stdout-contains")
    ap.add_argument("--expect-fallback", action="store_true",
                    help="real-file mode: O_DIRECT must have been refused, and said so")
    ap.add_argument("--expect-uring-fallback", action="store_true",
                    help="real-file mode, --read uring: io_uring must have been refused, and "
                    "said so")
    ap.add_argument("--expect-requests", type=int, help="http_server: responses written")
    ap.add_argument("--expect-idle", type=int, help="http_server: idle connections held")
    ap.add_argument("--expect-min", action="append", default=[], metavar="FIELD=N",
                    help="http_server: the report's FIELD is at least N (repeatable)")
    ap.add_argument("--expect-share-below", action="append", default=[],
                    metavar="PART/WHOLE=R",
                    help="http_server: the report's PART < R x WHOLE (repeatable)")
    ap.add_argument("--timeout", type=int, default=280)
    ap.add_argument("command", nargs="*")
    args = ap.parse_args()

    try:
        args.fields = stats_fields(args.stats_header)
    except (OSError, ValueError) as e:
        print("FAIL: stats fields: %s" % e, file=sys.stderr)
        return 1
    if args.selftest:
        return selftest(args.fields)
    if not args.command:
        ap.error("no driver command given")
    args.config_preset = option(args.command, "--config", "zeropool")
    fresh = None
    if "@DIR@" in args.command:
        fresh = tempfile.mkdtemp(prefix="check_json-")
        args.command = [fresh if a == "@DIR@" else a for a in args.command]
    try:
        doc = run(args)
        if fresh is not None:
            left = os.listdir(fresh)
            require(not left, "the driver left %s in %s" % (left, fresh))
    except Failure as e:
        print("FAIL: %s\n  command: %s" % (e, " ".join(args.command)), file=sys.stderr)
        return 1
    except Skip as e:  # http_server --io uring where the kernel refuses io_uring
        print("SKIP: %s" % e, file=sys.stderr)
        return SKIP
    finally:
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
    if doc is not None:
        print("ok: %s/%s gets %d, wall %.3f s" % (doc["program"], doc["backend"], doc["gets"],
                                                  doc["wall_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
