"""Environment record for benchmark results: what the numbers were measured on.

:func:`capture` returns a JSON-serializable dict (the ``environment`` of a latency result):
CPU model and the flags that decide which kernels run (AVX-512, VNNI, BF16, AMX), cores and
threads, memory, OS, Python and library versions, GPU (torch.cuda or nvidia-smi, when present),
the load average, a timestamp and the git commit. :func:`finish` adds the load average at the end,
so a result shows whether a neighbour was busy while it ran.

Standard library at module level; every library is probed lazily and a missing one is recorded
as ``null`` (never an error).
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

from tinct.runtime import __version__
from tinct.runtime.cpu import cpu_flags, cpu_name, cpu_record, describe_cpu, has_amx

LIBRARIES = ("numpy", "onnxruntime", "openvino", "nncf", "onnx", "torch", "tensorrt", "PIL")

REPO_ROOT = Path(__file__).resolve().parent.parent


def _cpuinfo() -> dict:
    # usable flags and AMX after any ONEDNN_MAX_CPU_ISA cap, so the record agrees with itself
    return {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "amx": has_amx()}


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 2)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _version(name: str) -> str | None:
    if importlib.util.find_spec(name) is None:
        return None
    try:

        dist = {"PIL": "Pillow"}.get(name, name)
        return version(dist)
    except Exception:  # noqa: BLE001 - reported, never fatal
        try:
            return str(getattr(importlib.import_module(name), "__version__", "?"))
        except Exception as exc:  # noqa: BLE001 - a package that is present but broken (e.g. a bindings-only wheel)
            return f"unimportable ({type(exc).__name__})"


def _git_commit() -> dict:
    git = shutil.which("git")
    if not git:
        return {"commit": None}
    try:
        commit = subprocess.run([git, "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                                timeout=5).stdout.strip() or None
        dirty = subprocess.run([git, "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}
    return {"commit": commit, "dirty": bool(dirty)}


def gpu_info() -> list[dict]:
    """GPUs seen by torch.cuda (when torch is imported-able with CUDA), else by nvidia-smi; [] if none."""
    gpus: list[dict] = []
    if importlib.util.find_spec("torch") is not None:
        try:
            import torch

            if torch.cuda.is_available():
                for i in range(torch.cuda.device_count()):
                    p = torch.cuda.get_device_properties(i)
                    gpus.append({"index": i, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 2),
                                 "compute_capability": f"{p.major}.{p.minor}", "cuda": torch.version.cuda,
                                 "source": "torch.cuda"})
        except Exception:  # noqa: BLE001 - reported, never fatal
            gpus = []
    if not gpus and shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10,
                                 check=False)
            for line in out.stdout.strip().splitlines():
                idx, name, mem, drv = [s.strip() for s in line.split(",")]
                gpus.append({"index": int(idx), "name": name, "memory_gib": round(float(mem) / 1024, 2),
                             "driver": drv, "source": "nvidia-smi"})
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return gpus


def capture() -> dict:
    """The environment at the start of a run (see the module docstring)."""

    cpu = _cpuinfo()
    env = {
        "tinct": __version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": cpu["cpu"],
        "cpu_flags": cpu["cpu_flags"],
        "amx": cpu.get("amx", False),
        "isa": cpu_record(),  # effective ISA after ONEDNN_MAX_CPU_ISA; cpu_flags are the usable ones
        "cpu_line": describe_cpu(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "versions": {name: _version(name) for name in LIBRARIES},
        "gpus": gpu_info(),
        "loadavg_start": _loadavg(),
        "git": _git_commit(),
    }
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TINCT_THREADS", "CUDA_VISIBLE_DEVICES"):
        if var in os.environ:
            env.setdefault("env_vars", {})[var] = os.environ[var]
    return env


def finish(env: dict) -> dict:
    """Add the end-of-run load average (in place) and return ``env``."""
    env["loadavg_end"] = _loadavg()
    env["time_end_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return env
