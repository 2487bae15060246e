"""Planning: every case of a run (the CLI and the pytest-benchmark suite share it)."""

from __future__ import annotations

from collections.abc import Sequence

from tinct.benchmarks.latency.artifacts import ModelStore, torch_available
from tinct.benchmarks.latency.common import DEFAULT_GATES
from tinct.benchmarks.latency.engines import engine_case_setup, gpu_case_setup, torch_case_setup
from tinct.runtime.timing import Case

# ----------------------------------------------------------------------------- planning

def parse_list(text: str | Sequence[str] | None, allowed: Sequence[str] | None = None, what: str = "value") -> list:
    if text is None:
        return []
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if str(s).strip()]
    if allowed is not None:
        bad = [s for s in items if s not in allowed]
        if bad:
            raise ValueError(f"unknown {what} {', '.join(bad)}; choose from {', '.join(allowed)}")
    return items


def plan_cases(store: ModelStore, models: Sequence[str], backends: Sequence[str], precisions: Sequence[str],
               threads: Sequence[int], modes: Sequence[str], gates: Sequence[str] = DEFAULT_GATES,
               batch: int = 8, gpu: bool | None = None, gate_modes: Sequence[str] = ("model",),
               profile: bool = False) -> list[Case]:
    """Every case of a run. The PyTorch eager FP32 reference is always included (skipped with the
    reason when torch is absent); ``throughput`` runs single-threaded only; A-ColViT gets one
    case per gate pattern in the ``gate_modes`` (other modes: its own decisions only);
    GPU cases are added when ``gpu`` (default: torch.cuda is available) or skipped once with a reason;
    ``profile``: CPU cases also profile their model call after timing (``tinct bench latency --profile``)."""
    cases: list[Case] = []
    has_torch = torch_available()
    for name in models:
        gated = store.is_gated(name)
        for mode in modes:
            variants = ([g for g in gates] if mode in gate_modes else ["own"]) if gated else [""]
            thr = [1] if mode == "throughput" else list(threads)
            b = batch if mode == "throughput" else 1
            for variant in variants:
                for t in thr:
                    ref = Case(name, "pytorch", "fp32", t, mode, variant, batch=b)
                    if not has_torch:
                        ref.skip = "torch is not installed: no PyTorch eager reference (ratios vs eager are null)"
                    else:
                        ref.setup = torch_case_setup(store, ref, profile)
                    cases.append(ref)
                    for be in backends:
                        if be == "pytorch":
                            continue
                        for p in precisions:
                            c = Case(name, be, p, t, mode, variant, batch=b)
                            if be not in ("onnxruntime", "openvino"):
                                c.skip = f"{be} is not a CPU backend"
                            elif be == "onnxruntime" and p in ("bf16",):
                                c.skip = "ONNX Runtime CPU has no bf16 kernels for this model; use openvino bf16"
                            else:
                                c.setup = engine_case_setup(store, c, profile)
                            cases.append(c)
    cases += plan_gpu_cases(store, models, precisions, gates, gpu)
    return cases


def plan_gpu_cases(store: ModelStore, models: Sequence[str], precisions: Sequence[str], gates: Sequence[str],
                   gpu: bool | None = None) -> list[Case]:
    if gpu is None:
        gpu = False
        if torch_available():
            import torch

            gpu = bool(torch.cuda.is_available())
    if not gpu:
        reason = ("CUDA is not available here (torch.cuda.is_available() is False)" if torch_available()
                  else "torch is not installed: no GPU cases")
        return [Case("*", "gpu (pytorch, cuda-graph, tensorrt)", "-", None, "model", device="cuda", skip=reason)]
    cases = []
    for name in models:
        variants = list(gates) if store.is_gated(name) else [""]
        for variant in variants:
            for be in ("pytorch", "pytorch-cudagraph", "tensorrt"):
                for p in [p for p in precisions if p in ("fp32", "fp16", "bf16")] or ["fp32"]:
                    if be == "tensorrt" and p != "fp32":
                        continue
                    c = Case(name, be, p, None, "model", variant, device="cuda")
                    c.setup = gpu_case_setup(store, c)
                    cases.append(c)
    return cases
