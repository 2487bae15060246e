"""Full-resolution colorization around a 224x224 hint model: :class:`Colorizer` and :class:`HintSession`
(the interactive session of a hint model; the machinery it shares with Color2Embed's is :mod:`runtime.session`).

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
from typing import ClassVar

import numpy as np

from tinct.runtime.backends.base import AUX_GATES_OUTPUT
from tinct.runtime.color import L_CENT, L_NORM
from tinct.runtime.hints import (
    DEFAULT_MAX_USER_HINTS,
    GRID,
    IMG_SIZE,
    MAX_HINT_SIZE,
    HintError,
    UserHint,
    encode,
    parse_user_hints,
    user_hints_to_cells,
)
from tinct.runtime.postprocess import ONE_SHOT, luminance_l
from tinct.runtime.session import ModelOutputError, Session, as_image


def post_threads(backend) -> int:
    """Post-processing threads for a backend: its own thread count (what the user gave --threads), else 1."""
    n = getattr(backend, "threads", None)
    return n if isinstance(n, int) and n > 0 else 1


def _static_gates(backend) -> np.ndarray | None:
    g = getattr(getattr(backend, "meta", None), "static_gates", None)
    return np.asarray(g, dtype=bool) if g else None


def _checked(h: UserHint, i: int) -> UserHint:
    """A :class:`UserHint` built in code is validated like one parsed from JSON."""
    rgb = h.rgb
    if not (isinstance(rgb, (tuple, list)) and len(rgb) == 3
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 255 for v in rgb)):
        raise HintError(f"hint {i}: colour {rgb!r} is not three integers 0..255")
    size = h.size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= MAX_HINT_SIZE:
        raise HintError(f"hint {i}: size {size!r} is not a whole number of cells in 1..{MAX_HINT_SIZE}")
    return UserHint(h.x, h.y, tuple(int(v) for v in rgb), int(size))


class Colorizer:
    """A backend (see :mod:`runtime.backends`) + the pre/post-processing around it."""

    def __init__(self, backend, max_hints: int = DEFAULT_MAX_USER_HINTS, threads: int | None = None):
        self.backend = backend
        self.max_hints = max_hints
        self.threads = int(threads or post_threads(backend))

    def session(self, image: np.ndarray, preview: int | None = None, postprocess: str = "auto") -> HintSession:
        return HintSession(self, image, preview=preview, postprocess=postprocess)

    def colorize(self, image: np.ndarray, hints: Iterable[UserHint] | str | list = ()) -> np.ndarray:
        """One-shot: uint8 RGB ``[H, W, 3]`` at the input's resolution (numpy post-processing unless the
        fused kernel is already loaded: for one image its import costs more than it saves)."""
        s = HintSession(self, image, postprocess=ONE_SHOT)
        s.set_hints(hints)
        return s.colorize()


class HintSession(Session):
    """A session of a hint model: hints edited (added, moved, recoloured, removed, replaced); each update
    encodes the hints into the model input ``x`` when they changed and reruns the model."""

    kind: ClassVar[str] = "hints"
    input_stage: ClassVar[str | None] = "hints"

    def __init__(self, colorizer: Colorizer, image: np.ndarray, preview: int | None = None,
                 postprocess: str = "auto"):
        super().__init__(colorizer, image, IMG_SIZE, preview=preview, postprocess=postprocess)
        t0 = time.perf_counter()
        f32 = np.float32
        # the model's 224 L: the L of the downscaled photo (see the module doc)
        self.l_n_224 = ((luminance_l(self.small) - f32(L_CENT)) / f32(L_NORM)).astype(f32)[None]
        self.x = np.zeros((1, 4, IMG_SIZE, IMG_SIZE), dtype=f32)  # reused model input
        self._hints: dict[tuple[int, int], UserHint] = {}
        self._hints_stale = True
        self.gates = _static_gates(self.backend)  # [depth, 2] bool, or None for a model without gates
        self.timings["prepare"] += (time.perf_counter() - t0) * 1e3

    # ------------------------------------------------------------------ hint editing
    @property
    def hints(self) -> list[UserHint]:
        return list(self._hints.values())

    def _check_xy(self, x: int, y: int) -> tuple[int, int]:
        for name, v, lim in (("x", x, self.width), ("y", y, self.height)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < lim:
                raise HintError(f"hint '{name}'={v!r:.40} is outside the image (0..{lim - 1})")
        return int(x), int(y)

    def _touch(self) -> None:
        self._hints_stale = True
        self._model_stale = True

    def add_hint(self, x, y=None, color=None, size: int = 1) -> UserHint:
        """``add_hint(UserHint)`` or ``add_hint(x, y, color[, size])`` (color '#rrggbb' or (r, g, b); size: the
        patch side in cells of the 112x112 hint grid)."""
        if isinstance(x, UserHint):
            hint = _checked(x, 0)
        else:
            hint = parse_user_hints([{"x": x, "y": y, "color": list(color) if isinstance(color, tuple) else color,
                                      "size": size}], self.size)[0]
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
        new_hint = UserHint(nx, ny, rgb, self._hints.pop(old).size)
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

    # ------------------------------------------------------------------ the model input
    def _prepare(self) -> float:
        if not self._hints_stale:
            return 0.0
        t = time.perf_counter()
        ab, mask = user_hints_to_cells(self.hints, self.size)
        encode(self.l_n_224, ab[None], mask[None], out=self.x)
        self._hints_stale = False
        return (time.perf_counter() - t) * 1e3

    def _predict(self) -> np.ndarray:
        """The model run: normalized ab [1, 2, 224, 224]. A dynamic A-ColViT's auxiliary output is kept in
        :attr:`gates` (which sub-layers ran)."""
        b = self.backend
        if AUX_GATES_OUTPUT not in getattr(b, "output_names", ()):
            return b.run_x(self.x)
        out = b.infer({b.input_names[0]: self.x})
        self.gates = np.asarray(out[AUX_GATES_OUTPUT])[0].astype(bool)  # [depth, 2]: (attention, MLP) ran
        return out[next(n for n in b.output_names if n != AUX_GATES_OUTPUT)]


def buffer_ids(session: Session) -> dict[str, int]:
    """Data pointers of the per-update buffers (tests check they are reused)."""
    out = {n: getattr(session, n).__array_interface__["data"][0] for n in ("x", "ab_model") if hasattr(session, n)}
    for name, c in session._canvases.items():
        out[f"{name}.rgb"] = c.rgb.__array_interface__["data"][0]
        for k, v in (getattr(c, "_planes", None) or {}).items():
            out[f"{name}.{k}"] = v.__array_interface__["data"][0]
    return out


__all__ = ["GRID", "Colorizer", "HintSession", "ModelOutputError", "Session", "as_image", "buffer_ids", "luminance_l"]
