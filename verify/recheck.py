"""``tinct doctor``'s checks on the machine at hand.

- :func:`recheck`: a derived artifact (quantized ONNX, OpenVINO IR) against its FP32 parent by the guard
  of its precision (the criteria ``tinct quantize`` applied where it was built), here;
- :func:`compare_engines`: engines of one FP32 export against ONNX Runtime CPU on one input: max |Δab_n|
  and the median ms of the model call (through the one timing scheduler).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinct.runtime.artifact import C2E_COLORIZER, sha256_file
from tinct.runtime.backends import Backend, open_backend
from tinct.runtime.errors import TinctError
from tinct.runtime.exemplar import find_artifacts
from tinct.runtime.timing import Case, Timed, run_cases
from tinct.verify import color2embed, guard
from tinct.verify.budgets import DEFAULT_BUDGET_DB, DEFAULT_MAX_MEAN_AB
from tinct.verify.compare import OutputDiff


def find_parent(artifact: Path, meta, build: dict) -> Path | None:
    """The FP32 ONNX a derived artifact came from: next to it, matched by the sha256 it records."""
    want = meta.parent_sha256 or build.get("source_onnx_sha256", "")
    if not want:
        return None
    named = build.get("source_onnx")
    candidates = sorted(artifact.parent.glob("*.onnx"), key=lambda p: (p.name != named, p.name))
    for p in candidates:
        if p.resolve() != artifact.resolve() and sha256_file(p) == want:
            return p
    return None


def is_derived(path: Path) -> bool:
    """An IR, or an ONNX whose precision is not fp32: something with an FP32 parent to answer to."""
    if path.suffix.lower() == ".xml":
        return True
    with open_backend(path, "onnxruntime", optimization="disable") as b:
        return b.meta.precision != "fp32"


@dataclass
class Recheck:
    artifact: Path
    parent: Path
    meta: object
    build: dict
    inference_precision: str
    criteria: str  # the precision whose budget applies
    report: guard.GuardReport
    failure: str | None  # None: passed

    @property
    def passed(self) -> bool:
        return self.failure is None

    @property
    def budget(self) -> tuple[float, float]:
        return DEFAULT_BUDGET_DB[self.criteria], DEFAULT_MAX_MEAN_AB[self.criteria]


def recheck(artifact: Path, parent: Path | None = None, guard_images: int | None = None) -> Recheck:
    """The guard of the artifact's precision against its FP32 parent, on this machine."""
    artifact = Path(artifact)
    with open_backend(artifact, threads=1) as b:
        meta, d = b.meta, b.describe()
    build = d.get("build") or {}
    parent = Path(parent) if parent else find_parent(artifact, meta, build)
    if parent is None:
        raise TinctError(f"{artifact.name}: its FP32 parent is not next to it (sha256 "
                         f"{(meta.parent_sha256 or build.get('source_onnx_sha256', '?'))[:12]}...): pass --parent FP32.onnx")
    inference = d.get("inference_precision", meta.precision)
    if inference == "bf16" and meta.precision == "fp32":
        criteria = "bf16"
    else:
        criteria = meta.precision if meta.precision in DEFAULT_BUDGET_DB else "fp32"
    if meta.architecture == C2E_COLORIZER:
        report = color2embed.evaluate(parent, artifact, find_artifacts(parent)[0], limit=guard_images)
    else:
        report = guard.evaluate(parent, artifact, limit=guard_images)
    failure = None
    try:
        guard.enforce(report, DEFAULT_BUDGET_DB[criteria], artifact.name, DEFAULT_MAX_MEAN_AB[criteria])
    except guard.GuardError as exc:
        failure = str(exc).split("; nothing written")[0]
    return Recheck(artifact, parent, meta, build, inference, criteria, report, failure)


def compare_engines(reference: Backend, candidates: Sequence[tuple[str, Callable[[], Backend]]], x: np.ndarray,
                    repeat: int = 5) -> list[dict]:
    """Each candidate engine (label, opener) against ``reference`` on ``x``: max |Δab_n| and the median ms
    of ``repeat`` model calls after one warm-up; a candidate that cannot be opened is reported as skipped."""
    ref = np.array(reference.run_x(x))

    def timed(backend: Backend) -> tuple[float, np.ndarray]:
        out = np.array(backend.run_x(x))
        run = run_cases([Case("doctor", "engine", setup=lambda: Timed(call=lambda: backend.run_x(x)))],
                        rounds=max(1, repeat), warmup=1)
        if not run.results:
            raise TinctError(run.skipped[0]["reason"] if run.skipped else "timing failed")
        return float(run.results[0]["median_ms"]), out

    ms, _ = timed(reference)
    results = [{"backend": "onnxruntime CPU fp32 (reference)", "max_abs": 0.0, "ms": ms}]
    for label, make in candidates:
        try:
            b = make()
            try:
                ms, out = timed(b)
            finally:
                b.close()
            results.append({"backend": label, "max_abs": OutputDiff().add(ref, out).max_abs, "ms": ms})
        except TinctError as exc:
            results.append({"backend": label, "skipped": str(exc)})
    return results
