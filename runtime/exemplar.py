"""Exemplar-based colorization (Color2Embed) at full resolution: :class:`ExemplarColorizer`.

Two artifacts (``tinct export color2embed-r18 -o OUT``): the colour encoder (``ref`` -> ``emb``) and
the colorizer (``l_n``, ``emb`` -> ``ab``), each opened with any backend (:func:`runtime.backends.open_backend`).

Pipeline, sharing the full-resolution machinery of :class:`runtime.session.Session`:

1. **L at full resolution** (once per image) and the Lab-inverse caches, exactly as the iColoriT
   session (the output's L is the input's L).
2. **The model's L** (once per image): the image resized to ``size`` x ``size`` (Pillow bilinear,
   as in training), converted to L_n = (L - 50) / 100. ``size`` is a multiple of 16 (default 256,
   the official test resolution).
3. **Embedding** (once per reference): the reference resized to ``size`` x ``size``, sRGB in
   [0, 1], through the encoder. Cached by content (sha256 of the pixels, shape and ``size``) in a
   small LRU: switching back to a reference, or colorizing many images with one, costs nothing.
4. **Model** (when the image or embedding changes): ``ab_n`` [1, 2, size, size].
5. **Upsample + merge** (the iColoriT session's code): ab bilinearly to H x W, merged with the
   full-res L into sRGB uint8.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar

import numpy as np

from tinct.runtime.artifact import C2E_COLORIZER, C2E_ENCODER, ArtifactError, ArtifactMeta, read_onnx_props
from tinct.runtime.backends import open_backend
from tinct.runtime.color import L_CENT, L_NORM
from tinct.runtime.colorizer import luminance_l, post_threads
from tinct.runtime.errors import TinctError
from tinct.runtime.postprocess import ONE_SHOT, resize_rgb
from tinct.runtime.session import Session, as_image

DEFAULT_SIZE = 256
MULTIPLE = 16
CACHE_SIZE = 32


class ExemplarError(TinctError):
    pass


def _check_backend(backend, arch: str, what: str) -> None:
    meta = getattr(backend, "meta", None)
    got = getattr(meta, "architecture", None)
    if got != arch:
        raise ExemplarError(f"{what}: {getattr(backend, 'path', '?')} is a {got or 'metadata-less'} artifact, "
                            f"expected {arch}")


class ExemplarColorizer:
    """Encoder + colorizer backends and the pre/post-processing around them (see the module doc)."""

    def __init__(self, encoder_backend, colorizer_backend, size: int = DEFAULT_SIZE, cache_size: int = CACHE_SIZE):
        if size < MULTIPLE or size % MULTIPLE:
            raise ExemplarError(f"model size {size} must be a positive multiple of {MULTIPLE}")
        if encoder_backend is not None:
            _check_backend(encoder_backend, C2E_ENCODER, "encoder")
        _check_backend(colorizer_backend, C2E_COLORIZER, "colorizer")
        self.encoder = encoder_backend
        self.backend = colorizer_backend  # Session reads .backend
        self.size = int(size)
        self.max_hints = 0  # Session reads it; exemplar sessions take no hints
        self.threads = post_threads(colorizer_backend)  # Session's post-processing threads
        enc_cfg = encoder_backend.meta.config if encoder_backend is not None else None
        if enc_cfg and enc_cfg.get("emb_dim") != colorizer_backend.meta.config.get("emb_dim"):
            raise ExemplarError(f"encoder embedding size {enc_cfg.get('emb_dim')} differs from the colorizer's "
                                f"{colorizer_backend.meta.config.get('emb_dim')}")
        self.emb_dim = int(colorizer_backend.meta.config.get("emb_dim", 512))
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_size = int(cache_size)
        self.encoder_runs = 0

    # ------------------------------------------------------------------ references
    def reference_key(self, reference_rgb: np.ndarray) -> str:
        ref = as_image(reference_rgb)
        h = hashlib.sha256(f"{ref.shape}|{self.size}|".encode())
        h.update(ref.tobytes())
        return h.hexdigest()

    def embed(self, reference_rgb: np.ndarray) -> np.ndarray:
        """The reference's embedding ``[1, E]`` float32 (cached by content; a copy is returned)."""
        ref = as_image(reference_rgb)
        key = self.reference_key(ref)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key].copy()
        if self.encoder is None:
            raise ExemplarError("no encoder artifact: pass an embedding, or open the colour encoder")
        small = resize_rgb(ref, (self.size, self.size))
        if small.ndim == 2:
            small = np.repeat(small[..., None], 3, axis=-1)
        x = np.ascontiguousarray(np.moveaxis(small.astype(np.float32) * np.float32(1 / 255.0), -1, 0)[None])
        emb = np.array(self.encoder.infer({"ref": x})["emb"], dtype=np.float32)
        self.encoder_runs += 1
        if emb.shape != (1, self.emb_dim) or not np.isfinite(emb).all():
            raise ExemplarError(f"encoder returned {emb.dtype} {emb.shape} (finite: {np.isfinite(emb).all()}), "
                                f"expected a finite [1, {self.emb_dim}] embedding")
        self._cache[key] = emb
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return emb.copy()

    def check_embedding(self, embedding) -> np.ndarray:
        emb = np.asarray(embedding, dtype=np.float32)
        if emb.ndim == 1:
            emb = emb[None]
        if emb.shape != (1, self.emb_dim):
            raise ExemplarError(f"embedding has shape {emb.shape}, expected [{self.emb_dim}] or [1, {self.emb_dim}]")
        if not np.isfinite(emb).all():
            raise ExemplarError("embedding has non-finite values")
        return np.ascontiguousarray(emb)

    # ------------------------------------------------------------------ colorizing
    def session(self, image: np.ndarray, preview: int | None = None, postprocess: str = "auto") -> ExemplarSession:
        return ExemplarSession(self, image, preview=preview, postprocess=postprocess)

    def colorize(self, image: np.ndarray, reference: np.ndarray | None = None, *,
                 embedding: np.ndarray | None = None) -> np.ndarray:
        """One-shot: uint8 RGB ``[H, W, 3]`` at the input's resolution (a fresh array)."""
        s = ExemplarSession(self, image, postprocess=ONE_SHOT)
        if (reference is None) == (embedding is None):
            raise ExemplarError("pass exactly one of reference= and embedding=")
        if reference is not None:
            s.set_reference(reference)
        else:
            s.set_embedding(embedding)
        return s.colorize().copy()

    def close(self) -> None:
        for b in (self.encoder, self.backend):
            if b is not None:
                b.close()


class ExemplarSession(Session):
    """A session of a Color2Embed model: one image loaded once; references/embeddings swapped; each update
    reruns only the model and the post-processing. The returned array is reused by the next update: copy
    it to keep it."""

    kind: ClassVar[str] = "exemplar"

    def __init__(self, colorizer: ExemplarColorizer, image: np.ndarray, preview: int | None = None,
                 postprocess: str = "auto"):
        super().__init__(colorizer, image, colorizer.size, preview=preview, postprocess=postprocess)
        f32 = np.float32
        self.l_n_small = ((luminance_l(self.small) - f32(L_CENT)) / f32(L_NORM)).astype(f32)[None, None]
        self.embedding: np.ndarray | None = None
        self.reference_key: str | None = None
        self._embed_ms = 0.0

    def set_reference(self, reference_rgb: np.ndarray) -> np.ndarray:
        """Use this reference photo (embedding from the cache when seen before); returns the embedding."""
        t = time.perf_counter()
        key = self.colorizer.reference_key(reference_rgb)
        emb = self.colorizer.embed(reference_rgb)
        self._embed_ms = (time.perf_counter() - t) * 1e3
        self.timings["embed"] = self._embed_ms
        self._set(emb, key)
        return emb

    def set_embedding(self, embedding: np.ndarray) -> None:
        self._set(self.colorizer.check_embedding(embedding), None)

    def _set(self, emb: np.ndarray, key: str | None) -> None:
        if self.embedding is not None and np.array_equal(emb, self.embedding):
            self.reference_key = key
            return
        self.embedding, self.reference_key = emb, key
        self._touch()

    def _prepare(self) -> float:
        if self.embedding is None:
            raise ExemplarError("no reference: call set_reference() or set_embedding() first")
        return 0.0

    def _predict(self) -> np.ndarray:
        return self.backend.infer({"l_n": self.l_n_small, "emb": self.embedding})["ab"]

    def _timing_extras(self) -> dict[str, float]:
        return {"embed": self._embed_ms}


# ----------------------------------------------------------------------------- opening artifacts

def find_artifacts(engine) -> tuple[Path, Path]:
    """(encoder, colorizer) from a directory holding ``*-encoder.*`` + ``*-colorizer.*`` (one pair),
    or a colorizer file (its encoder: the file its metadata names, in the same directory)."""
    p = Path(engine)
    if p.is_dir():
        cols = sorted(q for q in p.iterdir() if q.suffix.lower() in (".onnx", ".xml")
                      and q.stem.endswith("-colorizer"))
        if len(cols) != 1:
            raise ExemplarError(f"{p}: expected exactly one *-colorizer.onnx (or .xml), found "
                                f"{len(cols)}{': ' + ', '.join(q.name for q in cols) if cols else ''}; "
                                "pass the colorizer file with --engine")
        p = cols[0]
    if not p.is_file():
        raise ExemplarError(f"artifact {p} does not exist")
    meta = _read_meta(p)
    if meta.architecture != C2E_COLORIZER:
        raise ExemplarError(f"{p.name} is a {meta.architecture} artifact; --reference needs a Color2Embed "
                            "colorizer (from 'tinct export color2embed-r18 -o OUT')")
    name = meta.extra.get("encoder") or (meta.extra.get("parent_extra") or {}).get("encoder")
    candidates = [p.parent / name] if name else []
    if p.stem.endswith("-colorizer"):
        candidates.append(p.with_name(p.stem[: -len("colorizer")] + "encoder" + p.suffix))
    for c in candidates:
        if c.is_file():
            return c, p
    raise ExemplarError(f"{p.name}: its colour encoder ({name or 'unknown'}) is not next to it in {p.parent}")


def _read_meta(path: Path):
    if path.suffix.lower() == ".onnx":

        try:
            props = read_onnx_props(path)
        except ArtifactError as exc:
            raise ExemplarError(str(exc)) from None
        return ArtifactMeta.from_props(props, where=path.name)

    with open_backend(path) as b:
        return b.meta


def open_exemplar(engine, backend: str | None = None, size: int = DEFAULT_SIZE, **opts) -> ExemplarColorizer:
    """An :class:`ExemplarColorizer` from a directory or colorizer file (see :func:`find_artifacts`).
    The encoder runs in FP32 with the same backend."""

    enc_path, col_path = find_artifacts(engine)
    col = open_backend(col_path, backend, **opts)
    enc_opts = {k: v for k, v in opts.items() if k != "precision"}
    try:
        enc = open_backend(enc_path, backend if enc_path.suffix == col_path.suffix else None, **enc_opts)
    except Exception:
        col.close()
        raise
    return ExemplarColorizer(enc, col, size=size)


__all__ = ["ExemplarColorizer", "ExemplarSession", "find_artifacts", "open_exemplar"]
