"""Full-resolution colorization around a 224x224 model: :class:`Colorizer` and the interactive :class:`Session`.

Pipeline (any-size RGB ``[H, W, 3]`` uint8 or grayscale ``[H, W]`` uint8 + user hints in the
original image's pixel coordinates):

1. **The model's 224 L** (once per image): the RGB (or gray) image is resized to 224x224 with
   Pillow's bilinear filter (area-aware when shrinking, the filter the training/validation data
   used) and converted to L there. This is the L of a downscaled photo, as in training, not a
   downscale of the full-res L (L is non-linear in RGB; the two differ slightly).
2. **Canvases** (once per image and output size): :class:`runtime.postprocess.Canvas` keeps the L of
   the photo at that size (the output's L is the input's) and what Lab's inverse needs of it. The
   full-resolution canvas serves :meth:`Session.colorize` (export, the CLI); a display-size one
   (``preview=1280``: the longer side at most 1280 px) serves :meth:`Session.preview` for interactive
   updates. With ``preview`` set, the full canvas is built only when first asked for.
3. **Hints** (on change): :func:`runtime.hints.user_hints_to_cells` + :func:`runtime.hints.encode`
   into one preallocated ``x [1, 4, 224, 224]``.
4. **Model** (on change): ``backend.run_x(x)`` -> normalized ab ``[1, 2, 224, 224]``, once for all canvases.
5. **Post-processing** (per canvas, when the model output changed): bilinear upsampling of ab + Lab ->
   sRGB uint8 into the canvas' buffer (:meth:`runtime.postprocess.Canvas.render`: one fused pass with
   numba, else numpy).

:attr:`Session.timings` holds per-stage ms of the last update (``post`` = upsampling + Lab -> RGB).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

import numpy as np
from tinct.runtime.backends.base import AUX_GATES_OUTPUT
from tinct.runtime.color import L_CENT, L_NORM
from tinct.runtime.errors import TinctError
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
from tinct.runtime.postprocess import ONE_SHOT, Canvas, fit_size, luminance_l, resize_rgb


def post_threads(backend) -> int:
    """Post-processing threads for a backend: its own thread count (what the user gave --threads), else 1."""
    n = getattr(backend, "threads", None)
    return n if isinstance(n, int) and n > 0 else 1


def _static_gates(backend) -> np.ndarray | None:
    g = getattr(getattr(backend, "meta", None), "static_gates", None)
    return np.asarray(g, dtype=bool) if g else None


class ModelOutputError(TinctError):
    """The backend returned values that are not finite."""


def _checked(h: UserHint, i: int) -> UserHint:
    """A :class:`UserHint` built in code is validated like one parsed from JSON."""
    rgb = h.rgb
    if not (isinstance(rgb, (tuple, list)) and len(rgb) == 3
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 255 for v in rgb)):
        raise HintError(f"hint {i}: colour {rgb!r} is not three integers 0..255")
    return UserHint(h.x, h.y, tuple(int(v) for v in rgb))


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

    def __init__(self, backend, max_hints: int = DEFAULT_MAX_USER_HINTS, threads: int | None = None):
        self.backend = backend
        self.max_hints = max_hints
        self.threads = int(threads or post_threads(backend))

    def session(self, image: np.ndarray, preview: int | None = None, postprocess: str = "auto") -> Session:
        return Session(self, image, preview=preview, postprocess=postprocess)

    def colorize(self, image: np.ndarray, hints: Iterable[UserHint] | str | list = ()) -> np.ndarray:
        """One-shot: uint8 RGB ``[H, W, 3]`` at the input's resolution (numpy post-processing unless the
        fused kernel is already loaded: for one image its import costs more than it saves)."""
        s = Session(self, image, postprocess=ONE_SHOT)
        s.set_hints(hints)
        return s.colorize()


class Session:
    """One image loaded once; hints edited; :meth:`colorize` recomputes only what changed.

    The returned array is the session's output buffer, overwritten by the next update: copy it to keep it.
    """

    def __init__(self, colorizer: Colorizer, image: np.ndarray, preview: int | None = None,
                 postprocess: str = "auto"):
        t0 = time.perf_counter()
        self.colorizer = colorizer
        self.backend = colorizer.backend
        image = _as_image(image)
        self.height, self.width = image.shape[:2]
        f32 = np.float32
        self._image = image
        self._postprocess = postprocess
        if preview is not None and not 16 <= int(preview) <= 16384:
            raise ValueError(f"preview size {preview}: use 16..16384 pixels (the longer side)")
        self.preview_size = fit_size(self.width, self.height, int(preview)) if preview else None
        # -- the model's 224 L (see module doc)
        small = resize_rgb(image, (IMG_SIZE, IMG_SIZE))
        self.l_n_224 = ((luminance_l(small) - f32(L_CENT)) / f32(L_NORM)).astype(f32)[None]
        # -- reused buffers
        self.x = np.zeros((1, 4, IMG_SIZE, IMG_SIZE), dtype=f32)
        self.ab_224 = np.zeros((1, 2, IMG_SIZE, IMG_SIZE), dtype=f32)
        self._canvases: dict[str, Canvas] = {}
        self._rendered: dict[str, int] = {}  # canvas -> the model run it shows
        self._canvas("preview" if self.preview_size else "full")
        self._hints: dict[tuple[int, int], UserHint] = {}
        self._stale = {"hints": True, "model": True}
        self.runs = 0
        self.gates = _static_gates(self.backend)  # [depth, 2] bool, or None for a model without gates
        self.timings: dict[str, float] = {"prepare": (time.perf_counter() - t0) * 1e3}

    def _canvas(self, which: str) -> Canvas:
        c = self._canvases.get(which)
        if c is None:
            if which == "full":
                c = Canvas(self._image, self._postprocess)
                self._image = None  # the full canvas holds all a later update needs (the preview is built first)
            else:
                c = Canvas(resize_rgb(self._image, self.preview_size), self._postprocess, rgba=True)
            self._canvases[which] = c
        return c

    @property
    def l_full(self) -> np.ndarray:
        """CIE L of the photo at full resolution, float32 ``[H, W]``."""
        return self._canvas("full").l

    @property
    def ab_full(self) -> np.ndarray:
        """The last update's ab upsampled to full resolution, in ab units, float32 ``[2, H, W]``."""
        return self._canvas("full").ab_full(self.ab_224)

    @property
    def kernel(self) -> str:
        """The post-processing kernel in use (numba or numpy)."""
        return next(iter(self._canvases.values())).kernel

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
                raise HintError(f"hint '{name}'={v!r:.40} is outside the image (0..{lim - 1})")
        return int(x), int(y)

    def _touch(self) -> None:
        self._stale.update(hints=True, model=True)

    def add_hint(self, x, y=None, color=None) -> UserHint:
        """``add_hint(UserHint)`` or ``add_hint(x, y, color)`` (color '#rrggbb' or (r, g, b))."""
        if isinstance(x, UserHint):
            hint = _checked(x, 0)
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

    def _pos(self, pos, what: str) -> tuple[int, int]:
        """An (x, y) pair inside the image, or a HintError naming ``what``."""
        if not (isinstance(pos, (tuple, list)) and len(pos) == 2):
            raise HintError(f"{what} must be an (x, y) pair, got {pos!r:.60}")
        return self._check_xy(*pos)

    def remove_hint(self, x: int, y: int) -> UserHint:
        key = self._pos((x, y), "the hint to remove")
        try:
            hint = self._hints.pop(key)
        except KeyError:
            raise HintError(f"no hint at x={key[0]}, y={key[1]}") from None
        self._touch()
        return hint

    def move_hint(self, old: tuple[int, int], new: tuple[int, int], color=None) -> UserHint:
        """Move the hint at ``old`` to ``new`` (and optionally recolour it)."""
        old = self._pos(old, "the hint to move")
        if old not in self._hints:
            raise HintError(f"no hint at x={old[0]}, y={old[1]}")
        nx, ny = self._pos(new, "the new position")
        if (nx, ny) != old and (nx, ny) in self._hints:
            raise HintError(f"a hint already exists at x={nx}, y={ny}")
        rgb = self._hints[old].rgb if color is None else parse_user_hints(
            [{"x": nx, "y": ny, "color": list(color) if isinstance(color, tuple) else color}], self.size)[0].rgb
        del self._hints[old]
        new_hint = UserHint(nx, ny, rgb)
        self._hints[(nx, ny)] = new_hint
        self._touch()
        return new_hint

    def set_hints(self, hints: Iterable[UserHint] | str | bytes | list | dict) -> None:
        """Replace all hints: a list of :class:`UserHint`, or JSON text / decoded JSON (validated)."""
        if isinstance(hints, (str, bytes, bytearray, dict)):
            parsed = parse_user_hints(hints, self.size, self.colorizer.max_hints)
        else:
            try:
                items = list(hints)
            except TypeError:
                raise HintError(f"hints must be a list (or JSON text), not {type(hints).__name__}") from None
            if items and not all(isinstance(h, UserHint) for h in items):
                parsed = parse_user_hints(items, self.size, self.colorizer.max_hints)
            else:
                parsed = [_checked(h, i) for i, h in enumerate(items)]
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
        """The model run: normalized ab at the model's resolution (subclasses feed other inputs).
        A dynamic A-ColViT's auxiliary output is kept in :attr:`gates` (which sub-layers ran)."""
        b = self.backend
        if AUX_GATES_OUTPUT not in getattr(b, "output_names", ()):
            return b.run_x(self.x)
        out = b.infer({b.input_names[0]: self.x})
        self.gates = np.asarray(out[AUX_GATES_OUTPUT])[0].astype(bool)  # [depth, 2]: (attention, MLP) ran
        return out[next(n for n in b.output_names if n != AUX_GATES_OUTPUT)]

    def colorize(self) -> np.ndarray:
        """The full-resolution result (uint8 ``[H, W, 3]``, the session's buffer: copy it to keep it)."""
        return self._update("full")

    def preview(self) -> np.ndarray:
        """The result at the display size given as ``preview`` (the full result when none was given)."""
        return self._update("preview" if self.preview_size else "full")

    def preview_rgba(self) -> np.ndarray:
        """:meth:`preview` as the display buffer it is rendered into: uint8 ``[h, w, 4]``, alpha 255, what a
        browser's ``ImageData`` takes without a conversion (needs a ``preview`` size)."""
        if not self.preview_size:
            raise ValueError("preview_rgba needs a session opened with a preview size")
        self._update("preview")
        return self._canvases["preview"].buffer

    def _update(self, which: str) -> np.ndarray:
        t_all = time.perf_counter()
        timings = {"hints": 0.0, "model": 0.0, "post": 0.0}
        if self._stale.get("hints"):
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
            bad = out.size - int(np.count_nonzero(np.isfinite(out)))
            if bad:  # a NaN becomes black: refuse instead of writing a wrong image (issue 15)
                self._stale["model"] = True
                raise ModelOutputError(f"the model produced {bad} NaN/inf values for this input: the artifact "
                                       "does not work here (check it with 'tinct doctor ARTIFACT')")
            np.copyto(self.ab_224, out, casting="same_kind")
            self.runs += 1
            self._stale["model"] = False
            timings["model"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        canvas = self._canvas(which)
        if self._rendered.get(which) != self.runs:
            canvas.render(self.ab_224[0], threads=self.colorizer.threads)
            self._rendered[which] = self.runs
        timings["post"] = (time.perf_counter() - t) * 1e3
        timings["total"] = (time.perf_counter() - t_all) * 1e3
        self.timings = {"prepare": self.timings.get("prepare", 0.0), **timings}
        return canvas.rgb

    # ------------------------------------------------------------------ for tests / tools
    def lab(self) -> np.ndarray:
        """The merged full-resolution Lab (float32 ``[H, W, 3]``) of the last update."""
        ab = self.ab_full
        return np.stack([self.l_full, ab[0], ab[1]], axis=-1)


def buffer_ids(session: Session) -> dict[str, int]:
    """Data pointers of the per-update buffers (tests check they are reused)."""
    out = {n: getattr(session, n).__array_interface__["data"][0] for n in ("x", "ab_224")}
    for name, c in session._canvases.items():
        out[f"{name}.rgb"] = c.rgb.__array_interface__["data"][0]
        for k, v in (getattr(c, "_planes", None) or {}).items():
            out[f"{name}.{k}"] = v.__array_interface__["data"][0]
    return out


__all__ = ["GRID", "Colorizer", "Session", "buffer_ids", "luminance_l"]
