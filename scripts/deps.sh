#!/usr/bin/env bash
# Install the Debian 12 packages zeropool-c needs that are missing.
# Usage: scripts/deps.sh [--bench]   (--bench adds the allocator peers and plotting)
# Runs apt-get only when something is missing; needs root (or sudo) then.
set -euo pipefail

pkgs=(build-essential cmake pkg-config git python3 valgrind
      liburcu-dev libck-dev libbenchmark-dev
      clang clang-format cppcheck libclang-rt-14-dev)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev
         python3-matplotlib linux-perf time)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}"
