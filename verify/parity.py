"""Parity: a candidate against a reference on the probes (real photos with real hints), to a tolerance.

Used by ``tinct export`` (every export against its PyTorch model: max |Δab_n| <= 1e-4 and identical
gate decisions), the prebuilt ONNX's FP16 weight storage, and ``tinct build``'s BF16 self-check (an IR
against ONNX Runtime FP32 of its source: mean |Δab| in Lab units). Predictors are
:mod:`verify.predictors`; the error is measured by the one comparator, :class:`verify.compare.OutputDiff`,
in normalized ab. When both sides report gates (A-ColViT), the decisions must agree exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinct.runtime.color import AB_NORM
from tinct.runtime.errors import TinctError
from tinct.verify.compare import OutputDiff
from tinct.verify.predictors import ArtifactPredictor, Predictor
from tinct.verify.probes import parity_inputs

DEFAULT_TOL = 1e-4


class ParityError(TinctError):
    """An artifact does not reproduce its reference within tolerance."""


# ----------------------------------------------------------------------------- comparison

@dataclass
class ParityReport:
    max_abs: float
    mean_abs: float
    n_inputs: int
    batch: int
    tol: float
    gates_compared: bool = False
    gate_mismatches: int = 0
    nonfinite: int = 0

    @property
    def ok(self) -> bool:
        return bool(self.max_abs <= self.tol) and self.gate_mismatches == 0

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def describe(self) -> str:
        g = f", {self.gate_mismatches} gate decision(s) differ" if self.gates_compared else ""
        return (f"max |d ab_n| {self.max_abs:.3g} (tol {self.tol:g}), mean {self.mean_abs:.3g} "
                f"over {self.n_inputs} inputs{g}")


def compare(candidate: Predictor, reference: Predictor, x: np.ndarray, *, tol: float = DEFAULT_TOL,
            batch: int = 2) -> ParityReport:
    """Run both predictors on ``x`` in batches of ``batch``; error in normalized ab."""
    diff = OutputDiff()
    for s in range(0, len(x), batch):
        xb = x[s:s + batch]
        ab_c, g_c = candidate(xb)
        ab_r, g_r = reference(xb)
        try:
            diff.add(ab_r, ab_c, g_r, g_c)
        except ValueError as exc:
            raise ParityError(str(exc)) from None
    return ParityReport(max_abs=diff.max_abs, mean_abs=diff.mean_abs, n_inputs=len(x), batch=batch, tol=tol,
                        gates_compared=diff.gates_compared, gate_mismatches=diff.gate_mismatches,
                        nonfinite=diff.nonfinite)


def check_parity(candidate: Predictor, reference: Predictor, *, images=None, x: np.ndarray | None = None,
                 tol: float = DEFAULT_TOL, batch: int = 2, what: str = "artifact") -> ParityReport:
    """Compare on the parity inputs; raise :class:`ParityError` (one line) when it fails."""
    if x is None:
        x = parity_inputs(images)
    report = compare(candidate, reference, x, tol=tol, batch=batch)
    if not report.ok:
        raise ParityError(f"parity check failed for {what}: {report.describe()}")
    return report


# BF16 builds are compared with ONNX Runtime FP32 before they are written: mean |Δab| (Lab units) over the
# probes with 10 hints. Measured on an AMX CPU before the patch embedding was kept f32: plain bf16 on
# iColoriT-T was ~14.5 (the broken convolution) against ~0.24 with AMX masked off.
BF16_SELF_CHECK_MAX_MEAN_AB = 1.0


def bf16_self_check(ir: Path, onnx_path: Path, threads: int = 0) -> tuple[float, int]:
    """(mean |Δab| in Lab units, number of non-finite outputs) of an IR at its recorded precision against
    ONNX Runtime FP32 of its source, on the probes with 10 hints."""
    x = parity_inputs(hint_counts=(10,))
    ref = ArtifactPredictor.open(onnx_path, threads=threads, backend="onnxruntime")
    cand = ArtifactPredictor.open(ir, threads=threads)
    try:
        report = compare(cand, ref, x, tol=float("inf"), batch=1)
    finally:
        ref.close()
        cand.close()
    mean = report.mean_abs * AB_NORM if report.n_inputs else float("inf")
    return mean, report.nonfinite
