"""The ``tinct serve`` application: the interactive page and the HTTP API, on FastAPI (Starlette + uvicorn).

FastAPI because the API is described by the framework's own OpenAPI document (``/openapi.json``; the Swagger
page at ``/docs`` is off: it loads its scripts from a CDN); Starlette underneath gives the static files,
multipart uploads (python-multipart) and the test client. The pieces: :mod:`serve.routes` (the routers),
:mod:`serve.service` (what the routes do, without HTTP), :mod:`serve.sessions` (the session store and the memory
budget), :mod:`serve.engines` (the engines), :mod:`serve.guard` (Host, Origin, token, bodies, response headers),
:mod:`serve.protocol` (header timeout, connection limit).

Endpoints (see ``/openapi.json``):

- ``POST /api/colorize``: one-shot, multipart ``image`` + ``hints`` (the CLI's hint JSON) [+ ``model``]:
  the PNG ``tinct colorize`` writes for the same inputs (same loader, same hint parser, same pipeline and
  post-processing kernel).
- ``/api/sessions``: create from an upload, set hints (the preview PNG + timings + A-ColViT gates),
  switch engine, set a reference (Color2Embed), fetch the full-resolution PNG or the hints, delete.
- ``/api/sessions/{id}/ws``: the page's hint updates on one WebSocket (the PUT's rules, binary answers).
- ``/api/folder``: with ``tinct serve --folder DIR``, the folder's photos by index: open one in a session with
  the hints saved beside it, save its hints (``DIR/<stem>.json``) and its result (where ``tinct batch`` writes).
- ``/api/engines``, ``/api/samples``, ``/api/health``.

Errors are JSON ``{"error": "<the CLI's one-line message>"}`` with a 4xx status for bad input (413 for
size limits, 404 for an unknown session, 409 for a stale update, 400/401/403 from the guard), 503 with
``Retry-After`` when the memory budget or a session's queue is full, and 500 with one line for anything
else: no traceback reaches a client. No request names a path on the server: uploads are bytes, samples
are names from a fixed list.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from tinct.data.samples import sample_photos
from tinct.runtime import __version__
from tinct.runtime.errors import TinctError
from tinct.serve import routes
from tinct.serve.engines import EngineSet
from tinct.serve.guard import Guard, Security
from tinct.serve.service import Limits, SessionService, log, one_line, status_of
from tinct.serve.sessions import ServerBusy, SessionStore

__all__ = ["Limits", "Security", "create_app"]


def create_app(engines: EngineSet, store: SessionStore | None = None, limits: Limits | None = None,
               samples: list[Path] | None = None, sessions_off: str | None = None, security: Security | None = None,
               folder=None):
    """The ASGI app behind its :class:`Guard`. ``sessions_off``: a reason; the session endpoints then answer 501
    with it (``tinct serve --ray`` with several replicas, where a session's requests could reach a replica that
    lacks it). ``security``: the guard's rules (default: loopback use, no token, the upload limit of ``limits``).
    ``folder``: a :class:`tinct.serve.folder.Folder` to work through (``tinct serve --folder``), or None."""
    limits = Limits() if limits is None else limits
    security = Security(max_body=limits.max_upload_bytes) if security is None else security
    app = FastAPI(title="tinct serve", version=__version__, docs_url=None, redoc_url=None,
                  description="Interactive colorization: the page at / and this API. Errors are "
                  '`{"error": "..."}` with the one-line message the CLI gives.')
    app.state.service = SessionService(engines, SessionStore() if store is None else store, limits)
    app.state.engines, app.state.store, app.state.limits = engines, app.state.service.store, limits
    app.state.folder = folder
    app.state.samples = {p.name: p for p in (samples if samples is not None else sample_photos())}
    if sessions_off:
        @app.middleware("http")
        async def _no_sessions(request: Request, call_next):
            if request.url.path.startswith(("/api/sessions", "/api/folder")):
                return JSONResponse({"error": sessions_off}, status_code=501)
            return await call_next(request)
    _error_handlers(app)
    app.mount("/static", StaticFiles(directory=routes.STATIC), name="static")
    for router in (routes.pages, routes.oneshot, routes.sessions, routes.folder):
        app.include_router(router)
    return Guard(app, security)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TinctError)
    async def _tinct_error(request: Request, exc: TinctError):
        status = status_of(exc)
        if status == 500:  # an artifact that fails here, a model that returned NaN: one line, logged
            log.error("tinct serve: %s %s: %s", request.method, request.url.path, one_line(exc))
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, ServerBusy) else None
        return JSONResponse({"error": one_line(exc)}, status_code=status, headers=headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):  # the last resort: one line to the client, the traceback in the log
        log.error("tinct serve: %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}): {one_line(exc)} -- a bug in tinct; "
                             "the server log has the traceback"}, status_code=500)

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
