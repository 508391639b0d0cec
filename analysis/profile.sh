#!/usr/bin/env bash
# profile.sh - where the time goes: perf profiles of every workload driver
# on every backend (and on glibc malloc for reference).
#
#   analysis/profile.sh [--out DIR] [--mode smoke|quick] [--build-dir DIR]
#                       [--jobs N] [--backends a,b] [--workloads a,b] [--keep]
#                       [--no-flame]
#
# 1. Builds a profiling tree (default build/profiling, the flags of the
#    "profiling" CMake preset): RelWithDebInfo with -fno-omit-frame-pointer
#    -mno-omit-leaf-frame-pointer, only the drivers and zp_hitpath.
# 2. For each workload x target: perf record -e cpu-clock --call-graph dwarf
#    (hardware counters are not available on these VMs) at a scale that gives
#    a few hundred ms of pool work, then
#      <workload>.<target>.top.txt       perf report --stdio --no-children
#                                        --sort dso,sym (self %, flat)
#      <workload>.<target>.callers.txt   the same with call chains (callers of
#                                        the top symbols), --percent-limit 2
#      <workload>.<target>.annotate.txt  perf annotate --stdio of the hot pool
#                                        functions present in the profile
#      <workload>.<target>.flame.html    a flame graph of the same samples:
#                                        perf script report flamegraph (perf's
#                                        own script) into d3-flame-graph's
#                                        template (analysis/flamegraph_template.sh)
#    and flamegraphs.html, every workload's flame graphs side by side, one
#    column per target.  analysis/summarize.py puts the top symbols side by
#    side in summary.md and links flamegraphs.html.  --no-flame, or no
#    template (npm missing, no network), skips the flame graphs with a note.
# 3. perf.data files are deleted unless --keep (they are tens of MB).
#
# Defaults: --out results/<date>-<host>/profile, --mode quick.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=""
mode=quick
build_dir="$repo/build/profiling"
jobs=$(nproc 2>/dev/null || echo 2)
backends=""
workloads="ml_checkpoint_loader network_server file_pipeline stress_test"
keep=0
flame=1

while [ $# -gt 0 ]; do
	case "$1" in
	--out) out=$2; shift 2 ;;
	--mode) mode=$2; shift 2 ;;
	--build-dir) build_dir=$2; shift 2 ;;
	--jobs) jobs=$2; shift 2 ;;
	--backends) backends=${2//,/ }; shift 2 ;;
	--workloads) workloads=${2//,/ }; shift 2 ;;
	--keep) keep=1; shift ;;
	--no-flame) flame=0; shift ;;
	-h|--help) sed -n '2,30p' "$0"; exit 0 ;;
	*) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -n "$out" ] || out="$repo/results/$(date +%F)-$(hostname -s)/profile"
mkdir -p "$out"
out=$(cd "$out" && pwd)

command -v perf >/dev/null || { echo "profile.sh: perf not installed (linux-perf)" >&2; exit 1; }
template=""
if [ "$flame" = 1 ]; then
	template=$("$repo/analysis/flamegraph_template.sh") ||
		echo "profile.sh: no flame graph template, flame graphs skipped" >&2
fi

# flame_graph DATA TAG: render <TAG>.flame.html from a perf.data file.
# perf's script reads the header of ./perf.data, so it runs in a directory
# of its own with the data under that name.
flame_graph() {
	local dir
	dir=$(mktemp -d "${TMPDIR:-/tmp}/zp-flame.XXXXXX")
	ln -s "$1" "$dir/perf.data"
	if ! (cd "$dir" && perf script report flamegraph --template "$template" \
		-o "$out/$2.flame.html" >"$dir/log" 2>&1); then
		echo "profile.sh: flame graph failed for $2:" >&2
		tail -n 3 "$dir/log" >&2
		status=1
	fi
	rm -rf "$dir"
}

# flame_index: flamegraphs.html, a row of frames per workload, one per
# target, in the order profiled (default backend first).
flame_index() {
	local f="$out/flamegraphs.html" w t row
	{
		echo "<!doctype html><html><head><meta charset=\"utf-8\"><title>zeropool-c flame graphs</title>"
		echo "<style>body{font-family:sans-serif;margin:8px}.row{display:flex;gap:4px}"
		echo ".row div{flex:1;min-width:0}iframe{width:100%;height:560px;border:1px solid #ccc}</style>"
		echo "</head><body><h1>Flame graphs (perf, cpu-clock, call graphs)</h1>"
		echo "<p>One row per workload, one column per target; click a frame to zoom, or open it alone.</p>"
		for w in $workloads; do
			row=""
			for t in $backends malloc-glibc; do
				[ -s "$out/$w.$t.flame.html" ] || continue
				row="$row<div><a href=\"$w.$t.flame.html\">$t</a><iframe src=\"$w.$t.flame.html\"></iframe></div>
"
			done
			[ -n "$row" ] || continue # no graph for this workload
			printf '<h2>%s</h2><div class="row">\n%s</div>\n' "$w" "$row"
		done
		echo "</body></html>"
	} >"$f"
	echo "profile.sh: flame graphs side by side in $f"
}

# Scales: pool runs long enough for a few hundred samples; malloc runs of
# ml_checkpoint_loader map and unmap 64-256 MiB per get, so they get less.
declare -A pool_scale malloc_scale
if [ "$mode" = smoke ]; then
	pool_scale=([ml_checkpoint_loader]=1 [network_server]=0.1 [file_pipeline]=1 [stress_test]=0.1)
	malloc_scale=([ml_checkpoint_loader]=0.01 [network_server]=0.1 [file_pipeline]=0.1 [stress_test]=0.1)
	freq=999
else
	pool_scale=([ml_checkpoint_loader]=20 [network_server]=2 [file_pipeline]=50 [stress_test]=1)
	malloc_scale=([ml_checkpoint_loader]=0.05 [network_server]=2 [file_pipeline]=1 [stress_test]=1)
	freq=4999
fi

echo "profile.sh: building $build_dir (RelWithDebInfo, frame pointers)"
cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	"-DCMAKE_C_FLAGS=-fno-omit-frame-pointer -mno-omit-leaf-frame-pointer" \
	"-DCMAKE_CXX_FLAGS=-fno-omit-frame-pointer -mno-omit-leaf-frame-pointer" \
	-DZP_BUILD_WORKLOADS=ON >"$out/build.log" 2>&1
targets="zp_hitpath"
for w in $workloads; do targets="$targets $w"; done
# shellcheck disable=SC2086
cmake --build "$build_dir" -j "$jobs" --target $targets >>"$out/build.log" 2>&1 || {
	echo "profile.sh: build failed, see $out/build.log" >&2
	exit 1
}

hit=$(find "$build_dir" -name zp_hitpath -type f -perm -u+x | head -n1)
[ -n "$backends" ] || backends=$("$hit" --list | tr '\n' ' ')

# The pool's hot functions, if they appear in a profile.
hot_syms="zp_get zp_put _zp_cache_get_slow _zp_cache_put_slow _zp_store_take _zp_store_give
	locked_take locked_give ck_take ck_give urcu_take urcu_give _zp_buf_new _zp_buf_free"

status=0
for w in $workloads; do
	bin=$(find "$build_dir" -name "$w" -type f -perm -u+x | head -n1)
	if [ -z "$bin" ]; then
		echo "profile.sh: $w not built, skipped"
		continue
	fi
	for target in $backends malloc; do
		if [ "$target" = malloc ]; then
			scale=${malloc_scale[$w]}
			tag="$w.malloc-glibc"
		else
			scale=${pool_scale[$w]}
			tag="$w.$target"
		fi
		data=$(mktemp "${TMPDIR:-/tmp}/zp-perf.XXXXXX")
		echo "profile.sh: $tag (scale $scale)"
		if ! perf record -q -e cpu-clock -F "$freq" --call-graph dwarf -o "$data" -- \
			"$bin" --backend "$target" --scale "$scale" --quiet >/dev/null 2>"$out/$tag.record.log"; then
			echo "profile.sh: perf record failed for $tag (see $tag.record.log)" >&2
			status=1
			rm -f "$data"
			continue
		fi
		[ -s "$out/$tag.record.log" ] || rm -f "$out/$tag.record.log"
		perf report -i "$data" --stdio --no-children --sort dso,sym -g none \
			--percent-limit 0.2 >"$out/$tag.top.txt" 2>/dev/null || status=1
		perf report -i "$data" --stdio --no-children --sort dso,sym -g caller,0.5,callee \
			--percent-limit 2 >"$out/$tag.callers.txt" 2>/dev/null || true
		: >"$out/$tag.annotate.txt"
		for s in $hot_syms; do
			if grep -qE "\] $s\s*$" "$out/$tag.top.txt"; then
				echo "===================== $s =====================" >>"$out/$tag.annotate.txt"
				# Into a file first: cut off by head, perf would die of SIGPIPE.
				perf annotate -i "$data" --stdio -s "$s" >"$data.ann" 2>/dev/null || true
				sed -n '1,400p' "$data.ann" >>"$out/$tag.annotate.txt"
				rm -f "$data.ann"
			fi
		done
		[ -z "$template" ] || flame_graph "$data" "$tag"
		if [ "$keep" = 1 ]; then mv "$data" "$out/$tag.perf.data"; else rm -f "$data"; fi
	done
done
[ -z "$template" ] || flame_index
echo "profile.sh: results in $out"
exit $status
