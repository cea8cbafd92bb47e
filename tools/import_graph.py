"""Import-graph numbers for hf_bort (issue 20): module cycles, imports running up the layers, modules over 500 lines.

    python tools/import_graph.py [SRC_DIR]      # default: src

Uses grimp (installed with import-linter, the `dev` extra) and networkx (a torch dependency). `make lint` enforces the
contracts in pyproject.toml with `lint-imports`; this script only counts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
import networkx as nx

# The stages in pipeline order (DESIGN.md §1), and the leaf services that import no stage.
STAGES = ["models", "ose", "agora", "exporters", "compress", "demo", "cli"]
LEAVES = ["cards", "measure", "hub", "assets", "data"]


def main(src: str = "src") -> None:
    sys.path.insert(0, src)
    graph = grimp.build_graph("hf_bort", exclude_type_checking_imports=True)
    edges = [(m, i) for m in graph.modules for i in graph.find_modules_directly_imported_by(m)]
    # A package importing its own sub-modules (re-exports) is not a cycle.
    directed = nx.DiGraph((a, b) for a, b in edges if not b.startswith(a + "."))
    cycles = [sorted(c) for c in nx.strongly_connected_components(directed) if len(c) > 1]
    print(f"module cycles: {len(cycles)}")
    for cycle in cycles:
        print("   ", " <-> ".join(cycle))

    def rank(module: str, leaves_at_bottom: bool) -> int | None:
        parts = module.split(".")
        name = parts[1] if len(parts) > 1 else None
        if name in LEAVES:
            return -1 if leaves_at_bottom else (STAGES.index("exporters") + 0.5 if name == "cards" else -1)
        return STAGES.index(name) if name in STAGES else None

    for leaves_at_bottom, label in ((False, "cards between exporters and compress"), (True, "cards a leaf service")):
        upward = []
        for a, b in edges:
            ra, rb = rank(a, leaves_at_bottom), rank(b, leaves_at_bottom)
            if ra is not None and rb is not None and a.split(".")[1] != b.split(".")[1] and rb > ra:
                upward.append(f"{a} -> {b}")
        print(f"upward imports ({label}): {len(upward)}")
        for line in sorted(upward):
            print("   ", line)
    root = sorted(a for a, b in edges if b == "hf_bort" and a != "hf_bort")
    print(f"modules importing the root package hf_bort: {len(root)}", *root, sep="\n    ")
    big = sorted((sum(1 for _ in p.open()), str(p)) for p in Path(src, "hf_bort").rglob("*.py"))
    big = [(n, p) for n, p in big if n > 500]
    print(f"modules over 500 lines: {len(big)}")
    for lines, path in big:
        print(f"    {lines} {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
