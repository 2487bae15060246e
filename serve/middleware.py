"""ASGI middleware of ``tinct serve``: the upload limit, applied before the application reads a body."""

from __future__ import annotations

import json


class UploadLimit:
    """Request bodies over ``max_bytes`` answer 413 before the application sees them: at once from a
    declared Content-Length, else as soon as the streamed bytes pass the limit (the body is buffered here,
    at most ``max_bytes``, and replayed to the application)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await send_json(send, 413, {"error": self._message(int(declared))})
        chunks, seen = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # the client went away
                return
            body = msg.get("body", b"")
            seen += len(body)
            if seen > self.max_bytes:
                return await send_json(send, 413, {"error": self._message(seen, streamed=True)})
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


async def send_json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
