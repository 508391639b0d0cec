#!/usr/bin/env python3
"""Check that the library's includes run one way (docs/design.md, "Files").

    scripts/check_layers.py [--graph]

The list of the layers of lib/ is LAYER below, and this is its one place:
each file has a layer, and a file may include only headers of its own layer
or below.  Files of one concern share a module name (zp_tcache.h,
zp_tcache.c; zp_tcache_refill.c is the module zp_tcache_refill), and the
graph of modules must have no circle, within a layer too:

    0  zeropool.h zeropool_config.h zp_atomic.h zp_poison.h   leaves
       zp_backend_services.h (annotations, clock, magazines)
       zeropool_uring.h (the io_uring module's public API)
    1  zp_backend.h                                            the contract
    2  zp_arena.*                                              the page arena
    3  zp_os.* zp_config.* zp_registry.c                      OS memory, config
    4  zp_store.* zp_store_*.c zp_decay.*                     the store
    5  zp_tcache.h zp_tcache*.c                                thread caches
    6  zp_alloc.c zp_pool.c zp_stats.c zp_fork.* zp_maintain.* entry points

A backend (locked/, lockfree/) includes from lib/ only BACKEND_MAY: the
contract, its services and the public leaves; a client module (uring/)
only the public headers, CLIENT_MAY.  docs/design.md describes the
layers in the table of its "Files" section: the script checks that each file
there is in the row of its layer, and that every file of LAYER is named.  --graph
prints the include graph of lib/.  Exits 1 on a violation.  Standard library
only.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYER = {
    "zeropool.h": 0, "zeropool_config.h": 0, "zp_atomic.h": 0, "zp_poison.h": 0,
    "zp_backend_services.h": 0, "zeropool_uring.h": 0,
    "zp_backend.h": 1, "zp_backends.inc": 1,
    "zp_arena.h": 2, "zp_arena.c": 2,
    "zp_os.h": 3, "zp_os.c": 3, "zp_config.h": 3, "zp_config.c": 3, "zp_registry.c": 3,
    "zp_store.h": 4, "zp_store.c": 4, "zp_store_desc.c": 4, "zp_store_budget.c": 4,
    "zp_store_released.c": 4, "zp_decay.h": 4, "zp_decay.c": 4,
    "zp_tcache.h": 5, "zp_tcache.c": 5, "zp_tcache_refill.c": 5, "zp_tcache_capacity.c": 5,
    "zp_tcache_reclaim.c": 5,
    "zp_alloc.c": 6, "zp_pool.c": 6, "zp_stats.c": 6, "zp_fork.h": 6, "zp_fork.c": 6,
    "zp_maintain.h": 6, "zp_maintain.c": 6,
}
BACKEND_MAY = {"zp_backend.h", "zp_backend_services.h", "zeropool.h", "zeropool_config.h",
               "zp_atomic.h"}
# A client module of the pool (uring/) includes only the public headers.
CLIENT_MAY = {"zeropool.h", "zeropool_config.h", "zeropool_uring.h"}
GENERATED = {"zp_backends.inc"}  # written by CMake, not described in the table
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


def module(name):
    return os.path.splitext(name)[0]


def module_cycle(graph):
    """A circle in the graph of modules (file names without extension), or
    None."""
    edges = {}
    for name, incs in graph.items():
        m = module(name)
        edges.setdefault(m, set()).update(module(i) for i in incs if module(i) != m)
    state, path = {}, []

    def visit(m):
        state[m] = 1
        path.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def design_table_errors():
    """Compare the layer table of docs/design.md ("| N name | files |" rows
    under "## Files") with LAYER."""
    path = os.path.join(ROOT, "docs", "design.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.find("\n## Files")
    end = text.find("\n## ", start + 1)
    named = {}
    for line in text[start:end].splitlines():
        m = re.match(r"^\|\s*(\d+)\s[^|]*\|(.*)\|\s*$", line)
        if m:
            for f in re.findall(r"`(?:lib/(?:include/)?)?(zeropool\w*\.h|zp_\w+\.[ch])`", m.group(2)):
                named[f] = int(m.group(1))
    errors = []
    for f, layer in sorted(named.items()):
        if f not in LAYER:
            errors.append(f"docs/design.md names {f}, which has no layer here")
        elif LAYER[f] != layer:
            errors.append(f"docs/design.md puts {f} in layer {layer}, the list here in {LAYER[f]}")
    for f in sorted(set(LAYER) - set(named) - GENERATED):
        errors.append(f"docs/design.md's layer table does not name {f}")
    return errors


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
                                  "includes zp_backend.h alone from lib/")
    for path in sources("uring"):
        for inc in includes(path):
            if inc in LAYER and inc not in CLIENT_MAY:
                errors.append(f"{os.path.relpath(path, ROOT)} includes {inc}: a client module "
                              "includes only the public headers")
    errors += design_table_errors()
    cycle = module_cycle(graph)
    if cycle:
        errors.append("a circle between modules: " + " -> ".join(cycle))
    if "--graph" in sys.argv[1:]:
        for name in sorted(graph, key=lambda n: (-LAYER[n], n)):
            print(f"{LAYER[name]} {name:18} -> {' '.join(graph[name]) or '-'}")
    for e in errors:
        print(f"check_layers: {e}", file=sys.stderr)
    if not errors:
        print(f"check_layers: {len(graph)} files of lib/, includes run one way, no circle "
              "between modules; backends include only the backend contract, its services and the leaves; "
              "uring/ only the public headers")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
