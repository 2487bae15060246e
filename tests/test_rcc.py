"""data.rcc: read back synthetic Qt resource bundles; corrupt files give clear errors."""

from __future__ import annotations

import struct
import zlib

import pytest

from tinct.data import rcc
from tinct.runtime.errors import TinctError


def _qt_hash(name: str) -> int:
    h = 0
    for ch in name:
        h = ((h << 4) + ord(ch)) & 0xFFFFFFFF
        h ^= (h & 0xF0000000) >> 23
        h &= 0x0FFFFFFF
    return h


def build_rcc(files: dict[str, bytes], compress: set[str] = frozenset(), version: int = 3) -> bytes:
    """A minimal ``rcc -binary`` writer: breadth-first tree, children contiguous (as Qt's rcc)."""
    tree: dict = {}
    for path, data in files.items():
        node = tree
        *dirs, leaf = path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = path
    names_blob, name_off = bytearray(), {}
    data_blob, data_off = bytearray(), {}

    def name_offset(name: str) -> int:
        if name not in name_off:
            name_off[name] = len(names_blob)
            enc = name.encode("utf-16-be")
            names_blob.extend(struct.pack(">HI", len(name), _qt_hash(name)) + enc)
        return name_off[name]

    # breadth-first numbering: node 0 is the root, each directory's children are contiguous
    nodes = [("", tree)]  # (name, dict or path)
    children_of = {}
    i = 0
    while i < len(nodes):
        name, content = nodes[i]
        if isinstance(content, dict):
            children_of[i] = (len(nodes), len(content))
            for child in sorted(content, key=_qt_hash):
                nodes.append((child, content[child]))
        i += 1
    node_blob = bytearray()
    for idx, (name, content) in enumerate(nodes):
        noff = name_offset(name) if idx else 0
        if isinstance(content, dict):
            first, count = children_of[idx]
            node_blob += struct.pack(">IHII", noff, rcc.FLAG_DIRECTORY, count, first)
        else:
            payload = files[content]
            flags = 0
            if content in compress:
                payload = struct.pack(">I", len(payload)) + zlib.compress(payload)
                flags = rcc.FLAG_COMPRESSED
            data_off[content] = len(data_blob)
            data_blob += struct.pack(">I", len(payload)) + payload
            node_blob += struct.pack(">IHHHI", noff, flags, 0, 0, data_off[content])
        if version >= 2:
            node_blob += struct.pack(">Q", 0)
    header_size = 24 if version >= 3 else 20
    tree_off = header_size
    data_start = tree_off + len(node_blob)
    names_start = data_start + len(data_blob)
    header = b"qres" + struct.pack(">IIII", version, tree_off, data_start, names_start)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + bytes(node_blob) + bytes(data_blob) + bytes(names_blob)


FILES = {
    "readme.txt": b"hello",
    "images/animals/cow.webp": bytes(range(256)) * 40,
    "images/animals/pig.webp": b"\x00" * 5000,
    "images/monuments/france/eiffel.webp": b"tower" * 300,
    "qml/Main.qml": "import QtQuick 2.0 // \u00e9\u00e8".encode(),
}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_roundtrip_nested_uncompressed_and_zlib(tmp_path, version):
    path = tmp_path / "x.rcc"
    path.write_bytes(build_rcc(FILES, compress={"images/animals/cow.webp", "qml/Main.qml"},
                               version=version))
    assert rcc.list_files(path) == sorted(FILES)
    for name, data in FILES.items():
        assert rcc.read_file(path, name) == data
    assert dict(rcc.iter_files(path)) == FILES
    arc = rcc.open_rcc(path)
    assert arc.compression("images/animals/cow.webp") == "zlib"
    assert arc.compression("readme.txt") == "none"
    assert arc.read(":/images/animals/pig.webp") == FILES["images/animals/pig.webp"]


def test_unicode_names(tmp_path):
    path = tmp_path / "u.rcc"
    path.write_bytes(build_rcc({"d\u00e9j\u00e0/\u00e9t\u00e9.txt": b"x"}))
    assert rcc.list_files(path) == ["d\u00e9j\u00e0/\u00e9t\u00e9.txt"]


def test_missing_member(tmp_path):
    path = tmp_path / "x.rcc"
    path.write_bytes(build_rcc(FILES))
    with pytest.raises(TinctError, match="no file 'nope.txt'"):
        rcc.read_file(path, "nope.txt")


def test_bad_magic(tmp_path):
    path = tmp_path / "x.rcc"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(rcc.RccError, match="missing 'qres' magic"):
        rcc.list_files(path)


@pytest.mark.parametrize("cut", [10, 30, 0.5, -3])
def test_truncated(tmp_path, cut):
    blob = build_rcc(FILES, compress={"images/animals/cow.webp"})
    n = int(len(blob) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(blob) + cut)
    path = tmp_path / "t.rcc"
    path.write_bytes(blob[:n])
    with pytest.raises(rcc.RccError) as info:
        for name in rcc.list_files(path):
            rcc.read_file(path, name)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg


def test_corrupt_zlib_stream(tmp_path):
    blob = bytearray(build_rcc({"a.bin": b"abc" * 1000}, compress={"a.bin"}))
    payload = zlib.compress(b"abc" * 1000)
    at = bytes(blob).find(payload)
    blob[at + 2: at + 12] = b"\xff" * 10
    path = tmp_path / "z.rcc"
    path.write_bytes(bytes(blob))
    with pytest.raises(rcc.RccError, match="corrupt zlib entry 'a.bin'"):
        rcc.read_file(path, "a.bin")


def test_tree_loop_is_rejected(tmp_path):
    blob = bytearray(build_rcc({"d/a.txt": b"x"}))
    # make the directory node 1 point back to the root as its first child
    tree_off = struct.unpack_from(">I", blob, 8)[0]
    struct.pack_into(">I", blob, tree_off + 22 + 10, 0)
    path = tmp_path / "loop.rcc"
    path.write_bytes(bytes(blob))
    with pytest.raises(rcc.RccError, match="corrupt tree"):
        rcc.list_files(path)


def test_unreadable_path(tmp_path):
    with pytest.raises(rcc.RccError, match="cannot read"):
        rcc.list_files(tmp_path / "absent.rcc")
