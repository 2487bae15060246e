"""The accuracy guard: a quantized artifact is compared with its FP32 parent before it is written.

Protocol (:mod:`runtime.evaluation`): the validation split of the corpus (the fixture photos when the
corpus is absent), hints placed by the official evaluation protocol for k = 1, 10, 50; both models
colorize every image; PSNR@k of each, ΔPSNR@k = parent − child (positive = the child is worse),
the largest |Δab| between the two outputs (in Lab ab units) and, for A-ColViT graphs that expose
their decisions, the fraction of gate decisions that agree. ``tinct quantize`` refuses the artifact
when ΔPSNR@10 exceeds the budget (:data:`quantization.DEFAULT_BUDGET_DB`) or the mean |Δab|
exceeds :data:`quantization.DEFAULT_MAX_MEAN_AB`.

Predictors open artifacts with one thread. ONNX graphs with ``If`` nodes get
``disabled_optimizers=["QDQPropagationTransformer"]`` (ONNX Runtime 1.31 aborts otherwise).
Graphs with an auxiliary ``gates`` output are run directly (the runtime's backends take one output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tinct.runtime.color import AB_NORM
from tinct.runtime.errors import TinctError
from tinct.runtime.evaluation import predict_rgb, psnr
from tinct.runtime.hints import make_eval_hints, mask_from_coords

from tinct.runtime.backends.onnxruntime_backend import QDQ_IF_DISABLED  # noqa: E402 - one home for the workaround

GUARD_COUNTS = (1, 10, 50)


class GuardError(TinctError):
    """A quantized artifact lost more accuracy than its budget allows."""


def guard_images(limit: int | None = None) -> tuple[list[str], np.ndarray, str]:
    """(names, uint8 [N,224,224,3], where from): validation split, else the fixture photos."""
    try:
        from tinct.data.photos import load_val

        names, images = load_val()
        where = "validation split"
    except TinctError:
        names, images = [], None
    if images is None or not len(images):
        from tinct.export.parity import find_parity_photos, load_photo

        paths = find_parity_photos(limit=64)
        names = [p.stem for p in paths]
        images = np.stack([load_photo(p) for p in paths])
        where = "fixture photos"
    if limit:
        names, images = names[:limit], images[:limit]
    return names, images, where


def has_if(path: str | Path) -> bool:
    import onnx

    from tinct.runtime.artifact import count_if_nodes

    return count_if_nodes(onnx.load(str(path), load_external_data=False).graph) > 0


def ort_session(path: str | Path, threads: int = 1, disabled_optimizers: Sequence[str] | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if disabled_optimizers is None:
        disabled_optimizers = QDQ_IF_DISABLED if has_if(path) else []
    kw = {"disabled_optimizers": list(disabled_optimizers)} if disabled_optimizers else {}
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"], **kw)


class Predictor:
    """x -> ab (and the ``gates`` output when the graph has one, kept in ``last_gates``)."""

    def __init__(self, path: str | Path, threads: int = 1, inference_precision: str | None = None):
        self.path = Path(path)
        self.last_gates = None
        if self.path.suffix.lower() == ".onnx":
            self.sess = ort_session(self.path, threads)
            self.outputs = [o.name for o in self.sess.get_outputs()]
            self._run = lambda x: self.sess.run(None, {"x": x})
        else:  # exactly as the runtime runs it (static batch, recorded inference precision)
            from tinct.runtime.backends.openvino_backend import OpenVINOBackend

            self.backend = OpenVINOBackend.load(self.path, precision=inference_precision, threads=threads)
            self.outputs = self.backend.output_names
            self._run = lambda x: list(self.backend.infer({self.backend.input_names[0]: x}).values())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        outs = dict(zip(self.outputs, self._run(np.ascontiguousarray(x, np.float32))))
        self.last_gates = outs.get("gates")
        return outs["ab"] if "ab" in outs else next(iter(outs.values()))


@dataclass
class GuardReport:
    where: str
    n_images: int
    psnr_parent: dict = field(default_factory=dict)
    psnr_child: dict = field(default_factory=dict)
    delta: dict = field(default_factory=dict)  # parent - child, dB
    max_ab_err: float = 0.0  # Lab ab units
    mean_ab_err: float = 0.0
    nonfinite_outputs: int = 0  # NaN/inf values in the child's ab (invisible in PSNR after the uint8 cast)
    gate_agreement: float | None = None

    def to_dict(self) -> dict:
        r = lambda d: {str(k): round(float(v), 4) for k, v in d.items()}  # noqa: E731
        out = {"images": f"{self.n_images} ({self.where})", "hint_counts": list(GUARD_COUNTS),
               "psnr_parent": r(self.psnr_parent), "psnr": r(self.psnr_child), "delta_psnr": r(self.delta),
               "max_ab_err": round(self.max_ab_err, 4), "mean_ab_err": round(self.mean_ab_err, 5),
               "nonfinite_outputs": self.nonfinite_outputs}
        if self.gate_agreement is not None:
            out["gate_agreement"] = round(self.gate_agreement, 5)
        return out

    def line(self) -> str:
        d = ", ".join(f"@{k} {v:+.3f}" for k, v in self.delta.items())
        g = f", gate agreement {self.gate_agreement:.4f}" if self.gate_agreement is not None else ""
        return f"ΔPSNR (parent − quantized) {d} dB; max |Δab| {self.max_ab_err:.2f}{g} [{self.n_images} {self.where}]"


def compare(parent: Callable, child: Callable, images: np.ndarray, names: Sequence[str], where: str = "",
            counts: Sequence[int] = GUARD_COUNTS, batch: int = 1) -> GuardReport:
    """Evaluate ``child`` against ``parent`` (predictors x -> ab) with :func:`runtime.evaluation.predict_rgb`."""
    from tinct.runtime.compare import OutputDiff

    hints = make_eval_hints([f"{n}.png" for n in names], counts)
    rep = GuardReport(where=where, n_images=len(images))
    diff = OutputDiff()
    for k in counts:
        masks = np.stack([mask_from_coords(hints[k][n]) for n in names])
        abs_p, abs_c, g_p, g_c = [], [], [], []

        def rec(pred, store, gates):
            def f(x):
                ab = pred(x)
                store.append(np.asarray(ab, np.float32))
                g = getattr(pred, "last_gates", None)
                if g is not None:
                    gates.append(np.asarray(g))
                return ab
            return f

        rgb_p = predict_rgb(rec(parent, abs_p, g_p), images, masks, batch)
        rgb_c = predict_rgb(rec(child, abs_c, g_c), images, masks, batch)
        rep.psnr_parent[k] = float(psnr(rgb_p, images).mean())
        rep.psnr_child[k] = float(psnr(rgb_c, images).mean())
        rep.delta[k] = rep.psnr_parent[k] - rep.psnr_child[k]
        diff.add(np.concatenate(abs_p), np.concatenate(abs_c),
                 np.concatenate(g_p) if g_p and g_c else None, np.concatenate(g_c) if g_p and g_c else None)
    rep.nonfinite_outputs = diff.nonfinite
    rep.max_ab_err = diff.max_abs * AB_NORM  # Lab ab units
    rep.mean_ab_err = diff.mean_abs * AB_NORM
    rep.gate_agreement = diff.gate_agreement
    return rep


def evaluate(parent_path, child_path, threads: int = 1, limit: int | None = None,
             child_precision: str | None = None) -> GuardReport:
    names, images, where = guard_images(limit)
    return compare(Predictor(parent_path, threads), Predictor(child_path, threads, child_precision),
                   images, names, where)


def enforce(report: GuardReport, budget_db: float, what: str, max_mean_ab: float | None = None) -> None:
    """Raise :class:`GuardError` when ΔPSNR@10 exceeds the budget, when the mean |Δab| against the
    parent exceeds ``max_mean_ab`` (see :data:`quantization.DEFAULT_MAX_MEAN_AB`), or when the
    output is not finite."""
    key = getattr(report, "primary", 10)  # the criterion's PSNR: @10 hints, or Color2Embed's (quantization/color2embed.py)
    d10 = report.delta.get(key)
    if report.nonfinite_outputs:
        raise GuardError(f"{what}: the quantized model produced {report.nonfinite_outputs} NaN/inf output values "
                         f"on the validation images; nothing written")
    if d10 is None or not np.isfinite(d10) or not np.isfinite(report.max_ab_err):
        raise GuardError(f"{what}: the quantized model's output is not finite; nothing written")
    if d10 > budget_db:
        label = f"@{key}" if isinstance(key, int) else f" ({key})"
        raise GuardError(f"{what}: PSNR{label} drops by {d10:.3f} dB against the FP32 parent, over the "
                         f"{budget_db:g} dB budget (--max-psnr-drop); nothing written. {report.line()}")
    if max_mean_ab is not None and report.mean_ab_err > max_mean_ab:
        raise GuardError(f"{what}: mean |Δab| against the FP32 parent is {report.mean_ab_err:.2f}, over the "
                         f"{max_mean_ab:g} limit (--max-mean-ab-err): the quantized model does not reproduce its "
                         f"parent (broken calibration?); nothing written. {report.line()}")
