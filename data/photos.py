"""The cached corpus as arrays: training photos, the validation split, random-resized crops.

Reads what ``tinct data fetch`` (:mod:`data.corpus`) built; numpy and Pillow only (no torch).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from tinct.data.corpus import VAL_CROP, cache_dir
from tinct.runtime.errors import TinctError


def load_train_photos(cache=None) -> list[np.ndarray]:
    """The decoded training photos (uint8 HxWx3), as cached by ``tinct data fetch``."""
    d = cache_dir(cache) / "train"
    index_path = d / "index.json"
    if not index_path.is_file():
        raise TinctError(f"no training photos under {d.parent}: run 'tinct data fetch' first")
    index = json.loads(index_path.read_text())
    return [np.load(d / item["file"]) for item in index["items"]]


def val_dir(cache=None) -> Path:
    """``<cache>/val``, containing ``images/`` and ``hints/``."""
    d = cache_dir(cache) / "val"
    if not (d / "index.json").is_file():
        raise TinctError(f"no validation split under {d.parent}: run 'tinct data fetch' first")
    return d


def load_val(cache=None) -> tuple[list[str], np.ndarray]:
    """(names sorted, images uint8 ``[N, 224, 224, 3]``) of the validation split."""
    d = val_dir(cache) / "images"
    paths = sorted(d.glob("*.png"))
    names = [p.stem for p in paths]
    images = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in paths]) \
        if paths else np.zeros((0, VAL_CROP, VAL_CROP, 3), np.uint8)
    return names, images


# ----------------------------------------------------------------------------- crops

class CropSampler:
    """Random-resized crops of the training photos, as torchvision's ``RandomResizedCrop``.

    For each sample: a photo uniformly at random; up to 10 tries of an area fraction uniform in
    ``scale`` and a log-uniform aspect ratio in ``ratio``, accepted when the box fits; else the
    fallback centre crop (the whole image clamped to the ratio range). The box is resized to
    ``size`` x ``size`` with Pillow's bilinear filter (antialiased when shrinking) and flipped
    horizontally with probability 1/2. Deterministic given ``seed``.
    """

    def __init__(self, photos: Sequence[np.ndarray], seed: int, size: int = 224,
                 scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 hflip: bool = True):
        if not photos:
            raise TinctError("CropSampler needs at least one photo")
        self._images = []
        for p in photos:
            p = np.asarray(p)
            if p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 3:
                raise TinctError(f"CropSampler expects uint8 HxWx3 photos, got {p.dtype} {p.shape}")
            self._images.append(Image.fromarray(np.ascontiguousarray(p)))
        self.size, self.scale, self.ratio, self.hflip = int(size), scale, ratio, hflip
        self.rng = np.random.default_rng(seed)
        self._log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(top, left, h, w) as torchvision's ``RandomResizedCrop.get_params``."""
        area = width * height
        rng = self.rng
        for _ in range(10):
            target = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(*self._log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                i = int(rng.integers(0, height - h + 1))
                j = int(rng.integers(0, width - w + 1))
                return i, j, h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def batch(self, n: int) -> np.ndarray:
        """``n`` crops: uint8 ``[n, size, size, 3]``."""
        out = np.empty((n, self.size, self.size, 3), dtype=np.uint8)
        for k in range(n):
            im = self._images[int(self.rng.integers(len(self._images)))]
            i, j, h, w = self.crop_box(*im.size)
            crop = im.resize((self.size, self.size), Image.BILINEAR, box=(j, i, j + w, i + h))
            arr = np.asarray(crop)
            if self.hflip and self.rng.random() < 0.5:
                arr = arr[:, ::-1]
            out[k] = arr
        return out
