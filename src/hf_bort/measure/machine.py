"""The machine a measurement was taken on: CPU model and flags, cores, threads, library versions, matmul peak."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

CPUINFO = "/proc/cpuinfo"


def cpu_model_name(cpuinfo: str | os.PathLike = CPUINFO) -> str:
    """The CPU's `model name` from /proc/cpuinfo; `platform.processor()` where it cannot be read."""
    cpu = platform.processor()
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def cpu_flags(cpuinfo: str | os.PathLike = CPUINFO) -> set[str]:
    """The CPU feature flags /proc/cpuinfo lists (`flags` on x86, `Features` on ARM); OSError when unreadable."""
    flags: set[str] = set()
    for line in Path(cpuinfo).read_text().splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return flags


INT8_FLAGS: tuple[str, ...] = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")


def int8_cpu_flags(cpuinfo: str | os.PathLike = CPUINFO) -> list[str]:
    """The flags of `INT8_FLAGS` (int8 and fp32 kernel speed depends on them) this CPU lists; [] when unreadable."""
    try:
        flags = cpu_flags(cpuinfo)
    except OSError:
        return []
    return [flag for flag in INT8_FLAGS if flag in flags]


def device_fingerprint() -> str:
    """
    Identifies the machine a latency was measured on: CPU model, a digest of its feature flags (AVX2, AVX-512,
    VNNI… change which kernels run), cores, torch threads and torch version. The latency tables are keyed by it.
    """
    import hashlib

    import torch

    cpu = cpu_model_name() or platform.machine()
    try:
        flags = hashlib.sha1(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12]
    except OSError:  # no /proc/cpuinfo (macOS, Windows): the model name alone
        flags = "unknown"
    return f"{cpu}|flags={flags}|cores={os.cpu_count()}|threads={torch.get_num_threads()}|torch={torch.__version__}"


def machine_info() -> dict[str, Any]:
    """The CPU, core count, torch threads and library versions a measurement was taken with (`compress`'s report)."""
    import torch
    import transformers

    return {
        "cpu": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
    }


def bench_machine_info(threads: int, peak: float) -> dict[str, Any]:
    """CPU, cores, threads, the measured matmul peak, library versions and the load average now (`hf-bort bench`)."""
    import torch

    machine: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_model_name(),
        "cpu_int8_flags": int8_cpu_flags(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "matmul_peak_gflops": peak,
        "torch": torch.__version__,
    }
    try:
        import onnxruntime

        machine["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    machine["load_average_start"] = os.getloadavg()
    return machine


def measure_matmul_peak(threads: int, size: int = 2048, repeats: int = 10) -> float:
    """Best fp32 GFLOP/s of a `size`² torch matmul with `threads` threads (the machine's practical peak)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
