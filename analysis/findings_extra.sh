#!/bin/sh
# findings_extra.sh RESULTS_DIR: what docs/findings.md needs beyond the
# matrix, measured with the build the run used (ZP_BUILD_DIR, default
# build/release), into RESULTS_DIR/extra/.  About two minutes.
#
# 1. Where the cycles of the backend path go under contention (question 1):
# zp_bench's `backend` case (cache_depth 0: every get and put goes to
# the shared store) for 4 KiB buffers at 2 threads, one backend at a time,
# under `perf record -e cpu-clock` (these VMs have no hardware counters),
# writing <backend>.top.txt (self time by symbol) and <backend>.annotate.txt
# (the hottest instructions of the three hottest library symbols).
# 2. What the double-put check and the per-class counters cost on the hit
# path (question 5): bench/zp_check_cost, written to check_cost.txt; and
# poisoning under AddressSanitizer, poison_cost.txt.
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

# profile DATA OUT LINES ARGS...: zp_bench ARGS under perf record (cpu-clock,
# into DATA), its output in OUT.bench.txt, the LINES hottest symbols by self
# time (dso and symbol) in OUT.top.txt.
profile() {
	data=$1 o=$2 lines=$3
	shift 3
	perf record -q -e cpu-clock -o "$data" -- "$bin" "$@" >"$o.bench.txt" 2>&1
	perf report -i "$data" --stdio --no-children --sort dso,sym 2>/dev/null \
		| grep -v '^#' | grep -v '^$' | head -"$lines" >"$o.top.txt"
}

for b in locked lockfree-ck lockfree-urcu; do
	echo "findings_extra.sh: $b" >&2
	profile "$tmp/$b.data" "$out/$b" 40 --zp_threads=2 \
		--benchmark_filter="^pool/$b/backend/size:4096/.*threads:2\$" --benchmark_min_time=2
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
# and what use-after-put poisoning adds in a debug-checks build under
# AddressSanitizer: bench/zp_poison_cost built with -fsanitize=address
# against the asan preset's configuration header (configured if missing).
echo "findings_extra.sh: zp_poison_cost (AddressSanitizer)" >&2
[ -f "$root/build/asan/lib/include/zeropool_config.h" ] || (cd "$root" && cmake --preset asan >/dev/null)
${CC:-cc} -std=c11 -O2 -fsanitize=address -I"$root/lib" -I"$root/lib/include" -I"$root/build/asan/lib/include" \
	"$root/bench/zp_poison_cost.c" -o "$tmp/zp_poison_cost"
"$tmp/zp_poison_cost" >"$out/poison_cost.txt"

# 3. Where the time goes by buffer size (question 6): the `hit` case (get,
# touch, put, one thread) at 1 MiB, 16 MiB and 256 MiB, the pool
# (lockfree-ck) and glibc's malloc, under perf (kernel symbols included:
# page faults, zeroing, mmap and munmap are the kernel's), writing
# sizes/<who>.<size>.top.txt.
mkdir -p "$out/sizes"
for size in 1048576 16777216 268435456; do
	for who in pool/lockfree-ck malloc/glibc; do
		tag=$(echo "$who" | sed 's#.*/##').$size
		echo "findings_extra.sh: hit $who $size" >&2
		profile "$tmp/hit.data" "$out/sizes/$tag" 40 \
			--benchmark_filter="^$who/hit/size:$size/" --benchmark_min_time=1
	done
done

# 4. What eviction spends freeing and allocating (question 3): the `evict`
# case of lockfree-ck at 4 KiB and 1 MiB, both policies, under perf (kernel
# included), evict/<size>.<policy>.top.txt.
mkdir -p "$out/evict"
for size in 4096 1048576; do
	for pol in coldest newest; do
		echo "findings_extra.sh: evict $size $pol" >&2
		profile "$tmp/evict.data" "$out/evict/$size.$pol" 60 \
			--benchmark_filter="^pool/lockfree-ck/evict/size:$size/keep:8/mpc:4/policy:$pol/" \
			--benchmark_min_time=1
	done
done

# 5. The liburcu flavours (question 4): the liburcu backend on the mb
# flavour (lockfree-urcu) against the memb, bp and QSBR trials of the same
# build (CMake preset urcu-trials, its own tree), on the backend path (1, 2,
# 4 threads) and the cross-thread magazine path (prodcons, 2 and 4
# threads), 4 KiB; one process per backend per round, the order rotating,
# extra/urcu/<backend>.<round>.json.
echo "findings_extra.sh: liburcu flavours (build/urcu-trials)" >&2
(cd "$root" && cmake --preset urcu-trials >/dev/null &&
	cmake --build --preset urcu-trials --target zp_bench >/dev/null)
tbin=$root/build/urcu-trials/bench/zp_bench
mkdir -p "$out/urcu"
rounds=${ZP_URCU_ROUNDS:-5}
r=0
while [ "$r" -lt "$rounds" ]; do
	case $((r % 4)) in
	0) order="lockfree-urcu lockfree-urcu-memb lockfree-urcu-bp lockfree-urcu-qsbr" ;;
	1) order="lockfree-urcu-memb lockfree-urcu-bp lockfree-urcu-qsbr lockfree-urcu" ;;
	2) order="lockfree-urcu-bp lockfree-urcu-qsbr lockfree-urcu lockfree-urcu-memb" ;;
	*) order="lockfree-urcu-qsbr lockfree-urcu lockfree-urcu-memb lockfree-urcu-bp" ;;
	esac
	for b in $order; do
		"$tbin" --zp_threads=1,2,4 --benchmark_min_time=0.3 \
			--benchmark_filter="^pool/$b/(backend|prodcons)/size:4096/" \
			--benchmark_out="$out/urcu/$b.$r.json" --benchmark_out_format=json >/dev/null 2>&1
	done
	r=$((r + 1))
done
