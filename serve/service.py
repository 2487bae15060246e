"""What ``tinct serve`` does, without HTTP: the session service the routes call.

:class:`SessionService` opens sessions on the server's engines, applies updates as transactions (an update
that fails leaves the session as it was), renders previews in the formats the page and the API use, and
colorizes one-shot requests. Hint sessions and exemplar sessions are the two kinds of
:class:`tinct.runtime.session.Session`; the service asks a session its ``kind``, never what methods it has.

Work is bounded: every decode, one-shot colorization, full-resolution render and reference photo is charged to
the store's memory budget (:meth:`SessionStore.hold`) from the image's header before it starts, at the bytes per
pixel measured for it (:data:`BYTES_PER_PIXEL`); decodes run at most :attr:`Limits.decoders` at a time. An update
validates everything (sequence number, engine, hints, reference) before it changes the session, and a failed
one leaves the session as it was: its engine, hints, reference and sequence number.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tinct.runtime.color import in_gamut as in_gamut_lab
from tinct.runtime.color import lab_to_rgb, rgb_to_lab, snap_ab, snap_rgb, to_uint8
from tinct.runtime.errors import InputError, TinctError, TooLargeError
from tinct.runtime.exemplar import ExemplarError
from tinct.runtime.hints import decode_user_hints, parse_user_hints
from tinct.runtime.image import decode_image, image_header
from tinct.runtime.postprocess import fit_size, kernel_for, luminance_l
from tinct.serve.engines import EXEMPLAR, EngineSet
from tinct.serve.sessions import Entry, ServerBusy, SessionNotFound, SessionStore, StaleUpdate, estimate_bytes

log = logging.getLogger("tinct.serve")
IMAGE_FORMATS = ("png", "rgba", "jpeg", "none")
MAX_SEQ = 2**53 - 1  # the page's counters are JavaScript numbers: exact up to here
# peak bytes per pixel of the photo, with ~10 % margin over the RSS growth measured at 20 MP (Zen 4, numba
# kernel; decode 14.0 PNG / 14.0 JPEG / 13.2 progressive JPEG, one-shot 55.0, render 19.9, session 13.4):
# decoding an upload, a one-shot colorization (decode + model + full-resolution post-processing + PNG), a
# full-resolution render of a session (post-processing + PNG), and a reference photo kept by a session
BYTES_PER_PIXEL = {"decode": 16, "oneshot": 60, "render": 24, "reference": 3}


@dataclass
class Limits:
    max_upload_bytes: int = 32 << 20
    max_pixels: int = 40_000_000
    preview: int = 1280  # the longer side of the interactive image
    max_hints: int = 1024
    decoders: int = 2  # uploads decoded at once
    max_waiting: int = 8  # requests queued on one session (more: 503)


def status_of(exc: BaseException) -> int:
    """The HTTP status of an error: 4xx for what the client sent, 500 for anything else."""
    if isinstance(exc, TooLargeError):
        return 413
    if isinstance(exc, ServerBusy):
        return 503
    if isinstance(exc, SessionNotFound):
        return 404
    if isinstance(exc, StaleUpdate):
        return 409
    if isinstance(exc, (InputError, ExemplarError)):  # UnknownEngineError, HintError, ImageError among them
        return 400
    return 500


def one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]


def image_bytes(pixels: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """uint8 RGB ``[h, w, 3]``, or a preview's RGBA display buffer ``[h, w, 4]`` (alpha ignored), as an
    encoded file in memory (Pillow's ``fmt`` and save options). The RGBA buffer goes to the JPEG encoder as
    it is (Pillow's RGBX): making its RGB contiguous first cost more than the encoding (6 vs 4 ms at 980x551)."""
    a = np.ascontiguousarray(pixels)
    if a.shape[-1] == 4:
        img = Image.frombuffer("RGBX", (a.shape[1], a.shape[0]), a, "raw", "RGBX", 0, 1)
        if fmt.upper() not in ("JPEG", "JPG"):
            img = img.convert("RGB")
    else:
        img = Image.fromarray(a)
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def safe_stem(filename: str) -> str:
    """A download name's stem from an upload's file name (letters, digits, -_. only)."""
    stem = Path(filename).stem or "image"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "image"


def _gates(session) -> tuple[list | None, float | None]:
    if session.gates is None:
        return None, None
    g = np.asarray(session.gates, dtype=bool)
    return g.astype(int).tolist(), float(g.mean())


GAMUT_STEP, GAMUT_LIMIT = 4.0, 108.0  # the gamut panel: ab grid spacing and extent (55 x 55 cells)


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def _gamut_png(light: float) -> str:
    """The ab plane at lightness ``light`` as a PNG data URL: cell (row, col) is ab = (-limit + col * step,
    limit - row * step) (b up), coloured where it exists in sRGB, transparent where not."""
    axis = np.arange(-GAMUT_LIMIT, GAMUT_LIMIT + GAMUT_STEP / 2, GAMUT_STEP, dtype=np.float32)
    a, b = np.meshgrid(axis, axis[::-1], indexing="xy")
    lab = np.stack([np.full_like(a, light), a, b], axis=-1)
    rgba = np.zeros(a.shape + (4,), np.uint8)
    rgba[..., :3] = to_uint8(lab_to_rgb(lab))
    rgba[..., 3] = np.where(in_gamut_lab(lab), 255, 0)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def check_seq(seq) -> int | None:
    """A client's update counter: None, or an integer 0..2**53-1 (a larger one would freeze the session)."""
    if seq is None:
        return None
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise InputError(f"seq: an integer, not {seq!r:.40}")
    if not 0 <= seq <= MAX_SEQ:
        raise InputError(f"seq {str(seq)[:40]}: use 0..{MAX_SEQ}")
    return seq


def _hints_of(session) -> list:
    return [h.to_json() for h in session.hints] if session.kind != EXEMPLAR else []


class SessionService:
    def __init__(self, engines: EngineSet, store: SessionStore, limits: Limits):
        self.engines, self.store, self.limits = engines, store, limits
        self._decoders = threading.BoundedSemaphore(max(1, limits.decoders))

    # ------------------------------------------------------------------ inputs
    def pixels(self, data: bytes, name: str) -> int:
        """The photo's pixel count from its header (format and size checked, nothing decoded)."""
        w, h, _ = image_header(data, name, max_pixels=self.limits.max_pixels)
        return w * h

    def decode(self, data: bytes, name: str) -> np.ndarray:
        """The upload decoded by the shared loader, charged to the memory budget and run at most
        ``Limits.decoders`` at a time."""
        n = self.pixels(data, name)
        with self.store.hold(n * BYTES_PER_PIXEL["decode"] + len(data), f"decoding {name}"):
            if not self._decoders.acquire(timeout=self.store.wait_s):
                raise ServerBusy(f"{self.limits.decoders} uploads are being decoded: try again in a few seconds")
            try:
                return decode_image(data, name, max_pixels=self.limits.max_pixels)
            finally:
                self._decoders.release()

    def parse_hints(self, size: tuple[int, int], hints: list | str | bytes) -> list:
        """Hints parsed as the CLI parses a hint file (one-line errors, the same limits)."""
        raw = hints if isinstance(hints, (str, bytes)) else json.dumps(hints)
        return decode_user_hints(raw.encode() if isinstance(raw, str) else raw, size, self.limits.max_hints,
                                 what="the hints field")

    # ------------------------------------------------------------------ one-shot
    def colorize_once(self, data: bytes, name: str, hints: str, model: str | None) -> tuple[bytes, str]:
        """(PNG bytes, engine id): what ``tinct colorize`` writes for the same inputs."""
        engine = self.engines.get(model)
        if engine.kind == EXEMPLAR:
            raise InputError(f"{engine.id} is an exemplar model: use a session with a reference photo")
        n = self.pixels(data, name)
        with self.store.hold(n * BYTES_PER_PIXEL["oneshot"] + len(data), f"colorizing {name}"):
            rgb = decode_image(data, name, max_pixels=self.limits.max_pixels)
            parsed = self.parse_hints((rgb.shape[1], rgb.shape[0]), hints)
            return image_bytes(engine.colorizer().colorize(rgb, parsed)), engine.id

    # ------------------------------------------------------------------ sessions
    def open(self, engine_id: str | None, data: bytes, filename: str, side: int | None = None) -> Entry:
        image = self.decode(data, filename)
        engine = self.engines.get(engine_id)
        h, w = image.shape[:2]
        side = self.limits.preview if side is None else side
        if not 64 <= side <= 16384:
            raise InputError(f"preview {side}: use 64..16384 pixels (the longer side)")
        side = min(side, self.limits.preview)  # the page asks for its display size; the server caps it
        nbytes = estimate_bytes(w, h, fit_size(w, h, side), kernel_for("auto"))

        def make(sid: str) -> Entry:
            sess = engine.colorizer().session(image, preview=side)
            return Entry(id=sid, image=image, engine_id=engine.id, session=sess, nbytes=nbytes, filename=filename)

        return self.store.add(make, nbytes)

    def describe(self, entry: Entry) -> dict:
        s = entry.session
        e = self.engines.get(entry.engine_id)
        return {"id": entry.id, "width": entry.size[0], "height": entry.size[1],
                "preview": {"width": s.preview_size[0], "height": s.preview_size[1]} if s.preview_size else None,
                "engine": e.describe(), "kind": e.kind, "seq": entry.seq, "filename": entry.filename,
                "hints": _hints_of(s)}

    def apply(self, entry: Entry, edit: Callable[[object], None], seq: int | None,
              fmt: str) -> tuple[dict, bytes | str | None]:
        """Apply ``edit`` to the session and render the preview, one update of the session at a time. On any
        failure the session is put back as it was (its hints, or its reference), so the next update starts
        from the last good state. ``fmt``: the preview as a PNG data URL (``png``); the raw RGBA display
        buffer (``rgba``, row-major uint8, alpha 255: exact, straight into an ``ImageData``: what the page uses
        on the serving machine); a JPEG (``jpeg``: quality 95, no chroma subsampling, ~45 dB: what the page
        uses across a network); or nothing (``none``). PNG's encoding and decoding cost as much as the model
        at 1280x720."""
        seq = check_seq(seq)
        with entry.lock:
            self._check_fresh(entry, seq)
            s = entry.session
            prev_hints = s.hints if s.kind != EXEMPLAR else None
            prev_ref = entry.reference
            t0 = time.perf_counter()
            try:
                edit(s)
                px = s.preview_rgba()  # the display buffer (RGBA): every format starts from it
            except BaseException:
                entry.reference = prev_ref
                try:
                    if prev_hints is not None:
                        s.set_hints(prev_hints)
                    elif prev_ref is not None:
                        s.set_reference(prev_ref)
                except TinctError:  # pragma: no cover - the previous state was valid
                    log.exception("could not restore session %s", entry.id)
                raise
            return self._answer(entry, s, px, seq, fmt, t0)

    @staticmethod
    def _check_fresh(entry: Entry, seq: int | None) -> None:
        if seq is not None and seq <= entry.seq:
            raise StaleUpdate(f"update {seq} is older than update {entry.seq}, which is already applied")

    def _answer(self, entry: Entry, s, px: np.ndarray, seq: int | None, fmt: str, t0: float):
        """Under the entry's lock, after a successful update: encode, record ``seq``, build the meta."""
        t1 = time.perf_counter()
        body = self._encode(px, fmt)
        t2 = time.perf_counter()
        if seq is not None:
            entry.seq = seq
        gates, kept = _gates(s)
        h, w = px.shape[:2]
        timings = {k: round(v, 2) for k, v in s.timings.items()}
        timings.update(update=round((t1 - t0) * 1e3, 2), encode=round((t2 - t1) * 1e3, 2))
        meta = {"seq": entry.seq, "width": w, "height": h, "timings": timings, "gates": gates,
                "kept_ratio": kept, "hints": _hints_of(s), "engine": entry.engine_id, "kernel": s.kernel}
        return meta, body

    @staticmethod
    def _encode(px: np.ndarray, fmt: str) -> bytes | str | None:
        if fmt == "png":
            return "data:image/png;base64," + base64.b64encode(image_bytes(px, compress_level=1)).decode()
        if fmt == "rgba":  # the display buffer as it is: nothing to encode or decode
            return px.tobytes()
        if fmt == "jpeg":  # the page's format: ~20x fewer bytes than rgba, ~45 dB
            return image_bytes(px, "JPEG", quality=95, subsampling=0)
        return None

    def set_hints(self, entry: Entry, hints: list, seq: int | None, fmt: str):
        if entry.session.kind == EXEMPLAR:
            raise InputError("this session's engine takes a reference photo, not hints")
        parsed = self.parse_hints(entry.size, hints)
        return self.apply(entry, lambda s: s.set_hints(parsed), seq, fmt)

    def set_engine(self, entry: Entry, engine_id: str, seq: int | None, fmt: str):
        """Switch the session's engine (same photo, same hints or reference); (meta, body), or (None, None)
        for an exemplar engine that has no reference yet."""
        seq = check_seq(seq)
        new = self.engines.get(engine_id)
        with entry.lock:
            self._check_fresh(entry, seq)  # a stale switch changes nothing
            old = self.engines.get(entry.engine_id)
            if new.kind != old.kind:
                raise InputError(f"cannot switch a {old.kind} session to {new.id} ({new.kind}); open the photo again")
            t0 = time.perf_counter()
            hints = entry.session.hints if entry.session.kind != EXEMPLAR else []
            old_preview = entry.session.preview_size
            sess = new.colorizer().session(entry.image, preview=max(old_preview) if old_preview else self.limits.preview)
            if hints:
                sess.set_hints(hints)
            if entry.reference is not None:
                sess.set_reference(entry.reference)
            nothing_to_show = new.kind == EXEMPLAR and entry.reference is None
            px = None if nothing_to_show else sess.preview_rgba()  # before the switch: a failure leaves the old
            entry.session, entry.engine_id = sess, new.id
            if nothing_to_show:
                if seq is not None:
                    entry.seq = seq
                return None, None
            return self._answer(entry, sess, px, seq, fmt, t0)

    def set_reference(self, entry: Entry, data: bytes, name: str, seq: int | None, fmt: str):
        if entry.session.kind != EXEMPLAR:
            raise InputError("this session's engine takes hints, not a reference photo")
        seq = check_seq(seq)
        self._check_fresh(entry, seq)  # checked again under the lock; refused here before any decode
        try:
            ref = self.decode(data, name)
        except InputError as exc:
            raise type(exc)(f"reference: {exc}") from None
        old = entry.reference
        delta = ref.nbytes - (old.nbytes if old is not None else 0)
        self.store.grow(entry, delta, f"reference {name}")  # the session keeps the decoded reference

        def edit(s):
            s.set_reference(ref)
            entry.reference = ref

        try:
            return self.apply(entry, edit, seq, fmt)
        except BaseException:
            self.store.shrink(entry, delta)
            raise

    def full_png(self, entry: Entry) -> bytes:
        return self.full_image(entry, image_bytes)

    def full_image(self, entry: Entry, use):
        """``use(rgb)`` on the session's full-resolution result, inside its memory hold (the render's buffer)."""
        with entry.lock:
            s = entry.session
            if s.kind == EXEMPLAR and entry.reference is None:
                raise InputError("no reference yet: drop a reference photo first")
            w, h = entry.size
            with self.store.hold(w * h * BYTES_PER_PIXEL["render"], "the full-resolution image", keep=entry):
                return use(s.colorize())

    def planes(self, entry: Entry) -> tuple[dict, bytes]:
        """(meta, body) for the in-browser engine: float32 L of the model's 224x224 view, then of the preview."""
        s = entry.session
        if s.kind == EXEMPLAR:
            raise InputError("this session's engine takes a reference photo: the in-browser engine runs hint models")
        with entry.lock:
            l224 = luminance_l(s.small).astype(np.float32)
            lp = s.l_preview
            if lp is None:
                lp = s.l_full
        meta = {"model": [l224.shape[1], l224.shape[0]], "preview": [lp.shape[1], lp.shape[0]], "size": list(entry.size)}
        return meta, l224.tobytes() + np.ascontiguousarray(lp, np.float32).tobytes()

    def color_at(self, entry: Entry, x: int, y: int, color: str | None, suggest: bool = True) -> dict:
        """What a hint at photo pixel ``(x, y)`` can be: the photo's lightness there, ``color`` (``#rrggbb``)
        snapped into the sRGB gamut at that lightness (what the hint will show, and what the page sends), up to 5
        colours the model predicts around the point (the last update's output, snapped too), and the gamut
        panel at that lightness: a PNG data URL of the in-gamut ab grid (transparent elsewhere)."""
        if entry.session.kind == EXEMPLAR:
            raise InputError("this session's engine takes a reference photo, not hints")
        w, h = entry.size
        hint = parse_user_hints([{"x": x, "y": y, "color": color or "#808080"}], (w, h))[0]
        with entry.lock:
            s = entry.session
            light = float(rgb_to_lab(entry.image[hint.y, hint.x])[0])
            suggested = s.suggested_ab(hint.x, hint.y) if suggest else np.zeros((0, 2), np.float32)
        picked = np.array(hint.rgb, np.uint8)
        rgb = snap_rgb(light, picked)
        in_gamut = bool(in_gamut_lab(np.concatenate([[light], rgb_to_lab(picked)[1:]])))
        sug = to_uint8(lab_to_rgb(np.concatenate(
            [np.full((len(suggested), 1), light, np.float32), snap_ab(light, suggested)], axis=1)))
        return {"x": hint.x, "y": hint.y, "l": round(light, 2),
                "color": _hex(rgb) if color else None, "in_gamut": in_gamut if color else None,
                "suggested": list(dict.fromkeys(_hex(c) for c in sug)),  # snapping may join two
                "gamut": {"step": GAMUT_STEP, "limit": GAMUT_LIMIT, "png": _gamut_png(light)}}

    def hints_json(self, entry: Entry) -> str:
        return json.dumps(_hints_of(entry.session), indent=1) if entry.session.kind != EXEMPLAR else "[]"
