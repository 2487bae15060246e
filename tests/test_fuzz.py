"""The fuzz campaign (issue 15): every place a stranger's bytes enter tinct.

Each target says what may happen: a result that is right in shape and range, or tinct's own one-line
error (a ``TinctError``; exit 2 from the CLI); never another exception, never a traceback, never a file
written on failure, never a session changed by a failed edit. ``hypothesis.event`` labels the outcomes,
so ``make fuzz`` (10,000 cases per target, ``--hypothesis-show-statistics``) reports how many inputs
each target accepted and refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from fuzzing import fuzz_target
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image

from tinct.cli.main import main
from tinct.runtime.artifact import ArtifactError, check_graph, read_onnx_props
from tinct.runtime.hints import HintError, UserHint, parse_user_hints

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "data" / "samples" / "horses_herd.jpg"
MODEL = ROOT / "weights" / "icolorit-tiny.onnx"

# ----------------------------------------------------------------------------- shared strategies

_scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.integers(-5, 80)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=10)
            | st.sampled_from(["#00ff00", "#FFF", "#12345g", "NaN", " #0a0B0c ", "", "1e400"]))
_keys = st.sampled_from(["x", "y", "color", "hints", "z"]) | st.text(max_size=5)
_json = st.recursive(_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(_keys, c, max_size=4),
                     max_leaves=20)
_color = _scalars | st.lists(_scalars | st.integers(-5, 300), max_size=4)
_hint_dict = st.fixed_dictionaries({"x": _scalars, "y": _scalars, "color": _color}, optional={"z": _scalars})
_user_hint = st.builds(UserHint, _scalars | st.integers(0, 70), _scalars | st.integers(0, 50),
                       _color | st.tuples(*[st.integers(-3, 300)] * 3) | st.tuples(*[st.integers(0, 255)] * 3))


# valid material the mutations start from: most cases then reach the code past the first check
_good_color = (st.sampled_from(["#ff0000", "#00FF00", "#123456", " #0a0B0c "])
               | st.lists(st.integers(0, 255), min_size=3, max_size=3))
_good_hint = st.fixed_dictionaries({"x": st.integers(0, 31), "y": st.integers(0, 23), "color": _good_color})
_good_hints = st.lists(_good_hint, max_size=5, unique_by=lambda h: (h["x"], h["y"]))


@st.composite
def _mutated(draw, base):
    """``base`` bytes with 0-3 mutations: a byte replaced, bytes inserted, a cut, a chunk duplicated."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["replace", "insert", "cut", "dup"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "replace" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "cut":
            del data[i:]
        elif data:
            j = draw(st.integers(i, len(data)))
            data[j:j] = data[i:j]
    return bytes(data)


def _outcome(label: str) -> None:
    event(label)


# ----------------------------------------------------------------------------- hint parser

@fuzz_target(200)
@given(st.binary(max_size=600) | _mutated(_good_hints.map(lambda h: json.dumps(h).encode()))
       | _mutated(_good_hints.map(lambda h: json.dumps({"hints": h}, indent=1).encode("utf-16"))))
def test_hint_parser_bytes(data):
    """Any bytes as a hints file: hints inside the image, or a HintError."""
    try:
        hints = parse_user_hints(data, (32, 24))
    except HintError as exc:
        assert str(exc) and "\n" not in str(exc)
        return _outcome("refused")
    _outcome("accepted")
    assert all(0 <= h.x < 32 and 0 <= h.y < 24 for h in hints)


@fuzz_target(200)
@given(data=_json | st.lists(_hint_dict, max_size=4) | st.text(max_size=40) | _good_hints
       | st.lists(_good_hint | _hint_dict, max_size=4))
def test_hint_parser_values(data):
    """Decoded JSON of any shape (and hint-like objects with bad fields): valid hints or a HintError."""
    try:
        out = parse_user_hints(data, (32, 24), max_hints=3)
    except HintError as exc:
        assert str(exc) and "\n" not in str(exc)
        return _outcome("refused")
    _outcome("accepted" if out else "accepted (empty)")
    for h in out:
        assert isinstance(h, UserHint) and 0 <= h.x < 32 and 0 <= h.y < 24 and all(0 <= c <= 255 for c in h.rgb)


# ----------------------------------------------------------------------------- sessions

@lru_cache(maxsize=1)
def _colorizer():
    from tinct.runtime.backends import open_backend
    from tinct.runtime.colorizer import Colorizer

    return Colorizer(open_backend(MODEL, "onnxruntime", threads=1), max_hints=6)


_IMAGE = np.asarray(Image.open(PHOTO).convert("RGB").resize((64, 48)))


@lru_cache(maxsize=1)
def _session():
    return _colorizer().session(_IMAGE, postprocess="numpy")


def _snapshot(s):
    return s.hints, s.runs, s.colorize().copy()


def _check_output(s, out):
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert np.isfinite(s.ab_model).all()


_good_user_hint = st.builds(UserHint, st.integers(0, 63), st.integers(0, 47), st.tuples(*[st.integers(0, 255)] * 3))


@fuzz_target(150)
@given(st.lists(_good_user_hint, max_size=7, unique_by=lambda h: (h.x, h.y)) | _good_hints.map(
       lambda h: [dict(x, x=2 * x["x"], y=2 * x["y"]) for x in h])
       | st.lists(_user_hint | _hint_dict | _scalars, max_size=5) | st.lists(_user_hint, max_size=7)
       | _scalars | st.dictionaries(_keys, _scalars, max_size=3) | st.binary(max_size=30)
       | st.lists(_hint_dict, max_size=3).map(json.dumps))
def test_session_set_hints(value):
    """Session.set_hints with anything: the new result, or a HintError and the session exactly as it was."""
    s = _session()
    hints, runs, out = _snapshot(s)
    try:
        s.set_hints(value)
    except HintError as exc:
        assert str(exc) and "\n" not in str(exc)
        assert s.hints == hints and s.runs == runs
        assert np.array_equal(s.colorize(), out) and s.runs == runs  # nothing recomputed, nothing changed
        return _outcome("refused")
    _outcome("accepted")
    assert all(0 <= h.x < 64 and 0 <= h.y < 48 and all(0 <= c <= 255 for c in h.rgb) for h in s.hints)
    _check_output(s, s.colorize())


_grid = st.sampled_from([-1, 0, 5, 47, 63, 64])  # a few positions, so edits meet existing hints and edges
_pos = (st.tuples(_grid, _grid) | st.tuples(_grid, _grid) | st.tuples(st.integers(-2, 66), st.integers(-2, 50))
        | st.tuples(_scalars, _scalars))
_edit = st.one_of(
    st.tuples(st.just("add"), _pos, _good_color | _good_color | _color | st.tuples(*[st.integers(0, 255)] * 3)),
    st.tuples(st.just("add_hint"), _good_user_hint | _user_hint, st.none()),
    st.tuples(st.just("move"), _pos, _pos, st.none() | _good_color | _color),
    st.tuples(st.just("remove"), _pos),
)


@fuzz_target(40)
@given(st.lists(_edit, min_size=1, max_size=6))
def test_session_edits(edits):
    """add/move/remove with any arguments, then colorize: every failed edit leaves the hints as they were,
    and the incremental result always equals a one-shot colorize of the session's hints."""
    s = _colorizer().session(_IMAGE, postprocess="numpy")
    refused = 0
    for e in edits:
        before = s.hints
        try:
            if e[0] == "add":
                s.add_hint(e[1][0], e[1][1], e[2])
            elif e[0] == "add_hint":
                s.add_hint(e[1])
            elif e[0] == "move":
                s.move_hint(e[1], e[2], e[3])
            else:
                s.remove_hint(*e[1])
        except HintError as exc:
            assert str(exc) and "\n" not in str(exc)
            assert s.hints == before
            refused += 1
    _outcome(f"{len(edits) - refused} of {len(edits)} edits accepted" if refused else "all edits accepted")
    out = s.colorize().copy()
    _check_output(s, out)
    ref = _colorizer().colorize(_IMAGE, s.hints)
    assert np.array_equal(out, ref)


# ----------------------------------------------------------------------------- images

@fuzz_target(150)
@given(st.binary(max_size=3000), st.sampled_from([".png", ".jpg", ".tif", ".webp", ".gif", ".bmp"]))
def test_image_loader_bytes(tmp_path_factory, data, suffix):
    """Random bytes, truncated real files, a real header on random bytes: an image or an ImageError."""
    from tinct.runtime.image import ImageError, load_image

    d = tmp_path_factory.mktemp("img")
    real = PHOTO.read_bytes()
    for i, blob in enumerate((data, real[: len(data) % len(real)], real[:64] + data)):
        f = d / f"x{i}{suffix}"
        f.write_bytes(blob)
        try:
            img = load_image(f)
        except ImageError as exc:
            assert "\n" not in str(exc)
            _outcome("refused")
            continue
        _outcome("loaded")
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


# (mode, numpy dtype, sample maximum, the 8-bit level the loader must give a sample at 'frac' of the range)
_MODES = {
    "1": (bool, 1), "L": (np.uint8, 255), "LA": (np.uint8, 255), "P": (np.uint8, 255), "RGB": (np.uint8, 255),
    "RGBA": (np.uint8, 255), "CMYK": (np.uint8, 255), "YCbCr": (np.uint8, 255), "I;16": (np.uint16, 65535),
    "I;16B": (np.uint16, 65535), "I": (np.int32, None), "F": (np.float32, None),
}
_FORMATS = {"png": ("PNG", {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B"}),
            "tif": ("TIFF", {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I;16B", "I", "F"}),
            "jpg": ("JPEG", {"L", "RGB", "CMYK"}), "webp": ("WEBP", {"RGB", "RGBA"}), "bmp": ("BMP", {"1", "L", "P", "RGB"}),
            "gif": ("GIF", {"L", "P"})}


def _make_image(mode: str, w: int, h: int, frac: float) -> Image.Image:
    """A flat image of ``mode`` at ``frac`` of its range (gray where the mode has colour)."""
    if mode in ("I;16", "I;16B"):
        return Image.fromarray(np.full((h, w), round(frac * 65535), np.uint16)).convert(mode) \
            if mode == "I;16" else Image.new(mode, (w, h), round(frac * 65535))
    if mode == "I":
        return Image.fromarray(np.full((h, w), round(frac * 65535), np.int32))
    if mode == "F":
        return Image.fromarray(np.full((h, w), frac, np.float32))
    return Image.new("L", (w, h), round(frac * 255)).convert(mode)


def _png_lie(blob: bytes, w: int, h: int) -> bytes:
    """Rewrite a PNG's IHDR size (and its CRC, so the chunk itself looks valid)."""
    ihdr = bytearray(blob[16:29])
    ihdr[0:8] = struct.pack(">II", w, h)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    return blob[:16] + bytes(ihdr) + crc + blob[33:]


@fuzz_target(150)
@given(st.sampled_from(sorted(_MODES)), st.sampled_from(sorted(_FORMATS)), st.integers(1, 80), st.integers(1, 80),
       st.floats(0, 1), st.sampled_from(["intact", "truncated", "header lie"]), st.integers(0, 10**9),
       st.integers(1, 10**9), st.integers(1, 10**9))
def test_image_loader_generated(tmp_path_factory, mode, fmt, w, h, frac, damage, cut, lie_w, lie_h):
    """Real files of every mode, bit depth and format, intact, truncated or with a size that lies:
    intact ones load to the right size and brightness (32-bit samples are refused with the reason);
    damaged ones load or are refused in one line; nothing else."""
    from tinct.runtime.image import ImageError, load_image

    pil_fmt, modes = _FORMATS[fmt]
    if mode not in modes:
        mode = "L"
    buf = io.BytesIO()
    _make_image(mode, w, h, frac).save(buf, pil_fmt)
    blob = buf.getvalue()
    if damage == "truncated":
        blob = blob[: cut % max(len(blob), 1)]
    elif damage == "header lie":
        if fmt != "png":
            damage = "intact"
        else:
            blob = _png_lie(blob, lie_w, lie_h)
    f = tmp_path_factory.mktemp("gen") / f"x.{fmt}"
    f.write_bytes(blob)
    try:
        img = load_image(f, max_pixels=1_000_000)
    except ImageError as exc:
        assert "\n" not in str(exc) and f.name in str(exc)
        if damage == "intact":
            assert mode in ("I", "F") and "32-bit" in str(exc), str(exc)
        _outcome(f"refused ({damage})")
        return
    _outcome(f"loaded ({damage})")
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    if damage == "intact":
        assert mode not in ("I", "F")
        assert img.shape[:2] == (h, w)
        if fmt not in ("jpg", "webp") and mode not in ("1", "CMYK", "YCbCr"):  # lossless, gray kept gray
            want = round(frac * 255)
            assert abs(int(np.median(img)) - want) <= 1, (mode, fmt, frac, np.median(img))


# ----------------------------------------------------------------------------- artifact metadata

@fuzz_target(300)
@given(st.binary(max_size=2000))
def test_onnx_reader_garbage(tmp_path_factory, data):
    """Any bytes named .onnx: the props, or one 'not a readable ONNX file' error."""
    path = tmp_path_factory.mktemp("g") / "g.onnx"
    path.write_bytes(data)
    try:
        read_onnx_props(path)
    except ArtifactError as exc:
        assert "not a readable ONNX file" in str(exc)
        return _outcome("refused")
    _outcome("read")


_SHIPPED_PROPS = read_onnx_props(MODEL)
_TINCT_KEYS = sorted(k for k in _SHIPPED_PROPS if k.startswith("tinct."))
_prop_value = (st.text(max_size=30) | _json.map(json.dumps)
               | st.sampled_from(["fp32", "int8", "bf16", "fp16", "int3", "dynamic", "static", "none", "1", "2",
                                  "icolorit", "acolvit", "color2embed-colorizer", "{}", "[]", "null",
                                  '{"img_size": 224, "in_chans": 4, "depth": 12}', "[[1, 0], [0, 1]]",
                                  "9" * 5000, "[" * 3000]))


@fuzz_target(300)
@given(st.dictionaries(st.sampled_from(_TINCT_KEYS + ["tinct.static_gates"]), _prop_value | st.none(),
                       min_size=1, max_size=4))
def test_artifact_metadata_values(changes):
    """The shipped model's metadata with fields replaced (None: removed): what 'info', 'colorize', 'build'
    and the benchmarks read is parsed and checked against the graph, or refused with an ArtifactError."""
    from tinct.runtime.artifact import onnx_graph_summary
    from tinct.runtime.backends.base import meta_from_props

    props = dict(_SHIPPED_PROPS)
    for k, v in changes.items():
        if v is None:
            props.pop(k, None)
        else:
            props[k] = v
    try:
        meta = meta_from_props(props, "fuzz.onnx")
        check_graph("fuzz.onnx", meta, onnx_graph_summary(MODEL)["ops"], schema=props.get("tinct.schema"))
    except ArtifactError as exc:
        assert str(exc).startswith("fuzz.onnx") and "\n" not in str(exc), str(exc)
        return _outcome("refused")
    _outcome("accepted")
    assert meta.summary()


# ----------------------------------------------------------------------------- the CLI

@fuzz_target(100)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(
                        st.sampled_from(["kind", "results", "psnr", "bpsnr", "model", "backend", "precision",
                                         "median_ms", "10", "x"]), c, max_size=5),
                    max_leaves=15))
def test_bench_compare_inputs(tmp_path_factory, value):
    """Any JSON compared with itself: 0 (no regression) or 2 (not a result); never 1, never a traceback."""
    d = tmp_path_factory.mktemp("c")
    (d / "a.json").write_text(json.dumps(value))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(["bench", "compare", str(d / "a.json"), str(d / "a.json"), "--max-latency-increase", "10%"])
        except SystemExit as exc:  # argparse
            rc = exc.code
    assert rc in (0, 2) and "Traceback" not in err.getvalue(), err.getvalue()
    _outcome("compared" if rc == 0 else "refused")


@fuzz_target(40)
@given(st.lists(_hint_dict | st.fixed_dictionaries({"x": st.integers(0, 63), "y": st.integers(0, 47),
                                                     "color": st.sampled_from(["#ff0000", "#00ff00", "#123456"])}),
                max_size=4).map(json.dumps) | _json.map(json.dumps) | st.binary(max_size=200))
def test_colorize_cli_hint_files(tmp_path_factory, content):
    """`tinct colorize` with any hints file: exit 0 and a PNG of the input's size, or exit 2 with one line
    on stderr and no output file."""
    d = tmp_path_factory.mktemp("cli")
    photo = d / "in.png"
    Image.fromarray(_IMAGE).save(photo)
    hints = d / "h.json"
    hints.write_bytes(content.encode() if isinstance(content, str) else content)
    out = d / "out.png"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["colorize", str(photo), "--hints", str(hints), "-o", str(out), "--engine", str(MODEL),
                   "--threads", "1"])
    msg = err.getvalue()
    assert "Traceback" not in msg
    if rc == 0:
        assert Image.open(out).size == (64, 48)
        return _outcome("colorized")
    assert rc == 2 and msg.count("\n") == 1, (rc, msg)
    assert sorted(p.name for p in d.iterdir()) == ["h.json", "in.png"]
    _outcome("refused")


def test_fuzz_targets_are_marked():
    """Every hypothesis test in this file and in test_fuzz_serve.py is a fuzz target (so `make fuzz` runs all)."""
    import sys

    import test_fuzz_serve

    mods = (sys.modules[__name__], test_fuzz_serve)
    tests = [getattr(m, n) for m in mods for n in dir(m) if n.startswith("test_") and hasattr(getattr(m, n), "hypothesis")]
    assert len(tests) >= 13
    for t in tests:
        assert any(m.name == "fuzz" for m in getattr(t, "pytestmark", [])), t.__name__


def test_long_run_count_is_validated(monkeypatch):
    from fuzzing import ENV, long_run_examples

    monkeypatch.setenv(ENV, "lots")
    with pytest.raises(pytest.UsageError):
        long_run_examples()
    monkeypatch.setenv(ENV, "10000")
    assert long_run_examples() == 10000
