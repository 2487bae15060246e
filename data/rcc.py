"""A small reader for Qt binary resource bundles (``.rcc`` files, as written by ``rcc -binary``).

GCompris ships its activity images inside such bundles. The layout (all integers big-endian):

Header (20 bytes, 24 from version 3)::

    b"qres" | version u32 | tree offset u32 | data offset u32 | names offset u32 [| flags u32 (v>=3)]

Tree: an array of fixed-size nodes starting at the tree offset; node ``i`` is at
``tree + i * node_size`` with ``node_size`` 14 bytes (version 1) or 22 bytes (version >= 2, which
appends a u64 last-modified time). Node 0 is the root directory. Each node is::

    name offset u32 | flags u16 | directory: child count u32, first child index u32
                                | file:      country u16, language u16, data offset u32
                                [| last modified u64 (v>=2)]

``flags``: 0x01 zlib-compressed, 0x02 directory, 0x04 zstd-compressed. The children of a directory
are the nodes ``first .. first + count - 1``.

Names (at names offset + name offset): ``length u16`` (UTF-16 code units), ``hash u32``, then the
name in UTF-16BE.

Data (at data offset + data offset): ``size u32`` then ``size`` bytes. A zlib entry's bytes are
``qCompress`` output: a u32 uncompressed length followed by a zlib stream. A zstd entry's bytes are
a zstd frame (decoded with the optional ``zstandard`` package, imported only when such an entry is
read; the GCompris bundles used by tinct contain none).

API: :func:`list_files`, :func:`read_file`, :func:`iter_files`. Any structural problem (bad magic,
truncation, offsets out of range, a corrupt compressed stream) raises :class:`RccError`, a
:class:`runtime.errors.TinctError` with a one-line message.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Iterator

from tinct.runtime.errors import TinctError

MAGIC = b"qres"
FLAG_COMPRESSED = 0x01
FLAG_DIRECTORY = 0x02
FLAG_COMPRESSED_ZSTD = 0x04

__all__ = ["RccError", "RccArchive", "list_files", "read_file", "iter_files"]


class RccError(TinctError):
    """A malformed or truncated .rcc file."""


class RccArchive:
    """A parsed .rcc bundle held in memory. Paths are ``/``-separated, without a leading slash."""

    def __init__(self, data: bytes, source: str = "<bytes>"):
        self._buf = memoryview(data)
        self.source = source
        if len(data) < 20 or bytes(self._buf[:4]) != MAGIC:
            raise RccError(f"{source}: not a Qt resource bundle (missing 'qres' magic)")
        self.version, self._tree, self._data, self._names = struct.unpack_from(">4I", data, 4)
        if self.version not in (1, 2, 3):
            raise RccError(f"{source}: unsupported .rcc format version {self.version}")
        self.flags = self._u32(20) if self.version >= 3 else 0
        self._node_size = 14 if self.version == 1 else 22
        self._entries: dict[str, tuple[int, int]] = {}  # path -> (flags, data offset)
        self._walk(0, "", depth=0)

    # -- low level, with bounds checks so truncation is a clear error
    def _need(self, off: int, size: int, what: str) -> None:
        if off < 0 or off + size > len(self._buf):
            raise RccError(f"{self.source}: truncated or corrupt file ({what} at offset {off} "
                           f"runs past the end, {len(self._buf)} bytes)")

    def _u32(self, off: int, what: str = "header") -> int:
        self._need(off, 4, what)
        return struct.unpack_from(">I", self._buf, off)[0]

    def _name(self, name_off: int) -> str:
        off = self._names + name_off
        self._need(off, 6, "name")
        (length,) = struct.unpack_from(">H", self._buf, off)
        self._need(off + 6, 2 * length, "name")
        try:
            return bytes(self._buf[off + 6: off + 6 + 2 * length]).decode("utf-16-be")
        except UnicodeDecodeError as exc:
            raise RccError(f"{self.source}: corrupt name at offset {off}: {exc}") from None

    def _node(self, index: int) -> tuple[int, int, int, int]:
        off = self._tree + index * self._node_size
        self._need(off, self._node_size, f"tree node {index}")
        name_off, flags = struct.unpack_from(">IH", self._buf, off)
        a, b = struct.unpack_from(">II", self._buf, off + 6) if flags & FLAG_DIRECTORY else \
            (0, struct.unpack_from(">I", self._buf, off + 10)[0])
        return name_off, flags, a, b

    def _walk(self, index: int, prefix: str, depth: int) -> None:
        if depth > 64:
            raise RccError(f"{self.source}: corrupt tree (directories nested more than 64 deep)")
        _, flags, count, first = self._node(index)
        if not flags & FLAG_DIRECTORY:
            raise RccError(f"{self.source}: corrupt tree (root node is not a directory)")
        for child in range(first, first + count):
            if child <= index:
                raise RccError(f"{self.source}: corrupt tree (node {index} points back to {child})")
            name_off, cflags, _, data_off = self._node(child)
            path = prefix + self._name(name_off)
            if cflags & FLAG_DIRECTORY:
                self._walk(child, path + "/", depth + 1)
            else:
                self._entries[path] = (cflags, data_off)

    # -- public
    def names(self) -> list[str]:
        return sorted(self._entries)

    def read(self, name: str) -> bytes:
        name = name.lstrip("/")
        if name.startswith(":/"):
            name = name[2:]
        try:
            flags, data_off = self._entries[name]
        except KeyError:
            raise RccError(f"{self.source}: no file {name!r} in the bundle") from None
        off = self._data + data_off
        size = self._u32(off, f"data of {name!r}")
        self._need(off + 4, size, f"data of {name!r}")
        raw = bytes(self._buf[off + 4: off + 4 + size])
        if flags & FLAG_COMPRESSED:
            if size < 4:
                raise RccError(f"{self.source}: corrupt compressed entry {name!r}")
            (expected,) = struct.unpack_from(">I", raw, 0)
            try:
                out = zlib.decompress(raw[4:])
            except zlib.error as exc:
                raise RccError(f"{self.source}: corrupt zlib entry {name!r}: {exc}") from None
            if len(out) != expected:
                raise RccError(f"{self.source}: entry {name!r} decompressed to {len(out)} bytes, "
                               f"header says {expected}")
            return out
        if flags & FLAG_COMPRESSED_ZSTD:
            try:
                import zstandard
            except ModuleNotFoundError:
                raise RccError(f"{self.source}: entry {name!r} is zstd-compressed; "
                               "install the 'zstandard' package to read it") from None
            try:
                return zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 30)
            except zstandard.ZstdError as exc:
                raise RccError(f"{self.source}: corrupt zstd entry {name!r}: {exc}") from None
        return raw

    def compression(self, name: str) -> str:
        flags = self._entries[name][0]
        return "zlib" if flags & FLAG_COMPRESSED else "zstd" if flags & FLAG_COMPRESSED_ZSTD else "none"


def open_rcc(path: str | Path) -> RccArchive:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RccError(f"cannot read {path}: {exc.strerror}") from None
    return RccArchive(data, source=str(path))


def list_files(path: str | Path) -> list[str]:
    """Sorted paths of all files in the bundle (e.g. ``gcompris/src/activities/.../cow.jpg``)."""
    return open_rcc(path).names()


def read_file(path: str | Path, name: str) -> bytes:
    """The (decompressed) contents of one file of the bundle."""
    return open_rcc(path).read(name)


def iter_files(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, bytes)`` for every file, in sorted order (parses the bundle once)."""
    arc = open_rcc(path)
    for name in arc.names():
        yield name, arc.read(name)
