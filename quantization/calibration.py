"""Calibration inputs for post-training quantization: hint-simulated model inputs from photos.

Photos: the training split of the corpus (:func:`data.photos.load_train_photos`) or a directory
of images (``--calib DIR``). Each sample is a random-resized crop (:class:`data.photos.CropSampler`,
the training augmentation), converted to normalized Lab (:mod:`runtime.color`) and given hints as in
training (:func:`runtime.hints.sample_training_masks`, colours = cell-mean ab) with hint counts
spread evenly over 0..128 (then shuffled), so every part of the hint range is represented whatever
the size. Everything is deterministic in ``seed``.

The same set is exposed as an ONNX Runtime ``CalibrationDataReader`` (:meth:`CalibrationSet.ort_reader`)
and as an ``nncf.Dataset`` (:meth:`CalibrationSet.nncf_dataset`). Inputs are encoded lazily, one
sample at a time (300 samples would be 240 MB as float32).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader
from PIL import Image
from tqdm import tqdm

from tinct.data.photos import CropSampler, load_train_photos
from tinct.runtime.color import rgb_to_lab_n
from tinct.runtime.errors import TinctError
from tinct.runtime.hints import GRID, TRAIN_MAX_HINTS, encode_from_lab

DEFAULT_SIZE = 300
DEFAULT_SEED = 20261121
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable

    return tqdm(iterable, total=total, desc=desc, unit="img", leave=False)


def load_photo_dir(directory: str | Path) -> list[np.ndarray]:
    """Every image under ``directory`` (sorted, recursive) as uint8 RGB HxWx3."""

    d = Path(directory)
    if not d.is_dir():
        raise TinctError(f"calibration directory {d} does not exist")
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TinctError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under calibration directory {d}")
    photos = []
    for p in files:
        try:
            with Image.open(p) as im:
                photos.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
        except OSError as exc:
            raise TinctError(f"cannot read calibration image {p}: {exc}") from None
    return photos


class CalibrationSet:
    """``size`` hint-simulated inputs ``x`` float32 [1,4,224,224] (see the module docstring)."""

    def __init__(self, photos, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED,
                 max_hints: int = TRAIN_MAX_HINTS, progress: bool = False, source: str = "photos"):

        if size < 1:
            raise TinctError(f"calibration size must be >= 1, got {size}")
        self.size, self.seed, self.max_hints, self.source = int(size), int(seed), int(max_hints), source
        self.progress = progress
        sampler = CropSampler(photos, seed=seed)
        self.images = np.empty((self.size, 224, 224, 3), np.uint8)
        for i in _progress(range(self.size), self.size, "calibration crops", progress):
            self.images[i] = sampler.batch(1)[0]
        rng = np.random.default_rng(seed + 1)
        self.counts = rng.permutation(np.round(np.linspace(0, max_hints, self.size)).astype(np.int64))
        self.masks = np.zeros((self.size, GRID * GRID), bool)
        for i, k in enumerate(self.counts):
            self.masks[i, rng.choice(GRID * GRID, size=int(k), replace=False)] = True
        self.masks = self.masks.reshape(self.size, GRID, GRID)

    @classmethod
    def from_source(cls, calib_dir: str | Path | None = None, size: int = DEFAULT_SIZE,
                    seed: int = DEFAULT_SEED, progress: bool = False) -> CalibrationSet:
        """Photos from ``calib_dir``, else the corpus' training split (error if neither exists)."""
        if calib_dir is not None:
            return cls(load_photo_dir(calib_dir), size, seed, progress=progress, source=str(calib_dir))

        return cls(load_train_photos(), size, seed, progress=progress, source="training split")

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> np.ndarray:
        if not -self.size <= i < self.size:
            raise IndexError(i)
        lab_n = rgb_to_lab_n(self.images[i:i + 1] if i >= 0 else self.images[i][None])
        return encode_from_lab(lab_n, self.masks[i:i + 1] if i >= 0 else self.masks[i][None])

    def __iter__(self):
        for i in range(self.size):
            yield self[i]

    def feed(self, i: int) -> dict:
        """Sample ``i`` as model feeds ``{"x": array}`` (NNCF's ONNX backend)."""
        return {"x": self[i]}

    def describe(self) -> dict:
        """What goes into ``extra.calibration``."""
        return {"source": self.source, "size": self.size, "seed": self.seed,
                "hints": f"counts spread evenly over 0..{self.max_hints} (mean {float(self.counts.mean()):.1f}), "
                         "training mask sampler, cell-mean ab", "crops": "CropSampler (RandomResizedCrop 224)"}

    # --------------------------------------------------------------- consumers
    def ort_reader(self, indices=None, desc: str = "calibrating"):
        """A fresh ``onnxruntime.quantization.CalibrationDataReader`` over the set (or ``indices``)."""
        return FeedReader(self, indices, desc)

    def nncf_dataset(self):
        import nncf

        return nncf.Dataset(self)


def _reader_base():
    return CalibrationDataReader


class FeedReader(_reader_base()):
    """Calibration reader over any calibration set with ``feed(i)`` (iColoriT's and Color2Embed's)."""

    def __init__(self, calib, indices, desc: str):
        self.calib, self.desc = calib, desc
        self.indices = list(range(len(calib))) if indices is None else list(indices)
        self.rewind()

    def rewind(self):
        self._it = iter(_progress(self.indices, len(self.indices), self.desc, self.calib.progress))

    def get_next(self):
        i = next(self._it, None)
        return None if i is None else self.calib.feed(i)

    def __len__(self):
        return len(self.indices)


class ArrayReader(_reader_base()):
    """Calibration reader over captured arrays: ``[{name: array}, ...]`` (used for If branches)."""

    def __init__(self, feeds: list[dict]):
        self.feeds = feeds
        self.rewind()

    def rewind(self):
        self._it = iter(self.feeds)

    def get_next(self):
        return next(self._it, None)
