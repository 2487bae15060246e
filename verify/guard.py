"""The accuracy guard: a quantized artifact is compared with its FP32 parent before it is written.

Protocol (:mod:`runtime.evaluation`): the validation split of the corpus (the fixture photos when the
corpus is absent), hints placed by the official evaluation protocol for k = 1, 10, 50; both models
colorize every image; PSNR@k of each, ΔPSNR@k = parent − child (positive = the child is worse),
the largest |Δab| between the two outputs (in Lab ab units) and, for A-ColViT graphs that expose
their decisions, the fraction of gate decisions that agree. ``tinct quantize`` refuses the artifact
when ΔPSNR@10 exceeds the budget (:data:`quantization.DEFAULT_BUDGET_DB`) or the mean |Δab|
exceeds :data:`quantization.DEFAULT_MAX_MEAN_AB`.

Artifacts are opened with one thread through :mod:`verify.predictors` (the runtime's own backends:
an IR at its recorded inference precision, an INT8 A-ColViT ONNX with ONNX Runtime's workaround), and
A-ColViT graphs report their decisions through their auxiliary ``gates`` output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tinct.data.photos import load_val
from tinct.runtime.color import AB_NORM
from tinct.runtime.errors import TinctError
from tinct.runtime.evaluation import predict_rgb, psnr
from tinct.runtime.hints import make_eval_hints, mask_from_coords
from tinct.verify.compare import OutputDiff
from tinct.verify.predictors import ArtifactPredictor, Predictor
from tinct.verify.probes import find_parity_photos, load_photo

GUARD_COUNTS = (1, 10, 50)


class GuardError(TinctError):
    """A quantized artifact lost more accuracy than its budget allows."""


def guard_images(limit: int | None = None) -> tuple[list[str], np.ndarray, str]:
    """(names, uint8 [N,224,224,3], where from): validation split, else the sample photos."""
    try:
        names, images = load_val()
        where = "validation split"
    except TinctError:
        names, images = [], None
    if images is None or not len(images):
        paths = find_parity_photos(limit=64)
        names = [p.stem for p in paths]
        images = np.stack([load_photo(p) for p in paths])
        where = "sample photos"
    if limit:
        names, images = names[:limit], images[:limit]
    return names, images, where


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


def compare(parent: Predictor, child: Predictor, images: np.ndarray, names: Sequence[str], where: str = "",
            counts: Sequence[int] = GUARD_COUNTS, batch: int = 1) -> GuardReport:
    """Evaluate ``child`` against ``parent`` (:data:`~tinct.verify.predictors.Predictor`: x -> (ab, gates))
    with :func:`runtime.evaluation.predict_rgb`."""
    hints = make_eval_hints([f"{n}.png" for n in names], counts)
    rep = GuardReport(where=where, n_images=len(images))
    diff = OutputDiff()
    for k in counts:
        masks = np.stack([mask_from_coords(hints[k][n]) for n in names])
        abs_p, abs_c, g_p, g_c = [], [], [], []

        def rec(pred, store, gates):
            def f(x):
                ab, g = pred(x)
                store.append(np.asarray(ab, np.float32))
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
    parent = ArtifactPredictor.open(parent_path, threads=threads)
    child = ArtifactPredictor.open(child_path, threads=threads, precision=child_precision)
    try:
        return compare(parent, child, images, names, where)
    finally:
        parent.close()
        child.close()


def enforce(report: GuardReport, budget_db: float, what: str, max_mean_ab: float | None = None) -> None:
    """Raise :class:`GuardError` when ΔPSNR@10 exceeds the budget, when the mean |Δab| against the
    parent exceeds ``max_mean_ab`` (see :data:`quantization.DEFAULT_MAX_MEAN_AB`), or when the
    output is not finite."""
    key = getattr(report, "primary", 10)  # the criterion's PSNR: @10 hints, or Color2Embed's (verify/color2embed.py)
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
