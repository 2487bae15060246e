"""Interactive sessions of one server: isolated, bounded in number and memory (LRU), expired when idle.

Each entry holds the decoded photo (to switch engines without a new upload), one runtime ``Session``
and a lock: a session's updates run one at a time, in arrival order; a request carrying an older
sequence number than one already applied is refused as stale, so no stale image replaces a newer one.
Memory is charged per session when it is created (the photo, the preview canvas, the full-resolution
canvas it may build), from the canvas' own per-pixel cost; past ``max_bytes`` the least recently
used sessions are dropped. A session that alone exceeds ``max_bytes`` is refused (413).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from tinct.runtime.errors import InputError, TinctError, TooLargeError
from tinct.runtime.postprocess import Canvas


class SessionNotFound(TinctError):
    pass


class StaleUpdate(InputError):
    """An update older than one already applied (HTTP 409)."""


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
    def __init__(self, max_sessions: int = 16, max_bytes: int = 2 << 30, idle_s: float = 900.0):
        self.max_sessions, self.max_bytes, self.idle_s = max_sessions, max_bytes, idle_s
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def _expire(self, now: float) -> None:
        for sid in [k for k, e in self._entries.items() if now - e.last_used > self.idle_s]:
            del self._entries[sid]
            self.expired += 1

    def add(self, make_entry, nbytes: int) -> Entry:
        """Make room (idle ones first, then least recently used), then insert ``make_entry(id)``."""
        if nbytes > self.max_bytes:
            raise TooLargeError(f"this photo needs about {nbytes / 2**20:.0f} MiB as a session; the server allows "
                           f"{self.max_bytes / 2**20:.0f} MiB for all sessions (--max-session-memory)")
        entry = make_entry(secrets.token_urlsafe(12))
        with self._lock:
            self._expire(time.monotonic())
            while self._entries and (len(self._entries) >= self.max_sessions
                                     or self.nbytes + nbytes > self.max_bytes):
                self._entries.popitem(last=False)
                self.evicted += 1
            self._entries[entry.id] = entry
        return entry

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
        with self._lock:
            if self._entries.pop(sid, None) is None:
                raise SessionNotFound(f"no session {sid!r}")

    def stats(self) -> dict:
        with self._lock:
            return {"sessions": len(self._entries), "max_sessions": self.max_sessions,
                    "bytes": self.nbytes, "max_bytes": self.max_bytes, "idle_s": self.idle_s,
                    "evicted": self.evicted, "expired": self.expired}
