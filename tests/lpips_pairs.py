"""The image pairs LPIPS is checked on: three 224x224 photo crops (``tests/fixtures/lpips/base*.png``) against
versions of themselves made with numpy only (so the pairs are the same wherever they are rebuilt): gray,
swapped colour channels, seeded noise, 4x box down/up-sampling, a shift, each other. Used by
``tests/test_lpips.py`` and by ``tests/lpips_reference.py`` (which needs only numpy and Pillow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "lpips"


def _u8(x) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def pairs(fixtures: Path = FIXTURES) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from PIL import Image

    bases = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(fixtures.glob("base*.png"))]
    rng = np.random.default_rng(1234)
    out = []
    for i, a in enumerate(bases):
        f = a.astype(np.float64)
        gray = f @ np.array([0.299, 0.587, 0.114])
        box = f.reshape(56, 4, 56, 4, 3).mean(axis=(1, 3)).repeat(4, 0).repeat(4, 1)
        out += [(f"base{i}-gray", a, _u8(np.repeat(gray[..., None], 3, -1))),
                (f"base{i}-bgr", a, a[..., ::-1].copy()),
                (f"base{i}-noise", a, _u8(f + rng.normal(0, 12, f.shape))),
                (f"base{i}-box4", a, _u8(box)),
                (f"base{i}-shift", a, np.roll(a, (3, -5), axis=(0, 1))),
                (f"base{i}-same", a, a.copy())]
    for i in range(len(bases)):
        out.append((f"base{i}-base{(i + 1) % len(bases)}", bases[i], bases[(i + 1) % len(bases)]))
    return out
