"""The accuracy guard of a quantized Color2Embed colorizer against its FP32 parent.

Guard (:func:`evaluate`): the validation split (fixture photos when the corpus is absent) at
:data:`SIZE` (224 = 14 x 16, the split's own size); each image is colorized by parent and child
with two references: its own TPS-warped version (fixed seed; ``tps``, the criterion, the
self-supervised protocol of training) and the next image of the split (``other``). PSNR as
:mod:`runtime.evaluation` (uint8 RGB, MSE floor); ΔPSNR = parent - child; |Δab| between the outputs.
Both sides get the same FP32 embeddings, so the guard measures the colorizer's quantization only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from tinct.data.tps import random_reference
from tinct.runtime.color import AB_NORM, rgb_to_lab_n
from tinct.runtime.errors import TinctError
from tinct.runtime.evaluation import compose_rgb, psnr
from tinct.verify.compare import OutputDiff
from tinct.verify.guard import GuardReport, guard_images
from tinct.verify.predictors import ColorizerPredictor, EncoderPredictor

SIZE = 224
GUARD_SEED = 1234
REFERENCES = ("tps", "other")


def tps_references(images: np.ndarray, seed: int) -> np.ndarray:
    """float32 [N,H,W,3] in [0,1]: each image through the training reference augmentation."""
    rng = np.random.default_rng(seed)
    return np.stack([random_reference(rng, im) for im in images])


@dataclass
class C2EGuardReport(GuardReport):
    primary: str = "tps"

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.pop("hint_counts", None)
        out["references"] = {"tps": "the image's own TPS-warped version (training augmentation, seed "
                                    f"{GUARD_SEED})", "other": "the next image of the split"}
        out["criterion"] = "delta_psnr.tps"
        return out


def compare(parent, child, encoder, images: np.ndarray, where: str = "") -> C2EGuardReport:
    """Evaluate ``child`` against ``parent`` (predictors (l_n, emb) -> ab) on uint8 images [N,S,S,3]."""
    rep = C2EGuardReport(where=where, n_images=len(images))
    lab_n = rgb_to_lab_n(images)
    l_n = np.ascontiguousarray(lab_n[..., 0][:, None], np.float32)
    refs = {"tps": tps_references(images, GUARD_SEED), "other": np.roll(images, -1, axis=0)}
    diff = OutputDiff()
    for name in REFERENCES:
        emb = np.concatenate([encoder(refs[name][i:i + 1]) for i in range(len(images))])
        ab_p = np.concatenate([parent(l_n[i:i + 1], emb[i:i + 1]) for i in range(len(images))])
        ab_c = np.concatenate([child(l_n[i:i + 1], emb[i:i + 1]) for i in range(len(images))])
        rep.psnr_parent[name] = float(psnr(compose_rgb(lab_n[..., 0], ab_p), images).mean())
        rep.psnr_child[name] = float(psnr(compose_rgb(lab_n[..., 0], ab_c), images).mean())
        rep.delta[name] = rep.psnr_parent[name] - rep.psnr_child[name]
        diff.add(ab_p, ab_c)
    rep.nonfinite_outputs = diff.nonfinite  # NaN/inf in the child's ab: refused by the guard
    rep.max_ab_err = diff.max_abs * AB_NORM  # Lab ab units
    rep.mean_ab_err = diff.mean_abs * AB_NORM
    return rep


def evaluate(parent_path, child_path, encoder_path, threads: int = 1, limit: int | None = None) -> C2EGuardReport:
    _, images, where = guard_images(limit)
    if len(images) < 2:
        raise TinctError("the Color2Embed guard needs at least 2 images")
    if images.shape[1:3] != (SIZE, SIZE):
        images = np.stack([np.asarray(Image.fromarray(im).resize((SIZE, SIZE), Image.BILINEAR)) for im in images])
    return compare(ColorizerPredictor(parent_path, threads), ColorizerPredictor(child_path, threads),
                   EncoderPredictor(encoder_path, threads), images, where)
