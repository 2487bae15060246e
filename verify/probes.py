"""Probe inputs: the real photos with real hints that parity and self-checks run on (never noise).

Up to 4 colour photos (the sample photos shipped with tinct, :mod:`tinct.data.samples`; else the
validation images of the corpus (:func:`tinct.data.corpus.default_cache`)), each with 0, 10 and 50 hints placed by the official evaluation
protocol (:func:`runtime.hints.make_eval_hints`) and coloured with the cell-mean ab of the photo
(:func:`runtime.hints.encode_from_lab`). Used by ``tinct export``'s parity check, ``tinct build``'s
BF16 self-check, ``tinct ship`` and the quantization guard's fallback photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tinct.data.corpus import default_cache
from tinct.data.samples import SAMPLES_DIR
from tinct.runtime.color import rgb_to_lab_n
from tinct.runtime.errors import TinctError
from tinct.runtime.hints import IMG_SIZE, encode_from_lab, make_eval_hints, mask_from_coords
from tinct.runtime.image import resize_center_crop

HINT_COUNTS = (0, 10, 50)
MAX_IMAGES = 4
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FIXTURE_PHOTOS = SAMPLES_DIR


def val_images_dir() -> Path:
    return default_cache() / "val" / "images"


def find_parity_photos(limit: int = MAX_IMAGES) -> list[Path]:
    """The photos parity runs on: the test fixtures, else the validation images; else an error."""
    for d in (FIXTURE_PHOTOS, val_images_dir()):
        files = sorted(p for p in d.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if d.is_dir() else []
        if files:
            return files[:limit]
    raise TinctError(f"no photos for the parity check: put a few colour images in {FIXTURE_PHOTOS} "
                     f"(or run 'tinct data fetch' to get {val_images_dir()}); parity is never run on noise")


def load_photo(path: str | Path, size: int = IMG_SIZE) -> np.ndarray:
    """RGB uint8 [size, size, 3]: short side to ``size`` (bilinear), centre crop."""
    try:
        with Image.open(path) as im:
            return resize_center_crop(im.convert("RGB"), size, size)
    except OSError as exc:
        raise TinctError(f"cannot read parity photo {path}: {exc}") from None


def parity_images(images=None) -> tuple[np.ndarray, list[str]]:
    """``images``: None (default photos), a directory, a list of paths, or uint8 [K,224,224,3].
    Returns (uint8 [K,224,224,3], names)."""
    if images is None:
        paths = find_parity_photos()
    elif isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[1:] != (IMG_SIZE, IMG_SIZE, 3) or images.dtype != np.uint8:
            raise TinctError(f"parity images must be uint8 [K,{IMG_SIZE},{IMG_SIZE},3], got "
                             f"{images.dtype} {images.shape}")
        return images, [f"image{i}" for i in range(len(images))]
    elif isinstance(images, (str, Path)) and Path(images).is_dir():
        paths = sorted(p for p in Path(images).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:MAX_IMAGES]
        if not paths:
            raise TinctError(f"no images in {images}")
    else:
        paths = [Path(p) for p in ([images] if isinstance(images, (str, Path)) else images)]
    return np.stack([load_photo(p) for p in paths]), [Path(p).stem for p in paths]


def parity_inputs(images=None, hint_counts: Sequence[int] = HINT_COUNTS) -> np.ndarray:
    """Model inputs ``x [K*len(hint_counts), 4, 224, 224]``: every photo with every hint count."""
    rgb, names = parity_images(images)
    lab_n = rgb_to_lab_n(rgb)
    coords = make_eval_hints([f"{n}.png" for n in names], hint_counts)
    xs = []
    for k in hint_counts:
        masks = np.stack([mask_from_coords(coords[k][n]) for n in names])
        xs.append(encode_from_lab(lab_n, masks))
    return np.ascontiguousarray(np.concatenate(xs), dtype=np.float32)
