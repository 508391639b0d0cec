#!/usr/bin/env bash
# profile_smoke.sh WORKDIR BACKEND - the profiling tool chain end to end, for
# ctest: analysis/profile.sh --mode smoke on stress_test with one backend and
# glibc malloc, in a build tree of its own under WORKDIR; then checks that
# each profile has its top symbols and, when the flame graph template could
# be had (npm; analysis/flamegraph_template.sh), its flame graph with the
# workload's frames in it and a place in flamegraphs.html.
# Exit 77 (skipped) where perf cannot record here.
set -euo pipefail

work=$1 backend=$2
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v perf >/dev/null || { echo "profile_smoke: perf not installed: skipped"; exit 77; }
mkdir -p "$work"
if ! perf record -q -e cpu-clock -o "$work/probe.data" -- true >/dev/null 2>&1; then
	echo "profile_smoke: perf record is not permitted here (perf_event_paranoid): skipped"
	exit 77
fi
rm -f "$work/probe.data"
rm -rf "$work/out"

"$repo/analysis/profile.sh" --mode smoke --workloads stress_test --backends "$backend" \
	--build-dir "$work/build" --jobs 2 --out "$work/out"

fail() { echo "profile_smoke: $*" >&2; exit 1; }
for t in "$backend" malloc-glibc; do
	top="$work/out/stress_test.$t.top.txt"
	grep -q "stress_test\|libzeropool\|libc" "$top" || fail "$top has no symbols"
done
if template=$("$repo/analysis/flamegraph_template.sh" 2>/dev/null); then
	for t in "$backend" malloc-glibc; do
		f="$work/out/stress_test.$t.flame.html"
		[ -s "$f" ] || fail "no flame graph $f"
		grep -q "stress_test" "$f" || fail "$f has no stress_test frames"
		grep -q "stress_test.$t.flame.html" "$work/out/flamegraphs.html" ||
			fail "flamegraphs.html does not show $t"
	done
	echo "profile_smoke: profiles and flame graphs of $backend and malloc-glibc"
else
	echo "profile_smoke: profiles checked; no flame graph template here (npm), flame graphs not checked"
fi
