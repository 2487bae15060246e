"""`tinct colorize/info/build/doctor` end to end, and every bad input as one stderr line with no output file."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image
from test_runtime import DEMO_HINTS, PHOTOS

from tinct.cli.main import main

PHOTO = PHOTOS / "horses_herd.jpg"


@pytest.fixture(scope="module")
def onnx_path(tiny_models):
    return tiny_models.icolorit[0]


def _fails(capsys, argv, out_path=None, match=None):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith("tinct: error:")
    if match:
        assert match in err, err
    if out_path is not None:
        assert not out_path.exists()
        assert not [p for p in out_path.parent.iterdir() if p.name.startswith("." + out_path.name)]
    return err


def test_colorize_end_to_end_onnxruntime_and_openvino(onnx_path, tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["colorize", str(PHOTO), "--hints", str(DEMO_HINTS), "-o", str(out), "--engine", str(onnx_path),
                 "--threads", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1 and "onnxruntime" in line and "ms" in line
    a = np.asarray(Image.open(out))
    assert a.shape == (224, 224, 3)
    if importlib.util.find_spec("openvino"):
        xml = tmp_path / "tiny.xml"
        assert main(["build", str(onnx_path), "--backend", "openvino", "-o", str(xml)]) == 0
        out2 = tmp_path / "demo_ov.png"
        assert main(["colorize", str(PHOTO), "--hints", str(DEMO_HINTS), "-o", str(out2), "--engine", str(xml)]) == 0
        b = np.asarray(Image.open(out2))
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_info_and_doctor(onnx_path, capsys):
    assert main(["info", str(onnx_path)]) == 0
    out = capsys.readouterr().out
    assert "icolorit-tiny" in out and "sha256" in out and "If nodes" in out and "tinct.normalization" in out
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out and "tensorrt" in out and "cpu flags" in out


def test_doctor_compares_backends(onnx_path, capsys):
    assert main(["doctor", str(onnx_path), "--repeat", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "reference" in out and "tensorrt" in out
    if importlib.util.find_spec("openvino"):
        line = next(ln for ln in out.splitlines() if "openvino CPU f32" in ln)
        assert float(line.split("max_abs")[1].split()[0]) <= 1e-4


def test_bad_images(onnx_path, tmp_path, capsys):
    out = tmp_path / "o.png"
    base = ["colorize", "--engine", onnx_path, "-o", out]
    _fails(capsys, base[:1] + [tmp_path / "missing.png"] + base[1:], out, "does not exist")
    (tmp_path / "text.png").write_text("hello, I am not a PNG")
    _fails(capsys, base[:1] + [tmp_path / "text.png"] + base[1:], out, "not an image")
    data = PHOTO.read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 3])
    _fails(capsys, base[:1] + [tmp_path / "trunc.jpg"] + base[1:], out, "truncated")
    _fails(capsys, base[:1] + [PHOTO] + base[1:] + ["--max-pixels", "1000"], out, "over the limit")


@pytest.mark.parametrize("hints, match", [
    ("{not json", "not valid JSON"),
    ('{"a": 1}', "must be a JSON list"),
    ('[{"x": 1, "y": 2}]', "missing color"),
    ('[{"x": 1, "y": 2, "color": "#fff", "z": 0}]', "unknown field"),
    ('[{"x": 500, "y": 2, "color": "#ffffff"}]', "outside the image"),
    ('[{"x": 1.5, "y": 2, "color": "#ffffff"}]', "whole pixel"),
    ('[{"x": 1, "y": 2, "color": "red"}]', "is not '#rrggbb'"),
    ('[{"x": 1, "y": 2, "color": [1, 2]}]', "3 components"),
    ('[{"x": 1, "y": 2, "color": [1, 2, 300]}]', "0..255"),
    ('[{"x": 1, "y": 2, "color": "#ffffff"}, {"x": 1, "y": 2, "color": "#000000"}]', "duplicate"),
    ('[1]', "expected an object"),
])
def test_bad_hints(onnx_path, tmp_path, capsys, hints, match):
    h = tmp_path / "h.json"
    h.write_text(hints)
    out = tmp_path / "o.png"
    _fails(capsys, ["colorize", PHOTO, "--hints", h, "-o", out, "--engine", onnx_path], out, match)


def test_bad_artifacts_and_outputs(onnx_path, tmp_path, capsys):
    import onnx
    out = tmp_path / "o.png"
    args = ["colorize", PHOTO, "--hints", DEMO_HINTS, "-o", out]
    (tmp_path / "model.txt").write_text("weights")
    _fails(capsys, args + ["--engine", tmp_path / "model.txt"], out, "not a tinct artifact")
    _fails(capsys, args + ["--engine", tmp_path / "absent.onnx"], out, "does not exist")
    mp = onnx.load(str(onnx_path))
    del mp.metadata_props[:]
    onnx.save(mp, str(tmp_path / "plain.onnx"))
    _fails(capsys, args + ["--engine", tmp_path / "plain.onnx"], out, "no tinct metadata")
    mp = onnx.load(str(onnx_path))
    for p in mp.metadata_props:
        if p.key == "tinct.normalization":
            p.value = json.dumps({"ab_norm": 100.0, "l_cent": 50.0, "l_norm": 100.0})
    onnx.save(mp, str(tmp_path / "norm.onnx"))
    _fails(capsys, args + ["--engine", tmp_path / "norm.onnx"], out, "normalization")
    mp = onnx.load(str(onnx_path))
    extra = {"tinct.architecture": "acolvit", "tinct.gating": "static", "tinct.static_gates": "[[1, 1]]"}
    for p in mp.metadata_props:
        if p.key in extra:
            p.value = extra.pop(p.key)
    for k, v in extra.items():
        q = mp.metadata_props.add()
        q.key, q.value = k, v
    onnx.save(mp, str(tmp_path / "gates.onnx"))
    _fails(capsys, args + ["--engine", tmp_path / "gates.onnx"], out, "static_gates")
    (tmp_path / "foreign.engine").write_bytes(b"trtexec engine bytes")
    _fails(capsys, args + ["--engine", tmp_path / "foreign.engine"], out)
    missing_dir = tmp_path / "nope" / "o.png"
    _fails(capsys, ["colorize", PHOTO, "-o", missing_dir, "--engine", onnx_path], None, "does not exist")
    _fails(capsys, ["colorize", PHOTO, "-o", tmp_path / "o.bmp", "--engine", onnx_path], None, "unsupported")
    assert not (tmp_path / "o.bmp").exists()


def test_build_errors_leave_nothing(onnx_path, tmp_path, capsys):
    _fails(capsys, ["build", onnx_path, "--backend", "openvino", "-o", tmp_path / "x.bin"], None, ".xml")
    _fails(capsys, ["build", onnx_path, "--backend", "openvino", "-o", tmp_path / "no" / "x.xml"], None,
           "does not exist")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    _fails(capsys, ["build", tmp_path / "junk.onnx", "--backend", "openvino", "-o", tmp_path / "j.xml"], None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.onnx"]
