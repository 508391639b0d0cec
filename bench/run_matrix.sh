#!/usr/bin/env bash
# run_matrix.sh - the benchmark matrix in one command (see bench/run_matrix.py
# and docs/benchmarks.md):
#
#   bench/run_matrix.sh [--smoke | --quick | --full] [--threads "1 2 4"] [--out DIR] ...
#
# Makes sure python3 and matplotlib are there (Debian packages python3 and
# python3-matplotlib; apt-get install -y only what dpkg -s says is missing),
# then runs bench/run_matrix.py with /usr/bin/python3, which installs the
# rest, builds (Release, build/release), runs everything and writes
# results/<date>-<host>/.  All options are run_matrix.py's.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

no_install=0
for a in "$@"; do [ "$a" = --no-install ] && no_install=1; done

missing=()
for p in python3 python3-matplotlib; do
	dpkg -s "$p" 2>/dev/null | grep -q "^Status: install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if ((no_install)); then
		echo "run_matrix.sh: missing ${missing[*]} (--no-install given)" >&2
	else
		sudo=""
		[ "$(id -u)" -eq 0 ] || sudo=sudo
		export DEBIAN_FRONTEND=noninteractive
		echo "run_matrix.sh: installing ${missing[*]}"
		$sudo apt-get install -y "${missing[@]}" ||
			{ $sudo apt-get update && $sudo apt-get install -y "${missing[@]}"; }
	fi
fi
exec /usr/bin/python3 "$here/run_matrix.py" "$@"
