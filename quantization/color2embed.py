"""Quantizing the Color2Embed colorizer graph: its calibration inputs (its guard is :mod:`tinct.verify.color2embed`).

``tinct quantize OUT-colorizer.onnx --precision int8|fp16`` takes this route when the parent's
architecture is ``color2embed-colorizer`` (the encoder runs once per reference and stays FP32;
quantizing it is refused). The colorizer's encoder is found next to it (:func:`runtime.exemplar.find_artifacts`).

Calibration (:class:`C2ECalibrationSet`): ``size`` random-resized crops of :data:`SIZE` pixels from
the training photos (or ``--calib DIR``) with :class:`data.photos.CropSampler`; input ``l_n`` is
the crop's L; ``emb`` is the FP32 encoder's embedding of the crop warped by the training
augmentation (:func:`data.tps.random_reference`: TPS, rotation, flip, noise), i.e. the inputs
the colorizer sees in training. Deterministic in ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinct.data.photos import CropSampler, load_train_photos
from tinct.quantization.calibration import DEFAULT_SEED, DEFAULT_SIZE, FeedReader, _progress, load_photo_dir
from tinct.runtime.color import rgb_to_lab_n
from tinct.runtime.errors import TinctError
from tinct.runtime.exemplar import find_artifacts
from tinct.verify.color2embed import SIZE, tps_references
from tinct.verify.predictors import EncoderPredictor


def encoder_for(colorizer_path) -> Path:
    """The colour encoder ONNX next to a colorizer (:func:`tinct.runtime.exemplar.find_artifacts`)."""
    return find_artifacts(colorizer_path)[0]


class C2ECalibrationSet:
    """``size`` colorizer inputs ``{"l_n": [1,1,S,S], "emb": [1,E]}`` (see the module docstring)."""

    def __init__(self, photos, encoder_path, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED,
                 progress: bool = False, source: str = "photos", crop: int = SIZE, threads: int = 1):
        if size < 1:
            raise TinctError(f"calibration size must be >= 1, got {size}")
        self.size, self.seed, self.crop, self.source, self.progress = int(size), int(seed), int(crop), source, progress
        sampler = CropSampler(photos, seed=seed, size=self.crop)
        self.images = sampler.batch(self.size)
        enc = EncoderPredictor(encoder_path, threads)
        refs = tps_references(self.images, seed + 1)
        self.emb = np.concatenate([enc(refs[i:i + 1]) for i in _progress(range(self.size), self.size,
                                                                         "reference embeddings", progress)])

    @classmethod
    def from_source(cls, encoder_path, calib_dir=None, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED,
                    progress: bool = False) -> C2ECalibrationSet:
        if calib_dir is not None:
            return cls(load_photo_dir(calib_dir), encoder_path, size, seed, progress, source=str(calib_dir))
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
