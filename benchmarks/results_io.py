"""What every benchmark writes the same way: its JSON under benchmarks/results/ and the CPU flags that timings need."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def write_result(name: str, out: dict[str, Any], results: Path = RESULTS) -> Path:
    """Writes `out` to `results/<name>.json` (indented; values JSON cannot hold as text) and says where."""
    results.mkdir(exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"wrote {path}", flush=True)
    return path


def timing_cpu_flags() -> list[str]:
    """The CPU flags that change which kernels run (AVX*, AMX, FMA, SSE4), recorded with every timing."""
    from hf_bort.measure import cpu_flags

    return sorted(flag for flag in cpu_flags() if flag.startswith(("avx", "amx", "fma", "sse4")))
