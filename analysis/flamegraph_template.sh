#!/usr/bin/env bash
# flamegraph_template.sh - print the path of the HTML template that perf's
# flamegraph script (perf script report flamegraph, from Debian's
# linux-perf) renders into, fetching it first if needed.
#
#   analysis/flamegraph_template.sh [--cache DIR]
#
# The template is d3-flame-graph's d3-flamegraph-base.html (Netflix's
# d3-flame-graph, the renderer perf's script is written for; one
# self-contained HTML file, d3 inlined).  Debian 12 does not package it
# (Fedora's js-d3-flame-graph does), so it comes from the npm registry with
# `npm pack`, pinned to 4.1.3: the last release that ships the template (5.x
# ships only the library).  Cached in DIR (default build/d3-flame-graph).
# Exits 1 with a message when npm is missing or the fetch fails.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=4.1.3
cache="$repo/build/d3-flame-graph"
while [ $# -gt 0 ]; do
	case "$1" in
	--cache) cache=$2; shift 2 ;;
	-h | --help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "flamegraph_template.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

template="$cache/$version/package/dist/templates/d3-flamegraph-base.html"
if [ ! -s "$template" ]; then
	command -v npm >/dev/null || {
		echo "flamegraph_template.sh: npm not installed (scripts/deps.sh --bench installs it)" >&2
		exit 1
	}
	mkdir -p "$cache/$version"
	tmp=$(mktemp -d "$cache/$version/fetch.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	if ! (cd "$tmp" && npm pack --silent "d3-flame-graph@$version" >/dev/null 2>&1); then
		echo "flamegraph_template.sh: npm pack d3-flame-graph@$version failed" >&2
		exit 1
	fi
	tar -xzf "$tmp/d3-flame-graph-$version.tgz" -C "$cache/$version"
	[ -s "$template" ] || {
		echo "flamegraph_template.sh: the package has no $template" >&2
		exit 1
	}
fi
echo "$template"
