"""Interactive sessions of one server, and the one memory budget they share with the server's work in flight.

Sessions are isolated, bounded in number and memory (LRU), expired when idle.

Each entry holds the decoded photo (to switch engines without a new upload), one runtime ``Session``
and a lock: a session's updates run one at a time, in arrival order; a request carrying an older
sequence number than one already applied is refused as stale, so no stale image replaces a newer one.
Memory is charged per session when it is created (the photo, the preview canvas, the full-resolution
canvas it may build), from the canvas' own per-pixel cost; past ``max_bytes`` the least recently
used sessions are dropped. A session that alone exceeds ``max_bytes`` is refused (413).

The same ``max_bytes`` bounds work in flight (:meth:`SessionStore.hold`): decoding an upload, a one-shot
colorization, a full-resolution render, a new session while it is built. Held bytes are not a cache: to make
room they may drop idle sessions (least recently used first, never one that is working), but never each other;
work that does not fit waits up to ``wait_s`` for others to finish and then fails with :class:`ServerBusy`
(HTTP 503 with ``Retry-After``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from tinct.runtime.errors import InputError, TinctError, TooLargeError
from tinct.runtime.postprocess import Canvas


class SessionNotFound(TinctError):
    pass


class StaleUpdate(InputError):
    """An update older than one already applied (HTTP 409)."""


class ServerBusy(TinctError):
    """The memory budget (or a queue) is taken by work in flight: HTTP 503, try again after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: int = 2):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Entry:
    id: str
    image: np.ndarray  # the decoded photo, uint8 RGB
    engine_id: str
    session: object  # tinct.runtime.colorizer.Session or ExemplarSession
    nbytes: int
    filename: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    seq: int = -1  # the newest update applied
    reference: np.ndarray | None = None
    waiting: int = 0  # requests queued or running on it (serve.routes._in_turn)
    turns: dict = field(default_factory=dict)  # their asyncio.Lock per event loop (serve.routes._in_turn)

    @property
    def busy(self) -> bool:
        return self.waiting > 0 or self.lock.locked()

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


_PER_PIXEL: dict[tuple[str, bool], float] = {}


def canvas_bytes_per_pixel(kernel: str, rgba: bool = False) -> float:
    """Bytes a canvas keeps per pixel with this kernel (measured on a small canvas; ``rgba``: a preview's)."""
    key = (kernel, rgba)
    if key not in _PER_PIXEL:

        c = Canvas(np.zeros((64, 64, 3), np.uint8), kernel, rgba=rgba)
        c.render(np.zeros((2, 16, 16), np.float32))  # the numpy kernel allocates its planes here
        arrays = [v for v in vars(c).values() if isinstance(v, np.ndarray)]
        arrays += [v for v in (getattr(c, "_planes", None) or {}).values() if isinstance(v, np.ndarray)]
        owners = {id(a): a for a in arrays if a.base is None}  # views (``rgb`` of an RGBA buffer) own nothing
        n = sum(a.nbytes for a in owners.values() if a.size >= 64 * 64)  # per-pixel planes, not the tap tables
        _PER_PIXEL[key] = n / (64 * 64)
    return _PER_PIXEL[key]


def estimate_bytes(width: int, height: int, preview: tuple[int, int] | None, kernel: str) -> int:
    n = 3 * width * height + canvas_bytes_per_pixel(kernel) * width * height  # the photo + the full canvas
    if preview:
        n += canvas_bytes_per_pixel(kernel, rgba=True) * preview[0] * preview[1]
    cols = 2 * 4 * 256 * (width + (preview[0] if preview else 0))  # the kernel's x-upsampled model rows, per canvas
    return int(n + cols + 2 * 4 * 224 * 224 * 4)  # + model input/output buffers


class SessionStore:
    def __init__(self, max_sessions: int = 16, max_bytes: int = 2 << 30, idle_s: float = 900.0, wait_s: float = 10.0):
        self.max_sessions, self.max_bytes, self.idle_s, self.wait_s = max_sessions, max_bytes, idle_s, wait_s
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self.held = 0  # bytes of work in flight
        self.peak = 0  # the most ever charged (sessions + work in flight)
        self.evicted = 0
        self.expired = 0
        self.refused = 0  # ServerBusy answers

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def _expire(self, now: float) -> None:
        for sid in [k for k, e in self._entries.items() if now - e.last_used > self.idle_s]:
            del self._entries[sid]
            self.expired += 1

    def _fits(self, nbytes: int, keep: Entry | None) -> bool:
        """Under the lock: drop idle sessions (LRU, not ``keep``, not one at work) until ``nbytes`` more fit."""
        self._expire(time.monotonic())
        while self.nbytes + self.held + nbytes > self.max_bytes:
            victim = next((k for k, e in self._entries.items() if e is not keep and not e.busy), None)
            if victim is None:
                return False
            del self._entries[victim]
            self.evicted += 1
        return True

    def _reserve(self, nbytes: int, what: str, keep: Entry | None = None) -> None:
        if nbytes > self.max_bytes:
            raise TooLargeError(f"{what} needs about {nbytes / 2**20:.0f} MiB; the server allows "
                                f"{self.max_bytes / 2**20:.0f} MiB for all sessions and work (--max-memory)")
        deadline = time.monotonic() + self.wait_s
        with self._room:
            while not self._fits(nbytes, keep):
                left = deadline - time.monotonic()
                if left <= 0:
                    self.refused += 1
                    raise ServerBusy(f"the server's memory budget is taken by work in flight ({what} needs "
                                     f"{nbytes / 2**20:.0f} MiB, {(self.held + self.nbytes) / 2**20:.0f} of "
                                     f"{self.max_bytes / 2**20:.0f} MiB in use): try again in a few seconds")
                self._room.wait(left)
            self.held += nbytes
            self.peak = max(self.peak, self.held + self.nbytes)

    def _release(self, nbytes: int) -> None:
        with self._room:
            self.held -= nbytes
            self._room.notify_all()

    @contextmanager
    def hold(self, nbytes: int, what: str, keep: Entry | None = None):
        """Charge ``nbytes`` of work in flight for the ``with`` block (see the module doc); ``keep``: the session
        this work serves, never dropped to make its room."""
        self._reserve(int(nbytes), what, keep)
        try:
            yield
        finally:
            self._release(int(nbytes))

    def add(self, make_entry, nbytes: int) -> Entry:
        """Reserve ``nbytes`` (dropping idle sessions as needed), build ``make_entry(id)`` and insert it; its bytes
        stay charged to the session from then on."""
        self._reserve(nbytes, "this photo as a session")
        try:
            entry = make_entry(secrets.token_urlsafe(12))
        except BaseException:
            self._release(nbytes)
            raise
        with self._room:
            self.held -= nbytes  # now the session's own
            while len(self._entries) >= self.max_sessions:
                self._entries.popitem(last=False)
                self.evicted += 1
            self._entries[entry.id] = entry
            self._room.notify_all()
        return entry

    def grow(self, entry: Entry, nbytes: int, what: str) -> None:
        """Charge ``nbytes`` more to a session (a Color2Embed reference photo); :meth:`shrink` gives them back."""
        if nbytes <= 0:
            return self.shrink(entry, -nbytes)
        self._reserve(nbytes, what, keep=entry)
        with self._room:
            self.held -= nbytes
            if entry.id in self._entries:  # not dropped meanwhile (deleted, expired): the session keeps the bytes
                entry.nbytes += nbytes
            self._room.notify_all()

    def shrink(self, entry: Entry, nbytes: int) -> None:
        with self._room:
            entry.nbytes -= nbytes
            self._room.notify_all()

    def get(self, sid: str) -> Entry:
        with self._lock:
            now = time.monotonic()
            self._expire(now)
            e = self._entries.get(sid)
            if e is None:
                raise SessionNotFound(f"no session {sid!r} (it was deleted, expired after {self.idle_s:.0f} s idle, "
                                      "or dropped for a newer one: upload the photo again)")
            e.last_used = now
            self._entries.move_to_end(sid)
            return e

    def delete(self, sid: str) -> None:
        with self._room:
            if self._entries.pop(sid, None) is None:
                raise SessionNotFound(f"no session {sid!r}")
            self._room.notify_all()

    def stats(self) -> dict:
        with self._lock:
            return {"sessions": len(self._entries), "max_sessions": self.max_sessions,
                    "bytes": self.nbytes, "held_bytes": self.held, "peak_bytes": self.peak,
                    "max_bytes": self.max_bytes, "idle_s": self.idle_s, "evicted": self.evicted,
                    "expired": self.expired, "busy_refused": self.refused}
