"""The HTTP and WebSocket routes of ``tinct serve``: thin FastAPI routers over :class:`SessionService`
(``request.app.state.service``). Every failure becomes ``{"error": "<one line>"}`` with its status
(:func:`tinct.serve.service.status_of`), over HTTP and on the socket alike.

A session's work (updates, engine switches, references, full-resolution downloads) waits for its turn on the
event loop, not in a worker thread: :func:`_in_turn` queues at most ``Limits.max_waiting`` requests per session
(503 beyond), so one busy session cannot take the thread pool from the others; the cheap reads (health, engines,
a session's state) never touch the pool."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path
from typing import Literal

import anyio
from fastapi import APIRouter, File, Form, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from tinct.runtime import __version__
from tinct.runtime.errors import InputError, TinctError
from tinct.runtime.memory import rss_mb
from tinct.serve.service import MAX_SEQ, SessionService, log, one_line, safe_stem, status_of
from tinct.serve.sessions import Entry, ServerBusy, SessionNotFound

STATIC = Path(__file__).resolve().parent / "static"
ImageFormat = Literal["png", "rgba", "jpeg", "none"]

pages = APIRouter()
oneshot = APIRouter()
sessions = APIRouter(prefix="/api/sessions")
folder = APIRouter(prefix="/api/folder")


def _service(request: Request | WebSocket) -> SessionService:
    return request.app.state.service


def _name(upload: UploadFile, what: str) -> str:
    return Path(upload.filename or what).name or what  # a label for messages only, never opened


async def _in_turn(request: Request | WebSocket, entry: Entry, fn, *args):
    """Run ``fn(*args)`` in a worker thread once it is this session's turn (see the module doc)."""
    limit = _service(request).limits.max_waiting
    if entry.waiting >= limit:
        raise ServerBusy(f"this session already has {limit} requests waiting: try again when they are answered")
    # one lock per event loop (uvicorn has one; a test client may run a loop per request), made on that loop
    turn = entry.turns.setdefault(id(asyncio.get_running_loop()), asyncio.Lock())
    entry.waiting += 1
    try:
        async with turn:
            return await anyio.to_thread.run_sync(fn, *args)
    finally:
        entry.waiting -= 1


def _update_response(meta: dict, body, fmt: str):
    if fmt in ("rgba", "jpeg"):
        return Response(body, media_type="application/octet-stream" if fmt == "rgba" else "image/jpeg",
                        headers={"X-Tinct-Update": json.dumps(meta)})
    return {**meta, "image": body}


# ------------------------------------------------------------------ pages, health, engines, samples
@pages.get("/", include_in_schema=False)
def index():
    return FileResponse(STATIC / "index.html", media_type="text/html")


@pages.get("/api/health", summary="Liveness, versions and the session store's use")
async def health(request: Request):  # on the event loop: never queued behind work
    return {"ok": True, "tinct": __version__, "sessions": _service(request).store.stats(), "rss_mb": round(rss_mb(), 1)}


@pages.get("/api/engines", summary="The engines this server offers (model, backend, precision)")
async def list_engines(request: Request):
    engines = _service(request).engines
    # the page's own engines (ONNX Runtime Web): not with --folder, whose saves are the server session's
    browser = [] if request.app.state.folder is not None else await anyio.to_thread.run_sync(engines.browser_models)
    return {"default": engines.default, "engines": engines.describe(), "browser": browser}


@pages.get("/api/models/{index}", summary="A hint model's ONNX for the in-browser engine (see /api/engines' browser)",
           response_class=Response, responses={200: {"content": {"application/octet-stream": {}}}})
def browser_model(request: Request, index: int):
    path = _service(request).engines.browser_model_path(index)
    return FileResponse(path, media_type="application/octet-stream", headers={"Cache-Control": "no-cache"})


@pages.get("/api/samples", summary="Names of the sample photos")
async def list_samples(request: Request):
    return {"samples": sorted(request.app.state.samples)}


@pages.get("/api/samples/{name}", summary="One sample photo (by name from the list, never a path)")
def get_sample(request: Request, name: str):
    samples = request.app.state.samples
    p = samples.get(name)
    if p is None:
        raise SessionNotFound(f"no sample {name!r}; samples: {', '.join(sorted(samples))}")
    return FileResponse(p)


# ------------------------------------------------------------------ one-shot
@oneshot.post("/api/colorize", summary="One-shot colorization: the PNG `tinct colorize` writes",
              response_class=Response, responses={200: {"content": {"image/png": {}}}})
def colorize(request: Request, image: UploadFile = File(..., description="the photo (any format Pillow reads)"),
             hints: str = Form("[]", description="the CLI's hint JSON: [{\"x\", \"y\", \"color\"}]"),
             model: str | None = Form(None, description="an engine id or model name (default: the server's)")):
    png, engine_id = _service(request).colorize_once(image.file.read(), _name(image, "image"), hints, model)
    return Response(png, media_type="image/png",
                    headers={"X-Tinct-Engine": engine_id.encode("ascii", "replace").decode()})


# ------------------------------------------------------------------ sessions
class HintsBody(BaseModel):
    hints: list = Field(..., description="the CLI's hint JSON objects: {x, y, color}")
    seq: int | None = Field(None, ge=0, le=MAX_SEQ,
                            description="the client's update counter: older updates are refused (409)")


class EngineBody(BaseModel):
    engine: str
    seq: int | None = Field(None, ge=0, le=MAX_SEQ)


@sessions.post("", summary="Create a session from an uploaded photo")
async def create_session(request: Request, image: UploadFile = File(...), engine: str | None = Form(None),
                         preview: int | None = Form(None, description="longer side of the interactive image: "
                                                    "the page's display size (capped by --preview)")):
    svc = _service(request)
    data, name = await image.read(), _name(image, "image")
    return await anyio.to_thread.run_sync(lambda: svc.describe(svc.open(engine, data, name, preview)))


@sessions.get("/{sid}", summary="A session's size, engine and hints")
async def get_session(request: Request, sid: str):
    svc = _service(request)
    return svc.describe(svc.store.get(sid))


@sessions.put("/{sid}/hints", summary="Replace the hints; returns the preview PNG, timings and gates")
async def set_hints(request: Request, sid: str, body: HintsBody, image: ImageFormat = "png"):
    svc = _service(request)
    entry = svc.store.get(sid)
    meta, data = await _in_turn(request, entry, svc.set_hints, entry, body.hints, body.seq, image)
    return _update_response(meta, data, image)


@sessions.websocket("/{sid}/ws")
async def session_socket(ws: WebSocket, sid: str, image: str = "jpeg"):
    """The page's hint updates on one connection (not in the OpenAPI page, which has no WebSockets).

    Each text message ``{"hints": [...], "seq": n}`` is handled like ``PUT .../hints?image=`` (``jpeg`` or
    ``rgba``) and answered by one binary message: a 4-byte big-endian length, the update's JSON, the image.
    A refused update is answered by a text message ``{"error", "status", "seq"}`` with the HTTP endpoint's
    status and message, and the connection stays open. In Chromium a round trip on the socket costs less
    than a ``fetch`` (``python -m tinct.benchmarks.serve_rtt``). A client that leaves mid-update is let go
    quietly: its update completes, the answer is dropped."""
    svc = _service(ws)
    await ws.accept()
    if image not in ("jpeg", "rgba"):
        await ws.close(code=1003, reason="image: use jpeg or rgba")
        return
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            seq = None
            try:
                body = _socket_message(msg)
                seq = body.get("seq")
                entry = svc.store.get(sid)
                meta, data = await _in_turn(ws, entry, svc.set_hints, entry, body["hints"], seq, image)
            except Exception as exc:  # every failure is answered on the socket, as over HTTP
                status = status_of(exc) if isinstance(exc, TinctError) else 500
                if status == 500:
                    log.error("tinct serve: websocket %s failed", sid, exc_info=exc)
                await ws.send_text(json.dumps({"error": one_line(exc), "status": status,
                                               "seq": seq if isinstance(seq, int) else None}))
                continue
            head = json.dumps(meta).encode()
            await ws.send_bytes(struct.pack(">I", len(head)) + head + data)
    except (WebSocketDisconnect, OSError, RuntimeError):  # the client left (uvicorn: ClientDisconnected)
        return


def _socket_message(msg: dict) -> dict:
    try:
        body = json.loads(msg.get("text") or "")
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise InputError("send the hints as JSON text: {\"hints\": [...], \"seq\": n}") from None
    if not isinstance(body, dict) or not isinstance(body.get("hints"), list):
        raise InputError("a message is {\"hints\": [...], \"seq\": n}")
    return body


@sessions.put("/{sid}/engine", summary="Switch the session's engine (same photo, same hints)")
async def set_engine(request: Request, sid: str, body: EngineBody, image: ImageFormat = "png"):
    svc = _service(request)
    entry = svc.store.get(sid)
    meta, data = await _in_turn(request, entry, svc.set_engine, entry, body.engine, body.seq, image)
    if meta is None:  # an exemplar engine without a reference yet: nothing to render
        return {**svc.describe(entry), "image": None}
    return _update_response(meta, data, image)


@sessions.put("/{sid}/reference", summary="Color2Embed: set the reference photo; returns the preview")
async def set_reference(request: Request, sid: str, reference: UploadFile = File(...), seq: int | None = Form(None),
                        image: ImageFormat = "png"):
    svc = _service(request)
    entry = svc.store.get(sid)
    data, name = await reference.read(), _name(reference, "reference")
    meta, body = await _in_turn(request, entry, svc.set_reference, entry, data, name, seq, image)
    return _update_response(meta, body, image)


@sessions.get("/{sid}/image", summary="The full-resolution PNG of the last update",
              response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def full_image(request: Request, sid: str):
    svc = _service(request)
    entry = svc.store.get(sid)
    png = await _in_turn(request, entry, svc.full_png, entry)
    return Response(png, media_type="image/png",
                    headers={"Content-Disposition": f'attachment; filename="{safe_stem(entry.filename)}-tinct.png"'})


@sessions.get("/{sid}/color", summary="A hint's colour at a point: the photo's lightness, the pick snapped into "
              "gamut there, suggested colours (unless suggest=false), the gamut panel")
async def color_at(request: Request, sid: str, x: int, y: int, color: str | None = None, suggest: bool = True):
    svc = _service(request)
    entry = svc.store.get(sid)
    return await _in_turn(request, entry, svc.color_at, entry, x, y, color, suggest)


@sessions.get("/{sid}/planes", summary="The photo's CIE L at the model's 224x224 and at the preview size (float32): "
              "what the in-browser engine needs besides the model", response_class=Response,
              responses={200: {"content": {"application/octet-stream": {}}}})
async def planes(request: Request, sid: str):
    svc = _service(request)
    entry = svc.store.get(sid)
    meta, body = await _in_turn(request, entry, svc.planes, entry)
    return Response(body, media_type="application/octet-stream", headers={"X-Tinct-Planes": json.dumps(meta)})


@sessions.get("/{sid}/hints", summary="The session's hints as the CLI's hint JSON")
async def get_hints(request: Request, sid: str):
    svc = _service(request)
    entry = svc.store.get(sid)
    return Response(svc.hints_json(entry), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{safe_stem(entry.filename)}-hints.json"'})


@sessions.delete("/{sid}", summary="Delete a session")
def delete_session(request: Request, sid: str):
    _service(request).store.delete(sid)
    return {"deleted": sid}


# ------------------------------------------------------------------ a folder to work through (tinct serve --folder)
def _folder(request: Request):
    f = request.app.state.folder
    if f is None:
        raise SessionNotFound("this server has no folder: start it with tinct serve --folder DIR")
    return f


@folder.get("", summary="The folder's photos: names, and which have saved hints and results")
async def folder_list(request: Request):
    return await anyio.to_thread.run_sync(_folder(request).listing)


@folder.get("/{index}/photo", summary="Photo `index` of the folder (by its place in the list, never a path)")
def folder_photo(request: Request, index: int):
    return FileResponse(_folder(request).photo_path(index))


@folder.post("/{index}/session", summary="Open photo `index` in a new session, with the hints saved beside it")
async def folder_session(request: Request, index: int, engine: str | None = Form(None),
                         preview: int | None = Form(None, description="as for POST /api/sessions")):
    svc, f = _service(request), _folder(request)

    def work():
        data, name, saved = f.open(index, svc.limits.max_upload_bytes)  # a bad hint file: refused before a session
        entry = svc.open(engine, data, name, preview)
        f.opened(entry.id, index)
        return {**svc.describe(entry), "folder_index": index, "saved_hints": saved}
    return await anyio.to_thread.run_sync(work)


@folder.post("/{index}/save", summary="Write the session's hints beside photo `index` (the CLI's hint JSON) and, "
             "with result=true, its full-resolution result where `tinct batch` writes it")
async def folder_save(request: Request, index: int, sid: str, result: bool = False):
    svc, f = _service(request), _folder(request)
    entry = svc.store.get(sid)
    f.check(sid, index)
    if entry.session.kind != "hints":
        raise InputError("a folder keeps hints: this session's engine takes a reference photo")
    n = len(entry.session.hints)
    path = await anyio.to_thread.run_sync(f.save_hints, index, svc.hints_json(entry))
    out = None
    if result:
        out = await _in_turn(request, entry, svc.full_image, entry, lambda rgb: f.save_result(index, rgb))
    return {"hints": n, "hints_file": path, "result": out}
