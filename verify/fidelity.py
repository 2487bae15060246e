"""The fidelity check every engine passes before it is timed (``tinct bench latency``, ``--precision auto``'s
candidates, the benchmark scripts): the guard's protocol and criteria (:mod:`verify.guard`) against ONNX
Runtime FP32 of the same export, with the budget of the engine's precision (:mod:`verify.budgets`).
An engine that fails is never timed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinct.verify import guard
from tinct.verify.budgets import DEFAULT_BUDGET_DB, DEFAULT_MAX_MEAN_AB
from tinct.verify.predictors import ArtifactPredictor, from_run_x

# The whole split, because a subset is too noisy for the BF16 budget: on 16 photos a correct OpenVINO BF16
# engine measured ΔPSNR@10 0.019-0.031 dB against 0.02. With the guard's protocol the verdict is the guard's own.
FIDELITY_IMAGES: int | None = None


class _Memo:
    """A predictor whose outputs are remembered per input (the reference runs once per export)."""

    def __init__(self, fn):
        self.fn, self.seen = fn, {}

    def __call__(self, x):
        key = hashlib.sha1(x.tobytes()).hexdigest() + str(x.shape)
        if key not in self.seen:
            self.seen[key] = self.fn(x)
        return self.seen[key]


def fidelity_check(src: Path, run_x: Callable, precision: str, references: dict | None = None,
                   random_weights: bool = False, images: int = FIDELITY_IMAGES) -> dict:
    """Compare an engine (``run_x``: x -> ab) with ONNX Runtime FP32 of ``src`` by the guard's
    criteria for ``precision`` (finite outputs, mean |Δab|, ΔPSNR@10 budget) -> a record with
    ``verdict`` passed/failed and, when failed, ``reason``. Random weights: no PSNR budget (their
    PSNR means nothing), the other criteria hold."""
    refs = references if references is not None else {}
    if str(src) not in refs:
        refs[str(src)] = _Memo(ArtifactPredictor.open(src, threads=1, backend="onnxruntime"))
    names, imgs, where = guard.guard_images(images)
    base = "int8" if precision.startswith("int8") else precision
    budget = float("inf") if random_weights else DEFAULT_BUDGET_DB[base]
    max_ab = DEFAULT_MAX_MEAN_AB[base]
    rep = guard.compare(refs[str(src)], from_run_x(run_x), imgs, names, where)
    d10 = rep.delta.get(10)
    rec = {"images": f"{len(imgs)} ({where})", "hints": list(guard.GUARD_COUNTS), "reference": "ONNX Runtime FP32",
           "delta_psnr10": None if d10 is None or not np.isfinite(d10) else round(float(d10), 4),
           "mean_ab_err": round(float(rep.mean_ab_err), 5), "max_ab_err": round(float(rep.max_ab_err), 4),
           "nonfinite_outputs": rep.nonfinite_outputs, "budget_db": budget, "max_mean_ab_err": max_ab}
    try:
        guard.enforce(rep, budget, f"{precision} engine", max_ab)
    except guard.GuardError as exc:
        reason = str(exc).split("; nothing written")[0].split(": ", 1)[-1]
        return {**rec, "verdict": "failed", "reason": f"fidelity vs ONNX Runtime FP32 on {rec['images']}: {reason}"}
    return {**rec, "verdict": "passed"}
