"""The ``tinct serve`` application: the interactive page and the HTTP API, on FastAPI (Starlette + uvicorn).

FastAPI because the issue asks for an API documented by the framework's own OpenAPI page (``/docs``);
Starlette underneath gives the static files, multipart uploads (python-multipart) and the test client.

Endpoints (see ``/docs``):

- ``POST /api/colorize``: one-shot, multipart ``image`` + ``hints`` (the CLI's hint JSON) [+ ``model``]:
  the PNG ``tinct colorize`` writes for the same inputs (same loader, same hint parser, same pipeline and
  post-processing kernel).
- ``/api/sessions``: create from an upload, set hints (the preview PNG + timings + A-ColViT gates),
  switch engine, set a reference (Color2Embed), fetch the full-resolution PNG or the hints, delete.
- ``/api/sessions/{id}/ws``: the page's hint updates on one WebSocket (the PUT's rules, binary answers).
- ``/api/engines``, ``/api/samples``, ``/api/health``.

Errors are JSON ``{"error": "<the CLI's one-line message>"}`` with a 4xx status for bad input (413 for
size limits, 404 for an unknown session, 409 for a stale update) and 500 with one line for anything
else: no traceback reaches a client. No request names a path on the server: uploads are bytes, samples
are names from a fixed list.
"""


import base64
import io
import json
import logging
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tinct.runtime.errors import InputError, TinctError, TooLargeError
from tinct.serve.engines import EXEMPLAR, EngineSet
from tinct.serve.sessions import Entry, SessionNotFound, SessionStore, StaleUpdate, estimate_bytes

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("tinct.serve")


@dataclass
class Limits:
    max_upload_bytes: int = 32 << 20
    max_pixels: int = 40_000_000
    preview: int = 1280  # the longer side of the interactive image
    max_hints: int = 1024


def _status(exc: BaseException) -> int:
    if isinstance(exc, TooLargeError):
        return 413
    if isinstance(exc, SessionNotFound):
        return 404
    if isinstance(exc, StaleUpdate):
        return 409
    if isinstance(exc, InputError):  # UnknownEngineError, HintError, ImageError among them
        return 400
    from tinct.runtime.exemplar import ExemplarError

    if isinstance(exc, ExemplarError):
        return 400
    return 500


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]


class UploadLimit:
    """ASGI middleware: request bodies over ``max_bytes`` answer 413 before the application sees them:
    at once from a declared Content-Length, else as soon as the streamed bytes pass the limit (the body is
    buffered here, at most ``max_bytes``, and replayed to the application)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _send_json(send, 413, {"error": self._message(int(declared))})
        chunks, seen = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # the client went away
                return
            body = msg.get("body", b"")
            seen += len(body)
            if seen > self.max_bytes:
                return await _send_json(send, 413, {"error": self._message(seen, streamed=True)})
            chunks.append(body)
            if not msg.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)

    def _message(self, n: int, streamed: bool = False) -> str:
        size = f"over {self.max_bytes / 2**20:.1f} MiB" if streamed else f"{n / 2**20:.1f} MiB"
        return f"upload of {size} is over the server's limit of {self.max_bytes / 2**20:.1f} MiB (--max-upload-mb)"


async def _send_json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def image_bytes(pixels: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """uint8 RGB ``[h, w, 3]``, or a preview's RGBA display buffer ``[h, w, 4]`` (alpha ignored), as an
    encoded file in memory (Pillow's ``fmt`` and save options). The RGBA buffer goes to the JPEG encoder as
    it is (Pillow's RGBX): making its RGB contiguous first cost more than the encoding (6 vs 4 ms at 980x551)."""
    from PIL import Image

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


def _gates(session) -> tuple[list | None, float | None]:
    g = getattr(session, "gates", None)
    if g is None:
        return None, None
    g = np.asarray(g, dtype=bool)
    return g.astype(int).tolist(), float(g.mean())


def create_app(engines: EngineSet, store: SessionStore | None = None, limits: Limits | None = None,
               samples: list[Path] | None = None, sessions_off: str | None = None):
    """The FastAPI app. ``sessions_off``: a reason; the session endpoints then answer 501 with it (``tinct
    serve --ray`` with several replicas, where a session's requests could reach a replica that lacks it)."""
    import anyio
    from fastapi import FastAPI, File, Form, Request, UploadFile, WebSocket
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, Field
    from tinct.runtime import __version__
    from tinct.runtime.hints import decode_user_hints
    from tinct.runtime.image import decode_image

    store = SessionStore() if store is None else store
    limits = Limits() if limits is None else limits
    samples = {p.name: p for p in (samples if samples is not None else default_samples())}
    app = FastAPI(title="tinct serve", version=__version__,
                  description="Interactive colorization: the page at / and this API. Errors are "
                  '`{"error": "..."}` with the one-line message the CLI gives.')
    app.state.engines, app.state.store, app.state.limits = engines, store, limits

    if sessions_off:
        @app.middleware("http")
        async def _no_sessions(request: Request, call_next):
            if request.url.path.startswith("/api/sessions"):
                return JSONResponse({"error": sessions_off}, status_code=501)
            return await call_next(request)

    @app.exception_handler(TinctError)
    async def _tinct_error(request: Request, exc: TinctError):
        status = _status(exc)
        if status == 500:  # an artifact that fails here, a model that returned NaN: one line, logged
            log.error("tinct serve: %s %s: %s", request.method, request.url.path, _one_line(exc))
        return JSONResponse({"error": _one_line(exc)}, status_code=status)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):  # the last resort: one line to the client, the traceback in the log
        log.error("tinct serve: %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}): {_one_line(exc)} -- a bug in tinct; "
                             "the server log has the traceback"}, status_code=500)

    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):  # unknown routes, wrong methods: the same JSON shape
        return JSONResponse({"error": f"{request.method} {request.url.path}: {exc.detail}"}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body",)) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=422)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -------------------------------------------------------------- helpers
    def _name(upload: UploadFile, what: str) -> str:
        return Path(upload.filename or what).name or what  # a label for messages only, never opened

    async def _read(upload: UploadFile, what: str) -> tuple[bytes, str]:
        return await upload.read(), _name(upload, what)

    def _image(data: bytes, name: str) -> np.ndarray:
        return decode_image(data, name, max_pixels=limits.max_pixels)

    def _hints(entry: Entry, hints: list) -> list:
        """The hints of an update, parsed as the CLI parses a hint file (one-line errors, the same limits)."""
        return decode_user_hints(json.dumps(hints).encode(), entry.size, limits.max_hints, what="the hints field")

    def _is_exemplar(s) -> bool:
        return hasattr(s, "set_reference")

    def _update(entry: Entry, apply, seq: int | None, fmt: str = "png"):
        meta, body = _apply(entry, apply, seq, fmt)
        if fmt in ("rgba", "jpeg"):
            return Response(body, media_type="application/octet-stream" if fmt == "rgba" else "image/jpeg",
                            headers={"X-Tinct-Update": json.dumps(meta)})
        return {**meta, "image": body}

    def _apply(entry: Entry, apply, seq: int | None, fmt: str) -> tuple[dict, bytes | str | None]:
        """Serialised per session: apply an edit and render the preview. On any failure the session is put
        back as it was (its hints, or its reference), so the next update starts from the last good state.
        ``fmt``: the preview as a PNG data URL in the JSON (``png``); as the body with the JSON in the
        ``X-Tinct-Update`` header, either the raw RGBA display buffer (``rgba``, row-major uint8, alpha 255:
        exact, straight into an ``ImageData``: what the page uses on the serving machine) or a JPEG (``jpeg``:
        quality 95, no chroma subsampling, ~45 dB: what the page uses across a network); or not at all
        (``none``). PNG's encoding and decoding cost as much as the model at 1280x720."""
        with entry.lock:
            if seq is not None and seq <= entry.seq:
                raise StaleUpdate(f"update {seq} is older than update {entry.seq}, which is already applied")
            s = entry.session
            prev_hints, prev_ref = (None if _is_exemplar(s) else s.hints), entry.reference
            t0 = time.perf_counter()
            try:
                apply(s)
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
            t1 = time.perf_counter()
            if fmt == "png":
                body = "data:image/png;base64," + base64.b64encode(image_bytes(px, compress_level=1)).decode()
            elif fmt == "rgba":  # the display buffer as it is: nothing to encode or decode
                body = px.tobytes()
            elif fmt == "jpeg":  # the page's format: ~20x fewer bytes than rgba, ~45 dB
                body = image_bytes(px, "JPEG", quality=95, subsampling=0)
            else:
                body = None
            t2 = time.perf_counter()
            if seq is not None:
                entry.seq = seq
            gates, kept = _gates(s)
            h, w = px.shape[:2]
            timings = {k: round(v, 2) for k, v in s.timings.items()}
            timings.update(update=round((t1 - t0) * 1e3, 2), encode=round((t2 - t1) * 1e3, 2))
            meta = {"seq": entry.seq, "width": w, "height": h, "timings": timings, "gates": gates,
                    "kept_ratio": kept, "hints": [] if prev_hints is None else [x.to_json() for x in s.hints],
                    "engine": entry.engine_id, "kernel": s.kernel}
        return meta, body

    def _new_session(engine_id: str | None, image: np.ndarray, filename: str, side: int | None = None) -> Entry:
        engine = engines.get(engine_id)
        h, w = image.shape[:2]
        from tinct.runtime.postprocess import fit_size, kernel_for

        side = limits.preview if side is None else side
        if not 64 <= side <= 16384:
            raise InputError(f"preview {side}: use 64..16384 pixels (the longer side)")
        side = min(side, limits.preview)  # the page asks for its display size; the server caps it
        preview = fit_size(w, h, side)
        nbytes = estimate_bytes(w, h, preview, kernel_for("auto"))

        def make(sid: str) -> Entry:
            col = engine.colorizer()
            sess = col.session(image, preview=side)
            return Entry(id=sid, image=image, engine_id=engine.id, session=sess, nbytes=nbytes, filename=filename)

        return store.add(make, nbytes)

    def _describe(entry: Entry) -> dict:
        s = entry.session
        e = engines.get(entry.engine_id)
        return {"id": entry.id, "width": entry.size[0], "height": entry.size[1],
                "preview": {"width": s.preview_size[0], "height": s.preview_size[1]} if s.preview_size else None,
                "engine": e.describe(), "kind": e.kind, "seq": entry.seq, "filename": entry.filename,
                "hints": [] if _is_exemplar(s) else [h.to_json() for h in s.hints]}

    # -------------------------------------------------------------- pages
    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/health", summary="Liveness, versions and the session store's use")
    def health():
        from tinct.runtime.memory import rss_mb

        return {"ok": True, "tinct": __version__, "sessions": store.stats(), "rss_mb": round(rss_mb(), 1)}

    @app.get("/api/engines", summary="The engines this server offers (model, backend, precision)")
    def list_engines():
        return {"default": engines.default, "engines": engines.describe()}

    @app.get("/api/samples", summary="Names of the sample photos")
    def list_samples():
        return {"samples": sorted(samples)}

    @app.get("/api/samples/{name}", summary="One sample photo (by name from the list, never a path)")
    def get_sample(name: str):
        p = samples.get(name)
        if p is None:
            raise SessionNotFound(f"no sample {name!r}; samples: {', '.join(sorted(samples))}")
        return FileResponse(p)

    # -------------------------------------------------------------- one-shot
    @app.post("/api/colorize", summary="One-shot colorization: the PNG `tinct colorize` writes",
              response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def colorize(image: UploadFile = File(..., description="the photo (any format Pillow reads)"),
                 hints: str = Form("[]", description="the CLI's hint JSON: [{\"x\", \"y\", \"color\"}]"),
                 model: str | None = Form(None, description="an engine id or model name (default: the server's)")):
        rgb = _image(image.file.read(), _name(image, "image"))
        engine = engines.get(model)
        if engine.kind == EXEMPLAR:
            raise InputError(f"{engine.id} is an exemplar model: use a session with a reference photo")
        parsed = decode_user_hints(hints.encode(), (rgb.shape[1], rgb.shape[0]), limits.max_hints,
                                   what="the hints field")
        return Response(image_bytes(engine.colorizer().colorize(rgb, parsed)), media_type="image/png",
                        headers={"X-Tinct-Engine": engine.id.encode("ascii", "replace").decode()})

    # -------------------------------------------------------------- sessions
    from typing import Literal

    ImageFormat = Literal["png", "rgba", "jpeg", "none"]  # noqa: N806 - a type

    class HintsBody(BaseModel):
        hints: list = Field(..., description="the CLI's hint JSON objects: {x, y, color}")
        seq: int | None = Field(None, description="the client's update counter: older updates are refused (409)")

    class EngineBody(BaseModel):
        engine: str
        seq: int | None = None

    @app.post("/api/sessions", summary="Create a session from an uploaded photo")
    async def create_session(image: UploadFile = File(...), engine: str | None = Form(None),
                             preview: int | None = Form(None, description="longer side of the interactive image: "
                                                        "the page's display size (capped by --preview)")):
        data, name = await _read(image, "image")

        def work():
            rgb = _image(data, name)
            return _describe(_new_session(engine, rgb, name, preview))

        return await anyio.to_thread.run_sync(work)

    @app.get("/api/sessions/{sid}", summary="A session's size, engine and hints")
    def get_session(sid: str):
        return _describe(store.get(sid))

    @app.put("/api/sessions/{sid}/hints", summary="Replace the hints; returns the preview PNG, timings and gates")
    def set_hints(sid: str, body: HintsBody, image: ImageFormat = "png"):
        entry = store.get(sid)
        return _update(entry, _setter(_hints(entry, body.hints)), body.seq, image)

    @app.websocket("/api/sessions/{sid}/ws")
    async def session_socket(ws: WebSocket, sid: str, image: str = "jpeg"):
        """The page's hint updates on one connection (not in the OpenAPI page, which has no WebSockets).

        Each text message ``{"hints": [...], "seq": n}`` is handled like ``PUT .../hints?image=``
        (``jpeg`` or ``rgba``) and answered by one binary message: a 4-byte big-endian length, the update's
        JSON, the image. A refused update is answered by a text message ``{"error", "status", "seq"}``
        with the HTTP endpoint's status and message, and the connection stays open. In Chromium a round trip
        on the socket costs less than a ``fetch`` (``python -m tinct.benchmarks.serve_rtt``; the README)."""
        await ws.accept()
        if image not in ("jpeg", "rgba"):
            await ws.close(code=1003, reason="image: use jpeg or rgba")
            return
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            seq = None
            try:
                try:
                    body = json.loads(msg.get("text") or "")
                except ValueError:
                    raise InputError("send the hints as JSON text: {\"hints\": [...], \"seq\": n}") from None
                if not isinstance(body, dict) or not isinstance(body.get("hints"), list):
                    raise InputError("a message is {\"hints\": [...], \"seq\": n}")
                seq = body.get("seq")
                if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)):
                    raise InputError(f"seq: an integer, not {seq!r:.40}")
                entry = store.get(sid)
                meta, data = await anyio.to_thread.run_sync(_apply, entry, _setter(_hints(entry, body["hints"])), seq,
                                                            image)
            except Exception as exc:  # every failure is answered on the socket, as over HTTP
                status = _status(exc) if isinstance(exc, TinctError) else 500
                if status == 500:
                    log.error("tinct serve: websocket %s failed", sid, exc_info=exc)
                await ws.send_text(json.dumps({"error": _one_line(exc), "status": status, "seq": seq}))
                continue
            head = json.dumps(meta).encode()
            await ws.send_bytes(struct.pack(">I", len(head)) + head + data)

    @app.put("/api/sessions/{sid}/engine", summary="Switch the session's engine (same photo, same hints)")
    def set_engine(sid: str, body: EngineBody, image: ImageFormat = "png"):
        entry = store.get(sid)
        new = engines.get(body.engine)
        with entry.lock:
            old = engines.get(entry.engine_id)
            if new.kind != old.kind:
                raise InputError(f"cannot switch a {old.kind} session to {new.id} ({new.kind}); open the photo again")
            hints = [] if _is_exemplar(entry.session) else entry.session.hints
            old_preview = entry.session.preview_size
            sess = new.colorizer().session(entry.image, preview=max(old_preview) if old_preview else limits.preview)
            if hints:
                sess.set_hints(hints)
            if entry.reference is not None:
                sess.set_reference(entry.reference)
            entry.session, entry.engine_id = sess, new.id
        if new.kind == EXEMPLAR and entry.reference is None:
            return {**_describe(entry), "image": None}
        return _update(entry, lambda s: None, body.seq, image)

    @app.put("/api/sessions/{sid}/reference", summary="Color2Embed: set the reference photo; returns the preview")
    async def set_reference(sid: str, reference: UploadFile = File(...), seq: int | None = Form(None),
                            image: ImageFormat = "png"):
        entry = store.get(sid)
        data, name = await _read(reference, "reference")

        def work():
            if not _is_exemplar(entry.session):
                raise InputError("this session's engine takes hints, not a reference photo")
            try:
                ref = _image(data, name)
            except InputError as exc:
                raise type(exc)(f"reference: {exc}") from None

            def apply(s):
                s.set_reference(ref)
                entry.reference = ref

            return _update(entry, apply, seq, image)

        return await anyio.to_thread.run_sync(work)

    @app.get("/api/sessions/{sid}/image", summary="The full-resolution PNG of the last update",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def full_image(sid: str):
        entry = store.get(sid)
        with entry.lock:
            s = entry.session
            if _is_exemplar(s) and entry.reference is None:
                raise InputError("no reference yet: drop a reference photo first")
            png = image_bytes(s.colorize())
        stem = Path(entry.filename).stem or "image"
        return Response(png, media_type="image/png",
                        headers={"Content-Disposition": f'attachment; filename="{_safe(stem)}-tinct.png"'})

    @app.get("/api/sessions/{sid}/hints", summary="The session's hints as the CLI's hint JSON")
    def get_hints(sid: str):
        entry = store.get(sid)
        s = entry.session
        body = "[]" if _is_exemplar(s) else json.dumps([h.to_json() for h in s.hints], indent=1)
        stem = Path(entry.filename).stem or "image"
        return Response(body, media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{_safe(stem)}-hints.json"'})

    @app.delete("/api/sessions/{sid}", summary="Delete a session")
    def delete_session(sid: str):
        store.delete(sid)
        return {"deleted": sid}

    return UploadLimit(app, limits.max_upload_bytes) if limits.max_upload_bytes else app


def _setter(hints):
    """An update that replaces a session's hints."""
    return lambda s: s.set_hints(hints)


def _safe(stem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "image"


def default_samples() -> list[Path]:
    """The fixture photos of a checkout (none in a runtime-only install)."""
    root = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "photos"
    return sorted(p for p in root.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) if root.is_dir() else []
