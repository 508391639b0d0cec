#!/bin/sh
# decay_curve.sh [--quick] OUTDIR: resident memory over time for a load that
# stops (bench/zp_decay_curve), for the pool with its default decay_ms and
# the malloc peers doing the same work, side by side; writes OUTDIR/*.csv,
# OUTDIR/summary.md and OUTDIR/decay_curve.png (analysis/decay_curve.py).
# --quick: 0.5 s of load, decay_ms 1000, 3 s of quiet (about half a minute
# in all); else 2 s, the default 10 s, 25 s (about 3 minutes).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${ZP_BUILD_DIR:-$root/build/release}/bench/zp_decay_curve
case "${1:-}" in
--quick) args="--load-ms 500 --decay-ms 1000 --quiet-ms 3000"; shift ;;
*) args="--load-ms 2000 --decay-ms 10000 --quiet-ms 25000" ;;
esac
[ $# -eq 1 ] || { echo "usage: bench/decay_curve.sh [--quick] OUTDIR" >&2; exit 2; }
out=$1
[ -x "$bin" ] || { echo "decay_curve.sh: build first ($bin missing)" >&2; exit 2; }
mkdir -p "$out"
echo "$args" >"$out/params.txt"
{ echo "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD -- lib 2>/dev/null || echo ' (lib/ modified)')"
  echo "cpus $(nproc), kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
} >"$out/machine.txt"
run() { # name [env...] -- args
  name=$1; shift
  echo "decay_curve.sh: $name" >&2
  env "$@" >"$out/$name.csv"
}
# Default configuration first; the maintenance thread is the opt-in users
# set for pools that go quiet (a quiet pool has no slow paths to run steps).
run pool-default-stay "$bin" $args --maintain none --idle-threads stay
run pool-thread-stay "$bin" $args --maintain thread --idle-threads stay
run pool-thread-exit "$bin" $args --maintain thread --idle-threads exit
run malloc-glibc "$bin" $args --backend malloc
for peer in jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4 mimalloc:libmimalloc.so.2; do
  lib=$(/sbin/ldconfig -p | awk -v l="${peer#*:}" '$1 == l {print $NF; exit}')
  [ -n "$lib" ] || { echo "decay_curve.sh: ${peer#*:} not found, skipped" >&2; continue; }
  run "malloc-${peer%%:*}" LD_PRELOAD="$lib" "$bin" $args --backend malloc
done
/usr/bin/python3 "$root/analysis/decay_curve.py" "$out"
