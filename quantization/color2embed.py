"""Quantizing the Color2Embed colorizer graph: its calibration inputs and its accuracy guard.

``tinct quantize OUT-colorizer.onnx --precision int8|fp16`` takes this route when the parent's
architecture is ``color2embed-colorizer`` (the encoder runs once per reference and stays FP32;
quantizing it is refused). The colorizer's encoder is found next to it (:func:`runtime.exemplar.find_artifacts`).

Calibration (:class:`C2ECalibrationSet`): ``size`` random-resized crops of :data:`SIZE` pixels from
the training photos (or ``--calib DIR``) with :class:`data.photos.CropSampler`; input ``l_n`` is
the crop's L; ``emb`` is the FP32 encoder's embedding of the crop warped by the training
augmentation (:func:`data.tps.random_reference`: TPS, rotation, flip, noise), i.e. the inputs
the colorizer sees in training. Deterministic in ``seed``.

Guard (:func:`evaluate`): the validation split (fixture photos when the corpus is absent) at
:data:`SIZE` (224 = 14 x 16, the split's own size); each image is colorized by parent and child
with two references: its own TPS-warped version (fixed seed; ``tps``, the criterion, the
self-supervised protocol of training) and the next image of the split (``other``). PSNR as
:mod:`runtime.evaluation` (uint8 RGB, MSE floor); ΔPSNR = parent - child; |Δab| between the outputs.
Both sides get the same FP32 embeddings, so the guard measures the colorizer's quantization only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinct.quantization.calibration import DEFAULT_SEED, DEFAULT_SIZE, FeedReader, _progress, load_photo_dir
from tinct.quantization.guard import GuardReport, guard_images, ort_session
from tinct.runtime.color import AB_NORM, rgb_to_lab_n
from tinct.runtime.errors import TinctError
from tinct.runtime.evaluation import compose_rgb, psnr

SIZE = 224
GUARD_SEED = 1234
REFERENCES = ("tps", "other")


def encoder_for(colorizer_path) -> Path:
    from tinct.runtime.exemplar import find_artifacts

    return find_artifacts(colorizer_path)[0]


class Encoder:
    """The FP32 colour encoder ONNX: uint8 RGB [N,H,W,3] -> float32 [N,E]."""

    def __init__(self, path, threads: int = 1):
        self.sess = ort_session(path, threads)

    def __call__(self, rgb) -> np.ndarray:
        x = np.asarray(rgb)
        x = x.astype(np.float32) * np.float32(1 / 255.0) if x.dtype == np.uint8 else x.astype(np.float32)
        return self.sess.run(["emb"], {"ref": np.ascontiguousarray(np.moveaxis(x, -1, 1))})[0]


def tps_references(images: np.ndarray, seed: int) -> np.ndarray:
    """float32 [N,H,W,3] in [0,1]: each image through the training reference augmentation."""
    from tinct.data.tps import random_reference

    rng = np.random.default_rng(seed)
    return np.stack([random_reference(rng, im) for im in images])


class C2ECalibrationSet:
    """``size`` colorizer inputs ``{"l_n": [1,1,S,S], "emb": [1,E]}`` (see the module docstring)."""

    def __init__(self, photos, encoder_path, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED,
                 progress: bool = False, source: str = "photos", crop: int = SIZE, threads: int = 1):
        from tinct.data.photos import CropSampler

        if size < 1:
            raise TinctError(f"calibration size must be >= 1, got {size}")
        self.size, self.seed, self.crop, self.source, self.progress = int(size), int(seed), int(crop), source, progress
        sampler = CropSampler(photos, seed=seed, size=self.crop)
        self.images = sampler.batch(self.size)
        enc = Encoder(encoder_path, threads)
        refs = tps_references(self.images, seed + 1)
        self.emb = np.concatenate([enc(refs[i:i + 1]) for i in _progress(range(self.size), self.size,
                                                                         "reference embeddings", progress)])

    @classmethod
    def from_source(cls, encoder_path, calib_dir=None, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED,
                    progress: bool = False) -> C2ECalibrationSet:
        if calib_dir is not None:
            return cls(load_photo_dir(calib_dir), encoder_path, size, seed, progress, source=str(calib_dir))
        from tinct.data.photos import load_train_photos

        return cls(load_train_photos(), encoder_path, size, seed, progress, source="training split")

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        if not -self.size <= i < self.size:
            raise IndexError(i)
        i %= self.size
        l_n = rgb_to_lab_n(self.images[i:i + 1])[..., 0][:, None]
        return {"l_n": np.ascontiguousarray(l_n, np.float32), "emb": self.emb[i:i + 1]}

    def feed(self, i: int) -> dict:
        """Sample ``i`` as model feeds (NNCF's ONNX backend)."""
        return self[i]

    def __iter__(self):
        for i in range(self.size):
            yield self[i]

    def describe(self) -> dict:
        return {"source": self.source, "size": self.size, "seed": self.seed,
                "inputs": f"l_n of CropSampler crops ({self.crop}x{self.crop}); emb = FP32 encoder of the crop "
                          "warped by data.tps.random_reference (TPS 6 points +-0.25, rotation, flip, noise)"}

    def ort_reader(self, indices=None, desc: str = "calibrating"):
        return FeedReader(self, indices, desc)

    def nncf_dataset(self):
        import nncf

        return nncf.Dataset(self)


# ----------------------------------------------------------------------------- guard

class Predictor:
    """(l_n, emb) -> ab for an ONNX file (ONNX Runtime) or an OpenVINO IR (its recorded precision)."""

    def __init__(self, path, threads: int = 1):
        self.path = Path(path)
        if self.path.suffix.lower() == ".onnx":
            self.sess = ort_session(self.path, threads)
            self._run = lambda feed: self.sess.run(["ab"], feed)[0]
        else:  # exactly as the runtime runs it (recorded inference precision), as quantization.guard does
            from tinct.runtime.backends.openvino_backend import OpenVINOBackend

            backend = OpenVINOBackend.load(self.path, threads=threads)
            self._run = lambda feed: backend.infer(feed)["ab"]

    def __call__(self, l_n: np.ndarray, emb: np.ndarray) -> np.ndarray:
        return np.asarray(self._run({"l_n": np.ascontiguousarray(l_n, np.float32),
                                     "emb": np.ascontiguousarray(emb, np.float32)}), np.float32)


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
    from tinct.runtime.compare import OutputDiff

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
        from PIL import Image

        images = np.stack([np.asarray(Image.fromarray(im).resize((SIZE, SIZE), Image.BILINEAR)) for im in images])
    return compare(Predictor(parent_path, threads), Predictor(child_path, threads), Encoder(encoder_path, threads),
                   images, where)
