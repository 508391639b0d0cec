#!/usr/bin/env bash
# Install the Debian 12 packages zeropool-c needs that are missing.
# Usage: scripts/deps.sh [--bench] [--check]
#   --bench  adds the allocator peers, plotting and wrk (bench/run_matrix.py uses
#            this list: it is the only one)
#   --check  installs nothing: lists what is missing, exits 1 if anything is
# Runs apt-get only when something is missing; needs root (or sudo) then.
set -euo pipefail

bench=0 check=0
for a in "$@"; do
  case "$a" in
    --bench) bench=1 ;;
    --check) check=1 ;;
  esac
done

# liburing-dev: the optional io_uring module (uring/); the library builds
# without it.
pkgs=(build-essential cmake pkg-config git python3 valgrind
      liburcu-dev libck-dev libbenchmark-dev liburing-dev
      clang clang-format cppcheck libclang-rt-14-dev)
if ((bench)); then
  pkgs+=(libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev
         python3-matplotlib linux-perf time wrk)
  # npm fetches the flame graph template (analysis/flamegraph_template.sh).
  # Any npm will do: a node.js from elsewhere (NodeSource) ships its own and
  # conflicts with Debian's npm package, so the package is only installed
  # when there is no npm command at all.
  command -v npm >/dev/null || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi
if ((check)); then
  echo "deps: missing ${missing[*]}"
  exit 1
fi
echo "deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}"
