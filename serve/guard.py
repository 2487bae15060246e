"""The edge of ``tinct serve``: who may talk to it, and how long and how much a client may send.

:class:`Guard` is the ASGI middleware in front of the application (plain ``tinct serve`` and every Ray Serve
replica alike). In order:

- **Host**: the ``Host`` header must be an IP literal, ``localhost``, or a name given with ``--allowed-host``:
  a DNS-rebinding page reaches the server under its own domain name, which is refused (400).
- **Token** (``--token``): every ``/api`` request and WebSocket needs it, as ``Authorization: Bearer <token>``
  or the ``tinct_token`` cookie, which ``GET /?token=<token>`` sets (HttpOnly, SameSite=Strict) before
  redirecting to ``/``; ``/api/health`` stays open for liveness probes (401 otherwise).
- **Origin**: a request that changes state (POST, PUT, PATCH, DELETE) and every WebSocket upgrade is refused
  (403) when it comes from another site: an ``Origin`` that is not this server's own (``null`` included), or
  ``Sec-Fetch-Site: cross-site``/``same-site``. Cross-site form posts therefore never reach a route; clients
  that are not browsers send neither header and are not affected.
- **Bodies**: a declared ``Content-Length`` over the limit is refused at once (413); the body is streamed to a
  spooled temporary file (memory up to 1 MiB, then disk) and must arrive within ``--body-timeout`` seconds
  (408 otherwise, the connection closed and the file dropped), then replayed to the application in chunks.
- **Response headers**: a Content-Security-Policy that allows only this server (scripts, styles, images,
  connections, no framing), ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer``.

Connection-level limits (a header that never completes, too many open connections) are in
:mod:`tinct.serve.protocol`; memory and per-session queues in :mod:`tinct.serve.service`.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import tempfile
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import anyio

COOKIE = "tinct_token"
CHANGES_STATE = ("POST", "PUT", "PATCH", "DELETE")
OPEN_PATHS = ("/api/health",)  # reachable without the token (liveness probes)
SPOOL_BYTES = 1 << 20
CHUNK = 1 << 16


@dataclass
class Security:
    """What :class:`Guard` enforces. ``token``: None = no authentication (loopback, or ``--no-auth``)."""

    allowed_hosts: tuple[str, ...] = ()
    token: str | None = None
    max_body: int = 32 << 20
    body_timeout: float = 30.0


def split_host(value: str) -> str | None:
    """The host name of a ``Host`` header or URL netloc (no port, no brackets), lower case; None if malformed."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@\\ \t"):
        return None
    if value.startswith("["):
        end = value.find("]")
        host, port = (None, "") if end < 0 else (value[1:end], value[end + 1:])
    elif value.count(":") > 1:  # a bare IPv6 literal is not a valid Host header
        return None
    else:
        host, colon, port = value.partition(":")
        port = colon + port
    if not host or (port and not re.fullmatch(r":\d*", port)):
        return None  # the port, when there is one, is digits only (the Host also names the CSP's WebSocket source)
    return host


def host_allowed(value: str | None, allowed: tuple[str, ...] = ()) -> bool:
    """An IP literal, ``localhost``, or a name in ``allowed`` (``--allowed-host``): see the module doc."""
    if value is None:
        return False
    host = split_host(value)
    if host is None:
        return False
    if host == "localhost" or host in {a.lower() for a in allowed}:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _netloc(value: str, scheme: str) -> str:
    value = value.strip().lower()
    default = {"http": ":80", "https": ":443", "ws": ":80", "wss": ":443"}.get(scheme, "")
    return value[: -len(default)] if default and value.endswith(default) else value


def same_origin(origin: str, host: str, scheme: str) -> bool:
    """Is ``origin`` (an Origin header) this server as the client addressed it (``host``, ``scheme``)?"""
    if origin.strip().lower() == "null":
        return False
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return False
    own = "https" if scheme in ("https", "wss") else "http"
    return parts.scheme == own and _netloc(parts.netloc, parts.scheme) == _netloc(host, own)


def _headers(scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers") or []}


def _token_of(headers: dict[bytes, bytes]) -> str | None:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    cookie = headers.get(b"cookie")
    if cookie:
        jar = SimpleCookie()
        try:
            jar.load(cookie.decode("latin-1"))
        except Exception:  # noqa: BLE001 - a malformed cookie header is no token
            return None
        if COOKIE in jar:
            return jar[COOKIE].value
    return None


class Guard:
    def __init__(self, app, security: Security):
        self.app, self.sec = app, security

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        host = headers.get(b"host", b"").decode("latin-1")
        problem = None
        if not host_allowed(host, self.sec.allowed_hosts):
            problem = (400, f"Host {host[:80]!r} is not this server's: use its address, localhost, or start it with "
                       "--allowed-host NAME")
        elif kind == "websocket" or scope.get("method") in CHANGES_STATE:
            problem = self._cross_site(headers, host, scope.get("scheme", "http"))
        if problem is None and self.sec.token and self._needs_token(scope):
            given = _token_of(headers)
            if given is None or not hmac.compare_digest(given.encode(), self.sec.token.encode()):
                problem = (401, "this server needs its token: open the address tinct serve printed (…/?token=…), "
                           "or send 'Authorization: Bearer <token>'")
        if kind == "websocket":
            if problem is not None:  # refused before accept: the server answers the upgrade with HTTP 403
                await receive()
                return await send({"type": "websocket.close", "code": 1008, "reason": problem[1][:120]})
            return await self.app(scope, receive, send)
        if problem is not None:
            return await send_json(send, problem[0], {"error": problem[1]})
        send = self._with_headers(send, host)
        if self.sec.token and scope["path"] == "/" and scope.get("method") == "GET":
            given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            if given:
                return await self._login(given[0], send)
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        return await self._with_body(scope, receive, send, headers)

    def _needs_token(self, scope) -> bool:
        path = scope["path"]
        return (path.startswith("/api/") or path == "/openapi.json") and path not in OPEN_PATHS

    def _cross_site(self, headers, host: str, scheme: str):
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
        if site in ("cross-site", "same-site"):
            return 403, f"refused: a {site} request (only this server's own page may change its state)"
        origin = headers.get(b"origin")
        if origin is not None and not same_origin(origin.decode("latin-1"), host, scheme):
            return 403, f"refused: Origin {origin.decode('latin-1')[:80]!r} is not this server"
        return None

    async def _login(self, given: str, send):
        if not hmac.compare_digest(given.encode(), self.sec.token.encode()):
            return await send_json(send, 401, {"error": "wrong token: open the address tinct serve printed"})
        cookie = f"{COOKIE}={self.sec.token}; Path=/; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode()), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    def _with_headers(self, send, host: str):
        """``send`` adding the security headers; ``host`` passed the Host check (it names the WebSocket source)."""
        ws = f"ws://{host} wss://{host}"
        # 'wasm-unsafe-eval': WebAssembly compilation only (the in-browser engine), still no eval of strings
        csp = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; "
               f"connect-src 'self' {ws}; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
               "form-action 'self'; frame-ancestors 'none'").encode()
        extra = [(b"content-security-policy", csp), (b"x-frame-options", b"DENY"),
                 (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                 # cross-origin isolation: the in-browser engine's WebAssembly threads need SharedArrayBuffer
                 (b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-embedder-policy", b"require-corp"),
                 (b"cross-origin-resource-policy", b"same-origin")]

        async def wrapped(msg):
            if msg["type"] == "http.response.start":
                have = {k.lower() for k, _ in msg.get("headers") or []}
                msg = {**msg, "headers": list(msg.get("headers") or []) + [h for h in extra if h[0] not in have]}
            await send(msg)

        return wrapped

    async def _with_body(self, scope, receive, send, headers):
        limit = self.sec.max_body
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await send_json(send, 413, {"error": _too_large(int(declared), limit)})
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, prefix="tinct-upload-")
        try:
            seen = 0
            with anyio.move_on_after(self.sec.body_timeout) as timer:
                while True:
                    msg = await receive()
                    if msg["type"] != "http.request":  # the client went away
                        return
                    body = msg.get("body", b"")
                    seen += len(body)
                    if seen > limit:
                        return await send_json(send, 413, {"error": _too_large(seen, limit, streamed=True)})
                    spool.write(body)
                    if not msg.get("more_body", False):
                        break
            if timer.cancelled_caught:
                return await send_json(send, 408, {"error": f"the request body did not arrive within "
                                                   f"{self.sec.body_timeout:g} s (--body-timeout)"}, close=True)
            spool.seek(0)
            done = False

            async def replay():
                nonlocal done
                if done:
                    return await receive()
                chunk = spool.read(CHUNK)
                done = len(chunk) < CHUNK and spool.tell() >= seen
                return {"type": "http.request", "body": chunk, "more_body": not done}

            await self.app(scope, replay, send)
        finally:
            spool.close()


def _too_large(n: int, limit: int, streamed: bool = False) -> str:
    size = f"over {limit / 2**20:.1f} MiB" if streamed else f"{n / 2**20:.1f} MiB"
    return f"upload of {size} is over the server's limit of {limit / 2**20:.1f} MiB (--max-upload-mb)"


async def send_json(send, status: int, body: dict, close: bool = False) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
