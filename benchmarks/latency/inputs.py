"""Model inputs and user hints from the fixture photos."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

import numpy as np
from PIL import Image

from tinct.benchmarks.latency.common import N_HINTS, PHOTOS, SkipCase
from tinct.runtime.color import rgb_to_lab_n
from tinct.runtime.errors import InputError
from tinct.runtime.hints import IMG_SIZE, UserHint, encode_from_lab, make_eval_hints, mask_from_coords

# ----------------------------------------------------------------------------- inputs

def fixture_photos() -> list[Path]:
    files = sorted(p for p in PHOTOS.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SkipCase(f"no fixture photos in {PHOTOS}")
    return files


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """``WxH`` -> (W, H), each side 16..8192 pixels, or an :class:`InputError` naming ``flag``."""

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"{flag} {text!r}: expected WxH, e.g. 1920x1080") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise InputError(f"{flag} {text}: each side must be 16..8192 pixels")
    return w, h


def photo(path: Path, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 [H, W, 3]: centre crop to the aspect of ``size`` (W, H), then bilinear resize."""

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        tw, th = size
        if w * th > h * tw:
            nw = round(h * tw / th)
            im = im.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
        else:
            nh = round(w * th / tw)
            im = im.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))
        return np.asarray(im.resize(size, Image.BILINEAR), dtype=np.uint8)


def model_inputs(n: int = 1, hints: int = N_HINTS) -> np.ndarray:
    """``x [n,4,224,224]`` float32: fixture photos with ``hints`` ground-truth hints (the evaluation
    protocol's positions, cell-mean colours), cycling through the photos for n > number of photos."""

    paths = fixture_photos()
    rgb = np.stack([photo(paths[i % len(paths)], (IMG_SIZE, IMG_SIZE)) for i in range(n)])
    stems = [f"bench{i:04d}" for i in range(n)]
    coords = make_eval_hints([f"{s}.png" for s in stems], (hints,))[hints]
    masks = np.stack([mask_from_coords(np.asarray(coords[s], dtype=np.int64).reshape(-1, 2)) for s in stems])
    return np.ascontiguousarray(encode_from_lab(rgb_to_lab_n(rgb), masks), dtype=np.float32)


def drag(rng, x: int, y: int, size: tuple[int, int], step: int = 40) -> tuple[int, int]:
    """A hint dragged from (x, y) by up to ``step`` px each way, kept inside the image ``size`` (W, H)."""
    w, h = size
    return (min(max(x + int(rng.integers(-step, step + 1)), 0), w - 1),
            min(max(y + int(rng.integers(-step, step + 1)), 0), h - 1))


def user_hints(image: np.ndarray, n: int = N_HINTS, seed: int = 0) -> list:
    """n clicks at seeded positions coloured with the photo's own pixel there."""

    h, w = image.shape[:2]
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if (x, y) in seen:
            continue
        seen.add((x, y))
        out.append(UserHint(x, y, tuple(int(v) for v in image[y, x, :3])))
    return out
