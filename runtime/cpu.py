"""What this CPU is and which instructions the inference libraries may use on it.

One home for the facts that the trainer (bf16 autocast), the quantizer (OpenVINO BF16), ``tinct
doctor``, artifact metadata ("verified on") and the benchmark environment all need.

The *native* flags come from /proc/cpuinfo. The *effective* instruction set is what oneDNN (and so
OpenVINO's CPU plugin and PyTorch's oneDNN kernels) will use: the native one, capped by the
``ONEDNN_MAX_CPU_ISA`` (or older ``DNNL_MAX_CPU_ISA``) environment variable, which is how a laptop
without AVX-512, or a Zen 4 without AMX, is emulated on a bigger CPU. OpenVINO's
``OPTIMIZATION_CAPABILITIES`` property ignores that cap (it lists BF16 under ``AVX2``), so tinct
decides from :func:`effective_isa` instead.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

from tinct.runtime.errors import TinctError

# Flags worth reporting for inference on x86 CPUs.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")

# oneDNN's x86 ISA ladder (the values ONEDNN_MAX_CPU_ISA takes, lowest first) and the cpuinfo flags
# each level needs on top of the previous ones.
ISA_LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SSE41", ("sse4_1",)),
    ("AVX", ("avx",)),
    ("AVX2", ("avx2", "fma")),
    ("AVX2_VNNI", ("avx_vnni",)),
    ("AVX512_CORE", ("avx512f", "avx512bw", "avx512vl", "avx512dq")),
    ("AVX512_CORE_VNNI", ("avx512_vnni",)),
    ("AVX512_CORE_BF16", ("avx512_bf16",)),
    ("AVX512_CORE_FP16", ("avx512_fp16",)),
    ("AVX512_CORE_AMX", ("amx_tile", "amx_bf16", "amx_int8")),
)
_ORDER = {name: i for i, (name, _) in enumerate(ISA_LEVELS)}
# oneDNN aliases and newer names, mapped onto the ladder above
_ALIASES = {"AVX10_1_512": "AVX512_CORE_FP16", "AVX10_1_512_AMX": "AVX512_CORE_AMX",
            "AVX512_CORE_AMX_FP16": "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16": "AVX512_CORE_AMX",
            "AVX10_2_512": "AVX512_CORE_FP16", "AVX10_2_512_AMX_2": "AVX512_CORE_AMX",
            "AVX2_VNNI_2": "AVX2_VNNI", "AVX512_CORE_BF16_AMX_BF16": "AVX512_CORE_AMX", "ALL": "", "DEFAULT": ""}
# What each precision needs from the effective ISA to run natively in OpenVINO's CPU plugin.
PRECISION_ISA = {"bf16": "AVX512_CORE_BF16"}


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    return parse_cpuinfo(text)


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(name, flags of the first CPU) from /proc/cpuinfo text."""
    name, flags, ids = "", frozenset(), {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86 / aarch64
            flags = frozenset(value.split())
        elif key in ("cpu family", "model") and key not in ids:
            ids[key] = value.strip()
    if name and len(ids) == 2:  # virtual machines often say only "AMD EPYC": family/model tell Zen 3 from Zen 4
        name += f" (family {ids['cpu family']}, model {ids['model']})"
    return name or platform.processor() or platform.machine() or "unknown", flags


def cpu_name() -> str:
    return _cpuinfo()[0]


def cpu_flag_set() -> frozenset[str]:
    """All flags of the first CPU (empty where /proc/cpuinfo is absent)."""
    return _cpuinfo()[1]


def native_isa(flags: frozenset[str] | None = None) -> str | None:
    """The highest ISA_LEVELS entry whose flags (and all lower levels' flags) are present; None off x86."""
    flags = cpu_flag_set() if flags is None else flags
    best = None
    for name, need in ISA_LEVELS:
        if name == "AVX2_VNNI" and "avx512f" in flags:
            continue  # Intel server parts have AVX512-VNNI without the VEX form: not a rung they must pass
        if not all(f in flags for f in need):
            break
        best = name
    return best


def isa_cap() -> str | None:
    """The ladder level ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) caps oneDNN at; None when unset.

    An unknown value raises :class:`ValueError` (oneDNN itself ignores it silently, which would make
    an emulated-CPU test measure the native CPU)."""
    raw = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    if not raw:
        return None
    value = raw.strip().upper()
    value = _ALIASES.get(value, value)
    if value == "":
        return None
    if value not in _ORDER:
        raise ValueError(f"ONEDNN_MAX_CPU_ISA={raw!r} is not an ISA oneDNN knows; use one of "
                         f"{', '.join(n for n, _ in ISA_LEVELS)}")
    return value


def effective_isa() -> str | None:
    """What oneDNN will use here: the native ISA capped by ONEDNN_MAX_CPU_ISA."""
    native = native_isa()
    cap = isa_cap()
    if native is None or cap is None:
        return native
    return native if _ORDER[native] <= _ORDER[cap] else cap


def effective_flags() -> frozenset[str]:
    """The native flags minus those the ISA cap hides (e.g. no avx512_* and amx_* under AVX2)."""
    flags = cpu_flag_set()
    eff = effective_isa()
    if eff is None or isa_cap() is None:
        return flags
    hidden = {f for name, need in ISA_LEVELS if _ORDER[name] > _ORDER[eff] for f in need}
    hidden |= {f for f in flags if f.startswith(("avx512", "amx")) and _ORDER[eff] < _ORDER["AVX512_CORE"]}
    hidden |= {f for f in flags if f.startswith("amx") and _ORDER[eff] < _ORDER["AVX512_CORE_AMX"]}
    return frozenset(flags - hidden)


def cpu_flags() -> dict[str, bool]:
    """The inference-relevant flags (CPU_FLAGS) -> usable here (after the ISA cap)?"""
    flags = effective_flags()
    return {f: f in flags for f in CPU_FLAGS}


def has_native_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16 usable (after the ISA cap): bf16 matmuls run natively."""
    flags = effective_flags()
    return any(f in flags for f in BF16_FLAGS)


def has_amx() -> bool:
    """AMX tiles usable (after the ISA cap): OpenVINO/oneDNN pick AMX kernels for bf16 and int8."""
    return "amx_bf16" in effective_flags()


def missing_isa(precision: str) -> str | None:
    """None when ``precision`` can run natively here, else a one-line reason naming what is missing."""
    need = PRECISION_ISA.get(precision)
    if need is None:
        return None
    eff = effective_isa()
    if eff is not None and _ORDER[eff] >= _ORDER[need]:
        return None
    where = f"this CPU offers {eff or platform.machine()}"
    native = native_isa()
    if eff is not None and native is not None and _ORDER[native] > _ORDER[eff]:
        raw = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
        where += f" (capped by ONEDNN_MAX_CPU_ISA={raw}; natively {native})"
    return f"{precision} needs the {need.replace('_CORE', '')} instruction set (avx512_bf16 or amx_bf16), and {where}"


def require_isa(precision: str, what: str) -> None:
    """Refuse, in one line naming the missing instruction set, a precision this CPU cannot run natively
    (OpenVINO itself fails with a cut message under AVX2 and emulates bf16 slowly under AVX512_CORE): the one
    refusal for ``tinct build``, ``tinct quantize`` and every backend load."""

    why = missing_isa(precision)
    if why:
        raise TinctError(f"{what}: cannot run here: {why}; use fp32 or int8 on this CPU, or build on a CPU that has it")


def cpu_record() -> dict:
    """The CPU facts an artifact records about the machine its guard ran on."""
    return {"model": cpu_name(), "machine": platform.machine(), "isa": effective_isa(),
            "native_isa": native_isa(), "isa_cap": isa_cap(),
            "flags": sorted(f for f, on in cpu_flags().items() if on)}


def describe_cpu(rec: dict | None = None) -> str:
    """One line for a :func:`cpu_record` (this machine's when None)."""
    rec = rec or cpu_record()
    isa = rec.get("isa") or "?"
    if rec.get("isa_cap") and rec.get("native_isa") != rec.get("isa"):
        isa += f" (ONEDNN_MAX_CPU_ISA cap; native {rec.get('native_isa')})"
    return f"{rec.get('model', '?')} [{isa}]"
