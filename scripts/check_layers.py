#!/usr/bin/env python3
"""Check that the library's includes run one way (docs/design.md, "Files").

    scripts/check_layers.py [--graph]

Each file of lib/ has a layer; a file may include only headers of its own
layer or below, so the front end has no circle:

    0  zeropool.h zeropool_config.h zp_atomic.h zp_poison.h   leaves
       zp_backend_services.h
    1  zp_backend.h                                            the contract
    2  zp_os.* zp_arena.* zp_config.* zp_registry.c            below the store
    3  zp_store.* zp_decay.*                                   the store
    4  zp_tcache.*                                             thread caches
    5  zp_alloc.c zp_pool.c zp_stats.c zp_fork.*               entry points

A backend (locked/, lockfree/) includes from lib/ only zp_backend.h,
zp_backend_services.h and the public leaves.  --graph prints the include
graph of lib/.  Exits 1 on a violation.
Standard library only.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYER = {
    "zeropool.h": 0, "zeropool_config.h": 0, "zp_atomic.h": 0, "zp_poison.h": 0,
    "zp_backend_services.h": 0,
    "zp_backend.h": 1, "zp_backends.inc": 1,
    "zp_os.h": 2, "zp_os.c": 2, "zp_arena.h": 2, "zp_arena.c": 2, "zp_config.h": 2, "zp_config.c": 2, "zp_registry.c": 2,
    "zp_store.h": 3, "zp_store.c": 3, "zp_decay.h": 3, "zp_decay.c": 3,
    "zp_tcache.h": 4, "zp_tcache.c": 4,
    "zp_alloc.c": 5, "zp_pool.c": 5, "zp_stats.c": 5, "zp_fork.h": 5, "zp_fork.c": 5,
}
BACKEND_MAY = {"zp_backend.h", "zp_backend_services.h", "zeropool.h", "zeropool_config.h",
               "zp_atomic.h"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes(path):
    with open(path, encoding="utf-8") as f:
        return [os.path.basename(i) for i in INCLUDE.findall(f.read())]


def sources(folder):
    d = os.path.join(ROOT, folder)
    for dirpath, _, files in os.walk(d):
        for name in sorted(files):
            if name.endswith((".c", ".h")):
                yield os.path.join(dirpath, name)


def main():
    errors = []
    graph = {}
    for path in sources("lib"):
        name = os.path.basename(path)
        if name not in LAYER:
            errors.append(f"{name}: no layer assigned (add it to scripts/check_layers.py)")
            continue
        graph[name] = sorted({i for i in includes(path) if i in LAYER})
        for inc in graph[name]:
            if LAYER[inc] > LAYER[name]:
                errors.append(f"{name} (layer {LAYER[name]}) includes {inc} "
                              f"(layer {LAYER[inc]}): includes must run downwards")
    for folder in ("locked", "lockfree"):
        for path in sources(folder):
            for inc in includes(path):
                if inc in LAYER and inc not in BACKEND_MAY:
                    errors.append(f"{os.path.relpath(path, ROOT)} includes {inc}: a backend "
                                  "includes zp_backend.h and zp_backend_services.h "
                                  "alone from lib/")
    if "--graph" in sys.argv[1:]:
        for name in sorted(graph, key=lambda n: (-LAYER[n], n)):
            print(f"{LAYER[name]} {name:18} -> {' '.join(graph[name]) or '-'}")
    for e in errors:
        print(f"check_layers: {e}", file=sys.stderr)
    if not errors:
        print(f"check_layers: {len(graph)} files of lib/, includes run one way; "
              "backends include zp_backend.h and its services alone")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
