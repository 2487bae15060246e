"""What this CPU is and which instructions it has (read once from /proc/cpuinfo).

One home for the facts that the trainer (bf16 autocast), the quantizer (OpenVINO BF16), ``tinct
doctor`` and the benchmark environment record all need.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# Flags worth reporting for inference on x86 CPUs.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    name, flags = "", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("model name") and not name:
            name = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and not flags:
            flags = frozenset(line.split(":", 1)[1].split())
    return name or platform.processor() or platform.machine() or "unknown", flags


def cpu_name() -> str:
    return _cpuinfo()[0]


def cpu_flag_set() -> frozenset[str]:
    """All flags of the first CPU (empty where /proc/cpuinfo is absent)."""
    return _cpuinfo()[1]


def cpu_flags() -> dict[str, bool]:
    """The inference-relevant flags (CPU_FLAGS) -> present?"""
    flags = cpu_flag_set()
    return {f: f in flags for f in CPU_FLAGS}


def has_native_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16: bf16 matmuls run natively (OpenVINO's default precision then is bf16)."""
    return any(f in cpu_flag_set() for f in BF16_FLAGS)
