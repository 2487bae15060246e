"""Parity of an artifact against its PyTorch reference, on real photos with real hints.

Used by ``tinct export`` (every export is checked), and by quantization and build, which compare a
derived artifact against its parent with their own tolerance.

Inputs: :mod:`runtime.probes` (real photos with 0, 10 and 50 hints; never noise).

A predictor is a callable ``x [N,4,224,224] float32 -> (ab [N,2,224,224], gates [N,depth,2] bool or None)``.
The error is measured in normalized ab. When both sides report gates (A-ColViT), the decisions
must agree exactly: ONNX Runtime's ``If`` choices are not observable, so a dynamic A-ColViT
export carries an auxiliary ``gates`` output computed by the same graph.

torch is imported only by :func:`torch_reference`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinct.runtime.errors import TinctError
from tinct.runtime.probes import (  # noqa: F401 - the probe inputs live in the runtime core
    FIXTURE_PHOTOS,
    HINT_COUNTS,
    MAX_IMAGES,
    find_parity_photos,
    load_photo,
    parity_images,
    parity_inputs,
)

DEFAULT_TOL = 1e-4

Predictor = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray | None]"]


class ParityError(TinctError):
    """An artifact does not reproduce its reference within tolerance."""


# ----------------------------------------------------------------------------- predictors

def onnx_predictor(model, providers: Sequence[str] = ("CPUExecutionProvider",), threads: int = 0,
                   **session_kwargs) -> Predictor:
    """An ONNX Runtime predictor for a path, serialized bytes or an ``InferenceSession``.
    Returns ``gates`` when the graph has that output."""
    import onnxruntime as ort

    if isinstance(model, ort.InferenceSession):
        sess = model
    else:
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        src = str(model) if isinstance(model, (str, Path)) else model
        sess = ort.InferenceSession(src, so, providers=list(providers), **session_kwargs)
    names = [o.name for o in sess.get_outputs()]
    want = ["ab"] + (["gates"] if "gates" in names else [])

    def predict(x: np.ndarray):
        out = sess.run(want, {"x": np.ascontiguousarray(x, dtype=np.float32)})
        return out[0], (out[1].astype(bool) if len(out) > 1 else None)

    return predict


def torch_reference(model, forced_gates=None) -> Predictor:
    """The PyTorch model (eval, no grad) as a predictor; A-ColViT reports its decisions.
    ``forced_gates`` ([depth][2] bools) runs an A-ColViT with that fixed mask (static exports)."""
    import torch

    model.eval()

    def predict(x: np.ndarray):
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        with torch.no_grad():
            if not hasattr(model, "forward_with_gates"):
                return model(xt).numpy(), None
            saved = model.forced_gates
            try:
                if forced_gates is not None:
                    model.forced_gates = torch.as_tensor(forced_gates, dtype=torch.bool)
                ab, gates = model.forward_with_gates(xt)
            finally:
                model.forced_gates = saved
            return ab.numpy(), gates.numpy().astype(bool)

    return predict


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
    from tinct.runtime.compare import OutputDiff

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
                        gates_compared=diff.gates_compared, gate_mismatches=diff.gate_mismatches)


def check_parity(candidate: Predictor, reference: Predictor, *, images=None, x: np.ndarray | None = None,
                 tol: float = DEFAULT_TOL, batch: int = 2, what: str = "artifact") -> ParityReport:
    """Compare on the parity inputs; raise :class:`ParityError` (one line) when it fails."""
    if x is None:
        x = parity_inputs(images)
    report = compare(candidate, reference, x, tol=tol, batch=batch)
    if not report.ok:
        raise ParityError(f"parity check failed for {what}: {report.describe()}")
    return report
