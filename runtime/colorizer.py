"""Full-resolution colorization around a 224x224 model: :class:`Colorizer` and the interactive :class:`Session`.

Pipeline (any-size RGB ``[H, W, 3]`` uint8 or grayscale ``[H, W]`` uint8 + user hints in the
original image's pixel coordinates):

1. **L at full resolution** (once per image): CIE L of the input, computed from a 256-entry sRGB
   linearization table (Y = 0.212671 R + 0.715160 G + 0.072169 B in linear light, D65 Yn = 1),
   the L of :func:`runtime.color.rgb_to_lab` (to 2e-5). It is kept as is: the output's L is the input's.
   Lab's inverse depends on L only through fy = (L + 16) / 116 and Y = f^-1(fy): both are cached,
   and so is Y's contribution to linear R, G, B (three planes).
2. **The model's 224 L** (once per image): the RGB (or gray) image is resized to 224x224 with
   Pillow's bilinear filter (area-aware when shrinking, the filter the training/validation data
   used) and converted to L there. This is the L of a downscaled photo, as in training, not a
   downscale of the full-res L (L is non-linear in RGB; the two differ slightly).
3. **Hints** (on change): :func:`runtime.hints.user_hints_to_cells` + :func:`runtime.hints.encode`
   into one preallocated ``x [1, 4, 224, 224]``.
4. **Model** (on change): ``backend.run_x(x)`` -> normalized ab ``[1, 2, 224, 224]``.
5. **Upsample** (on change): ab bilinearly to ``H x W`` (half-pixel centres, as
   ``F.interpolate(..., align_corners=False)``) with precomputed indices/weights into reused planes.
6. **Merge** (on change): full-res L + ab -> sRGB uint8 with the official Lab->RGB constants; the
   final gamma + clip + round is a 65536-entry table over linear light (differs from the exact
   ``to_uint8(lab_to_rgb(...))`` by at most one level on a small fraction of pixels, see tests).

Every per-update buffer is allocated once per image; :attr:`Session.timings` holds per-stage ms.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

import numpy as np
from PIL import Image

from tinct.runtime.color import AB_NORM, L_CENT, L_NORM, RGB_TO_XYZ, WHITE_D65, XYZ_TO_RGB, srgb_to_linear
from tinct.runtime.hints import (
    DEFAULT_MAX_USER_HINTS,
    GRID,
    IMG_SIZE,
    HintError,
    UserHint,
    encode,
    parse_user_hints,
    user_hints_to_cells,
)

_LIN_LUT = srgb_to_linear(np.arange(256, dtype=np.uint8)[:, None].repeat(3, 1))[:, 0].astype(np.float32)
_Y_WEIGHTS = (RGB_TO_XYZ[1] / WHITE_D65[1]).astype(np.float32)
_F_THRESH = np.float32(0.2068966)
_EPS = np.float32(0.008856)
GAMMA_LUT_BITS = 16
_GAMMA_N = 1 << GAMMA_LUT_BITS


def _gamma_lut() -> np.ndarray:
    lin = (np.arange(_GAMMA_N, dtype=np.float64) + 0.5) / _GAMMA_N
    srgb = np.where(lin > 0.0031308, 1.055 * lin ** (1 / 2.4) - 0.055, 12.92 * lin)
    lut = np.clip(np.rint(srgb * 255.0), 0, 255).astype(np.uint8)
    lut[0] = 0
    return lut


_LIN_TO_U8 = _gamma_lut()


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


def _finv_into(f: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """out = f^3 where f > 6/29 else (f - 16/116) / 7.787 (official lab2rgb), no allocation."""
    np.multiply(f, f, out=out)
    out *= f
    np.subtract(f, np.float32(16.0 / 116.0), out=scratch)
    scratch *= np.float32(1.0 / 7.787)
    np.copyto(out, scratch, where=f <= _F_THRESH)
    return out


def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def _as_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise ValueError(f"expected [H, W, 3] RGB or [H, W] gray, got shape {image.shape}")
    return np.ascontiguousarray(image)


class Colorizer:
    """A backend (see :mod:`runtime.backends`) + the pre/post-processing around it."""

    def __init__(self, backend, max_hints: int = DEFAULT_MAX_USER_HINTS):
        self.backend = backend
        self.max_hints = max_hints

    def session(self, image: np.ndarray) -> Session:
        return Session(self, image)

    def colorize(self, image: np.ndarray, hints: Iterable[UserHint] | str | list = ()) -> np.ndarray:
        """One-shot: uint8 RGB ``[H, W, 3]`` at the input's resolution."""
        s = Session(self, image)
        s.set_hints(hints)
        return s.colorize()


class Session:
    """One image loaded once; hints edited; :meth:`colorize` recomputes only what changed.

    The returned array is the session's output buffer, overwritten by the next update: copy it to keep it.
    """

    def __init__(self, colorizer: Colorizer, image: np.ndarray):
        t0 = time.perf_counter()
        self.colorizer = colorizer
        self.backend = colorizer.backend
        image = _as_image(image)
        self.height, self.width = image.shape[:2]
        h, w = self.height, self.width
        f32 = np.float32
        # -- per image, once: full-res L and what the Lab inverse needs of it
        self.l_full = luminance_l(image)
        self._fy = (self.l_full + f32(16.0)) / f32(116.0)
        y = np.empty_like(self._fy)
        _finv_into(self._fy, y, np.empty_like(self._fy))
        y *= WHITE_D65[1]
        self._y_rgb = np.empty((3, h, w), dtype=f32)  # XYZ_TO_RGB[:, 1] * Y
        for c in range(3):
            np.multiply(y, XYZ_TO_RGB[c, 1], out=self._y_rgb[c])
        del y
        # -- the model's 224 L (see module doc)
        mode = "L" if image.ndim == 2 else "RGB"
        small = np.asarray(Image.fromarray(image, mode).resize((IMG_SIZE, IMG_SIZE), Image.BILINEAR))
        self.l_n_224 = ((luminance_l(small) - f32(L_CENT)) / f32(L_NORM)).astype(f32)[None]
        # -- reused buffers
        self.x = np.zeros((1, 4, IMG_SIZE, IMG_SIZE), dtype=f32)
        self.ab_224 = np.zeros((1, 2, IMG_SIZE, IMG_SIZE), dtype=f32)
        self.ab_full = np.zeros((2, h, w), dtype=f32)  # normalized ab, upsampled
        self._rows = _bilinear_taps(IMG_SIZE, h)
        self._cols = _bilinear_taps(IMG_SIZE, w)
        self._ab_rows = np.empty((2, h, IMG_SIZE), dtype=f32)
        self._t1 = np.empty((h, w), dtype=f32)
        self._t2 = np.empty((h, w), dtype=f32)
        self._xp = np.empty((h, w), dtype=f32)
        self._zp = np.empty((h, w), dtype=f32)
        self._idx = np.empty((h, w), dtype=np.int32)
        self.rgb = np.empty((h, w, 3), dtype=np.uint8)
        for buf in (self.ab_full, self._ab_rows, self._t1, self._t2, self._xp, self._zp, self._idx, self.rgb):
            buf.fill(0)  # fault the pages in now, not in the first interactive update
        self._hints: dict[tuple[int, int], UserHint] = {}
        self._stale = {"hints": True, "model": True, "post": True}
        self.runs = 0
        self.timings: dict[str, float] = {"prepare": (time.perf_counter() - t0) * 1e3}

    # ------------------------------------------------------------------ hint editing
    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def hints(self) -> list[UserHint]:
        return list(self._hints.values())

    def _check_xy(self, x: int, y: int) -> tuple[int, int]:
        for name, v, lim in (("x", x, self.width), ("y", y, self.height)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < lim:
                raise HintError(f"hint '{name}'={v!r} is outside the image (0..{lim - 1})")
        return int(x), int(y)

    def _touch(self) -> None:
        self._stale.update(hints=True, model=True, post=True)

    def add_hint(self, x, y=None, color=None) -> UserHint:
        """``add_hint(UserHint)`` or ``add_hint(x, y, color)`` (color '#rrggbb' or (r, g, b))."""
        if isinstance(x, UserHint):
            hint = x
        else:
            hint = parse_user_hints([{"x": x, "y": y, "color": list(color) if isinstance(color, tuple) else color}],
                                    self.size)[0]
        key = self._check_xy(hint.x, hint.y)
        if key in self._hints:
            raise HintError(f"a hint already exists at x={key[0]}, y={key[1]}")
        if len(self._hints) >= self.colorizer.max_hints:
            raise HintError(f"too many hints: more than {self.colorizer.max_hints}")
        self._hints[key] = hint
        self._touch()
        return hint

    def remove_hint(self, x: int, y: int) -> UserHint:
        try:
            hint = self._hints.pop((x, y))
        except KeyError:
            raise HintError(f"no hint at x={x}, y={y}") from None
        self._touch()
        return hint

    def move_hint(self, old: tuple[int, int], new: tuple[int, int], color=None) -> UserHint:
        """Move the hint at ``old`` to ``new`` (and optionally recolour it)."""
        if tuple(old) not in self._hints:
            raise HintError(f"no hint at x={old[0]}, y={old[1]}")
        nx, ny = self._check_xy(*new)
        if (nx, ny) != tuple(old) and (nx, ny) in self._hints:
            raise HintError(f"a hint already exists at x={nx}, y={ny}")
        hint = self._hints.pop(tuple(old))
        rgb = hint.rgb if color is None else parse_user_hints([{"x": nx, "y": ny, "color": list(color)
                                                               if isinstance(color, tuple) else color}],
                                                             self.size)[0].rgb
        new_hint = UserHint(nx, ny, rgb)
        self._hints[(nx, ny)] = new_hint
        self._touch()
        return new_hint

    def set_hints(self, hints: Iterable[UserHint] | str | bytes | list | dict) -> None:
        """Replace all hints: a list of :class:`UserHint`, or JSON text / decoded JSON (validated)."""
        if isinstance(hints, (str, bytes, bytearray, dict)):
            parsed = parse_user_hints(hints, self.size, self.colorizer.max_hints)
        else:
            items = list(hints)
            if items and not all(isinstance(h, UserHint) for h in items):
                parsed = parse_user_hints(items, self.size, self.colorizer.max_hints)
            else:
                parsed = items
                if len(parsed) > self.colorizer.max_hints:
                    raise HintError(f"too many hints: {len(parsed)} > {self.colorizer.max_hints}")
        new: dict[tuple[int, int], UserHint] = {}
        for h in parsed:
            key = self._check_xy(h.x, h.y)
            if key in new:
                raise HintError(f"duplicate position x={key[0]}, y={key[1]}")
            new[key] = h
        self._hints = new
        self._touch()

    def hints_json(self) -> str:
        return json.dumps([h.to_json() for h in self._hints.values()])

    # ------------------------------------------------------------------ the pipeline
    def _predict(self) -> np.ndarray:
        """The model run: normalized ab at the model's resolution (subclasses feed other inputs)."""
        return self.backend.run_x(self.x)

    def colorize(self) -> np.ndarray:
        t_all = time.perf_counter()
        timings = {"hints": 0.0, "model": 0.0, "upsample": 0.0, "merge": 0.0}
        if self._stale["hints"]:
            t = time.perf_counter()
            ab, mask = user_hints_to_cells(self.hints, self.size)
            encode(self.l_n_224, ab[None], mask[None], out=self.x)
            self._stale["hints"] = False
            timings["hints"] = (time.perf_counter() - t) * 1e3
        if self._stale["model"]:
            t = time.perf_counter()
            out = self._predict()
            if out.shape != self.ab_224.shape:
                raise RuntimeError(f"backend returned shape {out.shape}, expected {self.ab_224.shape}")
            np.copyto(self.ab_224, out, casting="same_kind")
            self.runs += 1
            self._stale["model"] = False
            timings["model"] = (time.perf_counter() - t) * 1e3
        if self._stale["post"]:
            t = time.perf_counter()
            self._upsample()
            t2 = time.perf_counter()
            timings["upsample"] = (t2 - t) * 1e3
            self._merge()
            timings["merge"] = (time.perf_counter() - t2) * 1e3
            self._stale["post"] = False
        timings["total"] = (time.perf_counter() - t_all) * 1e3
        self.timings = {"prepare": self.timings.get("prepare", 0.0), **timings}
        return self.rgb

    def _upsample(self) -> None:
        r0, r1, wr = self._rows
        c0, c1, wc = self._cols
        ab = self.ab_224[0]  # [2, 224, 224]
        # rows: [2, H, 224] (small)
        np.multiply(ab[:, r0, :], (1 - wr)[None, :, None], out=self._ab_rows)
        self._ab_rows += ab[:, r1, :] * wr[None, :, None]
        # columns: [2, H, W] into the reused planes
        for c in range(2):
            dst = self.ab_full[c]
            np.take(self._ab_rows[c], c0, axis=1, out=dst)
            dst *= 1 - wc
            np.take(self._ab_rows[c], c1, axis=1, out=self._t1)
            self._t1 *= wc
            dst += self._t1
        self.ab_full *= np.float32(AB_NORM)  # -> ab units

    def _merge(self) -> None:
        f32 = np.float32
        a, b = self.ab_full
        # fx = fy + a/500 -> X ; fz = max(fy - b/200, 0) -> Z   (official lab2rgb)
        np.multiply(a, f32(1 / 500.0), out=self._t2)
        self._t2 += self._fy
        _finv_into(self._t2, self._xp, self._t1)
        self._xp *= WHITE_D65[0]
        np.multiply(b, f32(-1 / 200.0), out=self._t2)
        self._t2 += self._fy
        np.maximum(self._t2, 0, out=self._t2)
        _finv_into(self._t2, self._zp, self._t1)
        self._zp *= WHITE_D65[2]
        scale = f32(_GAMMA_N)
        for c in range(3):
            lin = self._t1
            np.multiply(self._xp, XYZ_TO_RGB[c, 0], out=lin)
            lin += self._y_rgb[c]
            np.multiply(self._zp, XYZ_TO_RGB[c, 2], out=self._t2)
            lin += self._t2
            lin *= scale
            np.clip(lin, 0, _GAMMA_N - 1, out=lin)
            np.copyto(self._idx, lin, casting="unsafe")  # floor for non-negatives
            np.take(_LIN_TO_U8, self._idx, out=self.rgb[..., c], mode="clip")

    # ------------------------------------------------------------------ for tests / tools
    def lab(self) -> np.ndarray:
        """The merged full-resolution Lab (float32 ``[H, W, 3]``) of the last update."""
        return np.stack([self.l_full, self.ab_full[0], self.ab_full[1]], axis=-1)


def buffer_ids(session: Session) -> dict[str, int]:
    """Data pointers of the per-update buffers (tests check they are reused)."""
    names = ("x", "ab_224", "ab_full", "_ab_rows", "_t1", "_t2", "_xp", "_zp", "_idx", "rgb")
    return {n: getattr(session, n).__array_interface__["data"][0] for n in names}


__all__ = ["GRID", "Colorizer", "Session", "buffer_ids", "luminance_l"]
