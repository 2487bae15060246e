"""The interactive session both model kinds share: one photo loaded once, results rendered at display
size (:meth:`Session.preview`) and at full resolution (:meth:`Session.colorize`) from one model run.

:class:`Session` holds what the kinds have in common: the photo, its canvases (the output's L is the
photo's L; :class:`runtime.postprocess.Canvas`), the model's output buffer, the update pipeline (inputs
-> model -> post-processing, each stage run only when what it depends on changed) and the per-stage
timings. A kind provides its inputs and its model call: :class:`runtime.colorizer.HintSession` (user
hints) and :class:`runtime.exemplar.ExemplarSession` (a reference photo).
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np

from tinct.runtime.color import AB_NORM
from tinct.runtime.errors import TinctError
from tinct.runtime.postprocess import Canvas, fit_size, resize_rgb

HUE_MIN_CHROMA = 2.0  # ab units: a mean prediction this far from gray has a direction worth offering
SATURATED_CHROMA = (20.0, 35.0, 50.0)  # the chroma at which that direction is offered


class ModelOutputError(TinctError):
    """The backend returned values that are not finite."""


def as_image(image: np.ndarray) -> np.ndarray:
    """A uint8 RGB ``[H, W, 3]`` or gray ``[H, W]`` photo (an alpha channel dropped), C-contiguous."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise ValueError(f"expected [H, W, 3] RGB or [H, W] gray, got shape {image.shape}")
    return np.ascontiguousarray(image)


class Session:
    """One image loaded once; :meth:`colorize` / :meth:`preview` recompute only what changed.

    The returned array is the session's output buffer, overwritten by the next update: copy it to keep it.
    Subclasses set :attr:`kind` and implement :meth:`_prepare` (bring the model input up to date; returns
    the ms it took) and :meth:`_predict` (the model call: normalized ab shaped like :attr:`ab_model`).
    """

    kind: ClassVar[str] = "?"
    input_stage: ClassVar[str | None] = None  # the timings key of :meth:`_prepare` (None: not reported)

    def __init__(self, owner, image: np.ndarray, model_size: int, preview: int | None = None,
                 postprocess: str = "auto"):
        t0 = time.perf_counter()
        self.colorizer = owner  # the Colorizer / ExemplarColorizer that opened it: backend, threads
        self.backend = owner.backend
        image = as_image(image)
        self.height, self.width = image.shape[:2]
        self._image = image
        self._postprocess = postprocess
        if preview is not None and not 16 <= int(preview) <= 16384:
            raise ValueError(f"preview size {preview}: use 16..16384 pixels (the longer side)")
        self.preview_size = fit_size(self.width, self.height, int(preview)) if preview else None
        self.small = resize_rgb(image, (model_size, model_size))  # the model's view of the photo
        self.ab_model = np.zeros((1, 2, model_size, model_size), dtype=np.float32)
        self._canvases: dict[str, Canvas] = {}
        self._rendered: dict[str, int] = {}  # canvas -> the model run it shows
        self._canvas("preview" if self.preview_size else "full")
        self._model_stale = True
        self.runs = 0
        self.gates: np.ndarray | None = None  # [depth, 2] bool for a gated model (which sub-layers ran)
        self.timings: dict[str, float] = {"prepare": (time.perf_counter() - t0) * 1e3}

    # ------------------------------------------------------------------ what a kind provides
    def _prepare(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _touch(self) -> None:
        """The model input changed: the next update reruns the model."""
        self._model_stale = True

    # ------------------------------------------------------------------ canvases
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
    def l_preview(self) -> np.ndarray | None:
        """CIE L of the photo at the preview size (float32 ``[h, w]``), None without a preview."""
        return self._canvas("preview").l if self.preview_size else None

    @property
    def ab_full(self) -> np.ndarray:
        """The last update's ab upsampled to full resolution, in ab units, float32 ``[2, H, W]``."""
        return self._canvas("full").ab_full(self.ab_model)

    @property
    def kernel(self) -> str:
        """The post-processing kernel in use (numba or numpy)."""
        return next(iter(self._canvases.values())).kernel

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    # ------------------------------------------------------------------ the pipeline
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
        prepared = self._prepare()
        timings = {**({self.input_stage: prepared} if self.input_stage else {}), "model": 0.0, "post": 0.0}
        if self._model_stale:
            t = time.perf_counter()
            out = self._predict()
            if out.shape != self.ab_model.shape:
                raise RuntimeError(f"backend returned shape {out.shape}, expected {self.ab_model.shape}")
            bad = out.size - int(np.count_nonzero(np.isfinite(out)))
            if bad:  # a NaN becomes black: refuse instead of writing a wrong image (issue 15)
                raise ModelOutputError(f"the model produced {bad} NaN/inf values for this input: the artifact "
                                       "does not work here (check it with 'tinct doctor ARTIFACT')")
            np.copyto(self.ab_model, out, casting="same_kind")
            self.runs += 1
            self._model_stale = False
            timings["model"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        canvas = self._canvas(which)
        if self._rendered.get(which) != self.runs:
            canvas.render(self.ab_model[0], threads=self.colorizer.threads)
            self._rendered[which] = self.runs
        timings["post"] = (time.perf_counter() - t) * 1e3
        timings["total"] = (time.perf_counter() - t_all) * 1e3
        self.timings = {"prepare": self.timings.get("prepare", 0.0), **timings, **self._timing_extras()}
        return canvas.rgb

    def _timing_extras(self) -> dict[str, float]:
        """Timings a kind keeps across updates (the encoder's, for a reference)."""
        return {}

    # ------------------------------------------------------------------ colours at a point
    def suggested_ab(self, x: int, y: int, k: int = 5, min_distance: float = 12.0) -> np.ndarray:
        """Up to ``k`` distinct ab values (ab units, float32 ``[n, 2]``, most frequent first) that the last
        update predicts around pixel ``(x, y)`` of the photo: its output on the model's grid, in windows 7, 15,
        31 and 63 cells wide around the point until ``k`` are found, the values binned ``min_distance / 2`` wide
        and kept when at least ``min_distance`` from those kept. Runs the model first if it has not run.

        A regression-trained model predicts muted colours where it is unsure (on a gray photo with no hints the
        shipped models' chroma is under 8): when fewer than ``k`` distinct values are found and the mean
        prediction in the 15-cell window has a hue (chroma >= :data:`HUE_MIN_CHROMA`), that hue is offered at
        chroma 20, 35 and 50 after them (the model's direction, not its shrunken amount); below that no hue is
        offered, since the direction of a near-zero mean is noise."""
        if self.runs == 0:
            self.preview()
        n = self.ab_model.shape[-1]
        cx = min(n - 1, int((x + 0.5) * n / self.width))
        cy = min(n - 1, int((y + 0.5) * n / self.height))
        kept: list[np.ndarray] = []
        for half in (3, 7, 15, 31):
            win = self.ab_model[0, :, max(0, cy - half):cy + half + 1, max(0, cx - half):cx + half + 1]
            ab = win.reshape(2, -1).T * np.float32(AB_NORM)
            bins, inverse, counts = np.unique(np.round(ab / (min_distance / 2)), axis=0, return_inverse=True,
                                              return_counts=True)
            for b in np.argsort(-counts, kind="stable"):
                mean = ab[inverse.reshape(-1) == b].mean(axis=0)
                if all(np.hypot(*(mean - m)) >= min_distance for m in kept):
                    kept.append(mean)
                if len(kept) == k:
                    return np.array(kept, dtype=np.float32)
        win = self.ab_model[0, :, max(0, cy - 7):cy + 8, max(0, cx - 7):cx + 8]
        mean = win.reshape(2, -1).mean(axis=1) * np.float32(AB_NORM)
        chroma = float(np.hypot(*mean))
        if chroma >= HUE_MIN_CHROMA:
            for level in SATURATED_CHROMA:
                cand = mean * np.float32(level / chroma)
                if all(np.hypot(*(cand - m)) >= min_distance for m in kept):
                    kept.append(cand)
                if len(kept) == k:
                    break
        return np.array(kept, dtype=np.float32).reshape(-1, 2)

    # ------------------------------------------------------------------ for tests / tools
    def lab(self) -> np.ndarray:
        """The merged full-resolution Lab (float32 ``[H, W, 3]``) of the last update."""
        ab = self.ab_full
        return np.stack([self.l_full, ab[0], ab[1]], axis=-1)
