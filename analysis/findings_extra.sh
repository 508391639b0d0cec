#!/bin/sh
# findings_extra.sh RESULTS_DIR: what docs/findings.md needs beyond the
# matrix, measured with the build the run used (ZP_BUILD_DIR, default
# build/release), into RESULTS_DIR/extra/.  About a minute.
#
# 1. Where the cycles of the backend path go under contention (question 1):
# zp_bench's `backend` case (cache_depth 0: every get and put goes to
# the shared store) for 4 KiB buffers at 2 threads, one backend at a time,
# under `perf record -e cpu-clock` (these VMs have no hardware counters),
# writing <backend>.top.txt (self time by symbol) and <backend>.annotate.txt
# (the hottest instructions of the three hottest library symbols).
# 2. What the double-put check costs on the hit path (question 5):
# bench/zp_check_cost, written to check_cost.txt.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
[ $# -eq 1 ] || { echo "usage: analysis/findings_extra.sh RESULTS_DIR" >&2; exit 2; }
out=$1/extra
bin=${ZP_BUILD_DIR:-$root/build/release}/bench/zp_bench
[ -x "$bin" ] || { echo "findings_extra.sh: build first ($bin missing)" >&2; exit 2; }
command -v perf >/dev/null || { echo "findings_extra.sh: perf missing (scripts/deps.sh --bench)" >&2; exit 2; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for b in locked lockfree-ck lockfree-urcu; do
	echo "findings_extra.sh: $b" >&2
	perf record -q -e cpu-clock -o "$tmp/$b.data" -- "$bin" --zp_threads=2 \
		--benchmark_filter="^pool/$b/backend/size:4096/.*threads:2\$" \
		--benchmark_min_time=2 >"$out/$b.bench.txt" 2>&1
	perf report -i "$tmp/$b.data" --stdio --no-children --sort dso,sym 2>/dev/null \
		| grep -v '^#' | grep -v '^$' | head -40 >"$out/$b.top.txt"
	: >"$out/$b.annotate.txt"
	# the three hottest symbols of the library, libc's locks, liburcu or CK
	syms=$(grep -E 'libzeropool|libc|liburcu|libck' "$out/$b.top.txt" | head -3 \
		| sed -E 's/.*\[[.k]\] +//; s/ +$//')
	echo "$syms" | while IFS= read -r s; do
		[ -n "$s" ] || continue
		echo "===================== $s =====================" >>"$out/$b.annotate.txt"
		perf annotate -i "$tmp/$b.data" --stdio "$s" 2>/dev/null | grep -E '^ +[0-9]+\.[0-9]+ +:' \
			| sort -rn | head -12 >>"$out/$b.annotate.txt" || true
	done
done
echo "findings_extra.sh: zp_check_cost" >&2
"${ZP_BUILD_DIR:-$root/build/release}/bench/zp_check_cost" >"$out/check_cost.txt"
