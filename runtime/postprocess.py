"""Post-processing at the output size: the model's ab (normalized, ``[2, n, n]``) -> sRGB uint8 ``[H, W, 3]``.

A :class:`Canvas` holds what one output size of one photo needs, computed once per photo: the full-res
CIE L (kept as is: the output's L is the input's), fy = (L + 16) / 116 and Y = f^-1(fy) (Lab's inverse
depends on L only through these), the bilinear taps from the model's size to this size, the output
buffer. :meth:`Canvas.render` then does, per update, bilinear upsampling of ab (half-pixel centres, as
``F.interpolate(..., align_corners=False)``) + Lab -> XYZ -> linear sRGB with the official constants +
gamma + clip + round through a 65536-entry table over linear light (within one level of the exact
``to_uint8(lab_to_rgb(...))`` on a small fraction of pixels; see the tests).

Two kernels compute the same thing:

- ``numba``: the model's rows upsampled along x once (``n x W``, small), then one fused pass over the output rows
  (``njit(parallel=True, cache=True)``, rows split over the session's threads) whose arithmetic runs on
  contiguous rows (vectorized) and whose only gathers are the gamma table's; no plane-sized temporaries. 2.6 ns
  per output pixel at 1 thread on a Zen 4 (1080p: 5.3-5.5 ms, median of 90 updates in each engine's session
  case), 2x the earlier per-pixel-gather kernel (11.0 ms): docs/performance.md, "Close to the machine".
- ``numpy``: the same steps as whole-plane operations into preallocated planes (about 20 passes over
  8 MB planes); used where numba is absent, and for one-shot use, where numba's import costs more
  than it saves. ``TINCT_POSTPROCESS=numpy|numba`` forces one.

Hand-written on purpose: OpenCV's float Lab->RGB is no faster (issue 14) and uses other Lab constants; a fused
loop is what makes the pass cheap.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from tinct.runtime.color import AB_NORM, RGB_TO_XYZ, WHITE_D65, XYZ_TO_RGB, srgb_to_linear

KERNELS = ("numba", "numpy")
_LIN_LUT = srgb_to_linear(np.arange(256, dtype=np.uint8)[:, None].repeat(3, 1))[:, 0].astype(np.float32)
_Y_WEIGHTS = (RGB_TO_XYZ[1] / WHITE_D65[1]).astype(np.float32)
_F_THRESH = np.float32(0.2068966)
_EPS = np.float32(0.008856)
GAMMA_LUT_BITS = 16
GAMMA_N = 1 << GAMMA_LUT_BITS


def _gamma_lut() -> np.ndarray:
    lin = (np.arange(GAMMA_N, dtype=np.float64) + 0.5) / GAMMA_N
    srgb = np.where(lin > 0.0031308, 1.055 * lin ** (1 / 2.4) - 0.055, 12.92 * lin)
    lut = np.clip(np.rint(srgb * 255.0), 0, 255).astype(np.uint8)
    lut[0] = 0
    return lut


LIN_TO_U8 = _gamma_lut()


def luminance_l(img: np.ndarray) -> np.ndarray:
    """CIE L (0..100) of a uint8 RGB ``[H, W, 3]`` or gray ``[H, W]`` image, float32 ``[H, W]``."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        img = img[..., None].repeat(3, axis=-1)
    y = _LIN_LUT[img[..., 0]] * _Y_WEIGHTS[0]
    y += _LIN_LUT[img[..., 1]] * _Y_WEIGHTS[1]
    y += _LIN_LUT[img[..., 2]] * _Y_WEIGHTS[2]
    f = np.where(y > _EPS, np.cbrt(y), np.float32(7.787) * y + np.float32(16.0 / 116.0)).astype(np.float32)
    f *= np.float32(116.0)
    f -= np.float32(16.0)
    return f


def finv_into(f: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """out = f^3 where f > 6/29 else (f - 16/116) / 7.787 (official lab2rgb), no allocation."""
    np.multiply(f, f, out=out)
    out *= f
    np.subtract(f, np.float32(16.0 / 116.0), out=scratch)
    scratch *= np.float32(1.0 / 7.787)
    np.copyto(out, scratch, where=f <= _F_THRESH)
    return out


def bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, w) of half-pixel-centre bilinear resampling from ``n_in`` to ``n_out`` samples."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int32)
    i1 = np.minimum(i0 + 1, n_in - 1).astype(np.int32)
    return i0, i1, (src - i0).astype(np.float32)


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) scaled so that the longer side is at most ``max_side`` (never upscaled)."""
    s = min(1.0, max_side / max(width, height))
    return max(1, round(width * s)), max(1, round(height * s))


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 image resized to (w, h) with Pillow's area-aware bilinear filter (the training data's)."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    mode = "L" if image.ndim == 2 else "RGB"
    return np.asarray(Image.fromarray(image, mode).resize(size, Image.BILINEAR))


# One-shot colorization (the CLI's colorize, the server's POST /api/colorize, batch runs) uses the numpy
# kernel: for one image numba's import costs more than it saves, and every one-shot path then gives the
# same pixels whatever the process has loaded (the kernels agree within one level, not bit for bit).
ONE_SHOT = "numpy"


def kernel_for(requested: str = "auto") -> str:
    """The kernel to use: ``TINCT_POSTPROCESS`` when set, else ``requested``; ``auto`` = numba when it
    is importable."""
    want = os.environ.get("TINCT_POSTPROCESS", "").strip().lower() or requested
    if want not in (*KERNELS, "auto"):
        raise ValueError(f"TINCT_POSTPROCESS={want!r}: choose one of {', '.join(KERNELS)}")
    if want == "numpy":
        return "numpy"
    try:
        from tinct.runtime import _postprocess_numba  # noqa: F401
    except ImportError:
        if want == "numba":
            raise
        return "numpy"
    return "numba"


class Canvas:
    """One photo at one output size: the per-photo caches and the output buffer (see the module doc).

    ``render`` returns the canvas' own buffer, overwritten by the next render: copy it to keep it.
    ``rgba=True`` keeps the buffer as RGBA with alpha 255 (``rgb`` is then a view of its first three
    channels, which the kernels write): a display takes it as it is, e.g. a browser's ``ImageData``."""

    def __init__(self, image: np.ndarray, kernel: str = "auto", rgba: bool = False):
        self.kernel = kernel_for(kernel)
        image = np.ascontiguousarray(image)
        self.height, self.width = image.shape[:2]
        h, w = self.height, self.width
        f32 = np.float32
        if self.kernel == "numba":
            from tinct.runtime import _postprocess_numba as nk

            rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
            self.l, self.fy, self.y = (np.empty((h, w), f32) for _ in range(3))
            nk.prepare(rgb, _LIN_LUT, _Y_WEIGHTS, f32(WHITE_D65[1]), self.l, self.fy, self.y)
        else:
            self.l = luminance_l(image)
            self.fy = (self.l + f32(16.0)) / f32(116.0)
            self.y = np.empty_like(self.fy)
            finv_into(self.fy, self.y, np.empty_like(self.fy))
            self.y *= f32(WHITE_D65[1])
            self._planes = None  # the numpy kernel's scratch planes, allocated at the first render
        # touched now, not in the first interactive update
        self.buffer = np.zeros((h, w, 4 if rgba else 3), dtype=np.uint8)
        if rgba:
            self.buffer[..., 3] = 255
        self.rgb = self.buffer[..., :3] if rgba else self.buffer
        self._taps: dict[int, tuple] = {}
        self._cols: np.ndarray | None = None  # the numba kernel's x-upsampled model rows [2, n, W]

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def taps(self, n_in: int) -> tuple:
        if n_in not in self._taps:
            self._taps[n_in] = (*bilinear_taps(n_in, self.height), *bilinear_taps(n_in, self.width))
        return self._taps[n_in]

    def render(self, ab_n: np.ndarray, threads: int = 1) -> np.ndarray:
        """Normalized ab ``[2, n, n]`` (or ``[1, 2, n, n]``) -> this canvas' uint8 RGB buffer."""
        ab_n = np.ascontiguousarray(np.asarray(ab_n, dtype=np.float32).reshape(2, *ab_n.shape[-2:]))
        if ab_n.shape[1] != ab_n.shape[2]:
            raise ValueError(f"expected square ab, got {ab_n.shape}")
        r0, r1, wr, c0, c1, wc = self.taps(ab_n.shape[1])
        if self.kernel == "numba":
            from tinct.runtime import _postprocess_numba as nk

            n = ab_n.shape[1]
            if self._cols is None or self._cols.shape[1] != n:
                self._cols = np.empty((2, n, self.width), np.float32)
            nk.render(ab_n, r0, r1, wr, c0, c1, wc, self.fy, self.y, _M, _W_SCALED, LIN_TO_U8, self.rgb, self._cols,
                      threads=threads)
        else:
            self._render_numpy(ab_n, r0, r1, wr, c0, c1, wc)
        return self.rgb

    def ab_full(self, ab_n: np.ndarray) -> np.ndarray:
        """The upsampled ab in ab units, float32 ``[2, H, W]`` (a fresh array; for :meth:`lab` and tests)."""
        ab_n = np.asarray(ab_n, dtype=np.float32).reshape(2, *ab_n.shape[-2:])
        h, w = self.height, self.width
        out = np.empty((2, h, w), np.float32)
        _upsample_into(ab_n, self.taps(ab_n.shape[1]), np.empty((2, h, ab_n.shape[1]), np.float32), out,
                       np.empty((h, w), np.float32))
        return out

    def _render_numpy(self, ab, r0, r1, wr, c0, c1, wc) -> None:
        h, w, f32 = self.height, self.width, np.float32
        if self._planes is None or self._planes["rows"].shape[2] != ab.shape[1]:
            self._planes = {"rows": np.empty((2, h, ab.shape[1]), f32), "ab": np.empty((2, h, w), f32),
                            **{k: np.empty((h, w), f32) for k in ("t1", "t2", "xp", "zp")},
                            "idx": np.empty((h, w), np.int32)}
        p = self._planes
        _upsample_into(ab, (r0, r1, wr, c0, c1, wc), p["rows"], p["ab"], p["t1"])
        a, b, t1, t2 = p["ab"][0], p["ab"][1], p["t1"], p["t2"]
        # fx = fy + a/500 -> X ; fz = max(fy - b/200, 0) -> Z   (official lab2rgb)
        np.multiply(a, f32(1 / 500.0), out=t2)
        t2 += self.fy
        finv_into(t2, p["xp"], t1)
        p["xp"] *= WHITE_D65[0]
        np.multiply(b, f32(-1 / 200.0), out=t2)
        t2 += self.fy
        np.maximum(t2, 0, out=t2)
        finv_into(t2, p["zp"], t1)
        p["zp"] *= WHITE_D65[2]
        for c in range(3):
            np.multiply(p["xp"], XYZ_TO_RGB[c, 0], out=t1)
            np.multiply(self.y, XYZ_TO_RGB[c, 1], out=t2)
            t1 += t2
            np.multiply(p["zp"], XYZ_TO_RGB[c, 2], out=t2)
            t1 += t2
            t1 *= f32(GAMMA_N)
            np.clip(t1, 0, GAMMA_N - 1, out=t1)
            np.copyto(p["idx"], t1, casting="unsafe")  # floor for non-negatives
            np.take(LIN_TO_U8, p["idx"], out=self.rgb[..., c], mode="clip")


def _upsample_into(ab, taps, rows, out, scratch) -> None:
    """Bilinear ab ``[2, n, n]`` -> ``out`` ``[2, H, W]`` in ab units, rows first (``rows`` [2, H, n],
    ``scratch`` [H, W] are the caller's buffers): the numpy kernel's upsampling."""
    r0, r1, wr, c0, c1, wc = taps
    np.multiply(ab[:, r0, :], (1 - wr)[None, :, None], out=rows)
    rows += ab[:, r1, :] * wr[None, :, None]
    for c in range(2):
        np.take(rows[c], c0, axis=1, out=out[c])
        out[c] *= 1 - wc
        np.take(rows[c], c1, axis=1, out=scratch)
        scratch *= wc
        out[c] += scratch
    out *= np.float32(AB_NORM)


_M = (XYZ_TO_RGB * GAMMA_N).astype(np.float32)  # the table index is linear light x GAMMA_N
_W_SCALED = np.array([WHITE_D65[0], WHITE_D65[2]], np.float32)
