"""Connection limits of ``tinct serve``, below ASGI: uvicorn's HTTP protocol with two more rules.

- **Header timeout**: a connection must complete a request's header within ``header_timeout`` seconds of its
  first byte (or of opening, for the first request); otherwise it is closed. uvicorn closes idle keep-alive
  connections after ``timeout_keep_alive`` but waits forever for a header that never ends, so half-sent
  headers used to hold a file descriptor each until the process ran out of them.
- **Connection limit**: past ``max_connections`` open connections a new one is closed at once, so the process
  keeps file descriptors for its work (and raises its own soft limit to the hard one when it starts).

The rules wrap whichever protocol uvicorn would pick (``httptools`` when installed, else ``h11``) through the
attributes both share (``connections``, ``transport``, ``cycle``); :func:`protocol_class` builds the class.
"""

from __future__ import annotations

import resource

from uvicorn.protocols.http.auto import AutoHTTPProtocol

RESERVED_FDS = 64  # descriptors kept for files, engines and the log beyond the connections


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def protocol_class(header_timeout: float, max_connections: int, base=AutoHTTPProtocol):
    """``base`` with the header timeout and the connection limit (see the module doc)."""

    class Guarded(base):
        def connection_made(self, transport):
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self.connections.discard(self)
                transport.abort()
                return
            self._header_timer = None
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()  # bytes of a new request: its header must complete in time
            super().data_received(data)

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(header_timeout, self._header_late, self.cycle)

        def _disarm(self) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
            self._header_timer = None

        def _header_late(self, cycle_then) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self.transport.get_protocol() is not self:  # closed, or a WebSocket now
                return
            if self.cycle is not cycle_then and self.cycle is not None:  # a request began: its header completed
                return
            self.transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded
