"""Input a hostile or careless user gives (issue 15): bounded resources, one line and a non-zero exit,
never a traceback, never a silently wrong image. The shipped icolorit-tiny runs where a model is needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinct.cli.main import main
from tinct.runtime.errors import MAX_THREADS

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "data" / "samples" / "horses_herd.jpg"
HINTS = ROOT / "data" / "samples" / "horses_herd_hints.json"


def _one_line_error(capsys, rc: int, want: str, code=(1, 2)) -> str:
    err = capsys.readouterr().err.strip()
    assert rc in code, err
    assert want in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("threads", ["-1", "100000", str(MAX_THREADS + 1), "two"])
def test_thread_counts_are_bounded(tmp_path, capsys, threads):
    with pytest.raises(SystemExit) as e:  # argparse: exit 2 before anything runs
        main(["colorize", str(PHOTO), "--hints", str(HINTS), "-o", str(tmp_path / "o.png"), "--threads", threads])
    _one_line_error(capsys, e.value.code, "--threads", code=(2,))
    assert not list(tmp_path.iterdir())


def test_bench_thread_list_is_bounded(capsys):
    rc = main(["bench", "latency", "--models", "icolorit-tiny", "--threads", "1,99999", "--rounds", "1"])
    _one_line_error(capsys, rc, "--threads 99999")


@pytest.mark.parametrize("content, want", [
    (b"\xff\xfe[{", "not UTF-8"),
    (("[{\"x\": 1" + "0" * 5000 + ", \"y\": 1, \"color\": \"#ffffff\"}]").encode(), "not valid JSON"),
    (b"[" * 100000, "not valid JSON"),
    (b" " * ((1 << 20) + 1), "larger than"),
])
def test_bad_hint_files(tmp_path, capsys, content, want):
    f = tmp_path / "h.json"
    f.write_bytes(content)
    rc = main(["colorize", str(PHOTO), "--hints", str(f), "-o", str(tmp_path / "o.png")])
    _one_line_error(capsys, rc, want)
    assert not (tmp_path / "o.png").exists()


def test_hints_from_a_device_are_refused(tmp_path, capsys):
    rc = main(["colorize", str(PHOTO), "--hints", "/dev/zero", "-o", str(tmp_path / "o.png")])
    _one_line_error(capsys, rc, "not a regular file")


def test_exemplar_model_without_reference(tmp_path, capsys):
    rc = main(["colorize", str(PHOTO), "--model", "color2embed-r18", "-o", str(tmp_path / "o.png")])
    _one_line_error(capsys, rc, "--reference")


def test_sixteen_bit_images_are_scaled_as_sixteen_bit(tmp_path, capsys):
    """A dark 16-bit photo stays dark (it came out ~257x too bright when its maximum was below 256)."""
    dark = tmp_path / "dark16.png"
    Image.fromarray(np.full((48, 64), 200, np.uint16)).save(dark)
    from tinct.runtime.image import load_image

    assert load_image(dark).max() <= 1
    rc = main(["colorize", str(dark), "-o", str(tmp_path / "o.png")])
    assert rc == 0, capsys.readouterr().err
    # dark: L stays ~0.3 whatever the model's ab adds (the bug gave a mid-gray photo, values ~200)
    assert np.asarray(Image.open(tmp_path / "o.png")).max() <= 32


@pytest.mark.parametrize("mode, array", [("F", np.full((16, 16), 0.5, np.float32)),
                                         ("I", np.full((16, 16), 60000, np.int32))])
def test_thirty_two_bit_samples_are_refused_not_guessed(tmp_path, capsys, mode, array):
    f = tmp_path / "x.tif"
    Image.fromarray(array).save(f)
    assert Image.open(f).mode == mode
    rc = main(["colorize", str(f), "-o", str(tmp_path / "o.png")])
    _one_line_error(capsys, rc, "32-bit")
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("key, value, want", [
    ("tinct.config", "[1, 2]", "'config' is a list"),
    ("tinct.config", '"text"', "'config' is a str"),
    ("tinct.hint_protocol", '"x"', "'hint_protocol' is a str"),
    ("tinct.extra", "[]", "'extra' is a list"),
    ("tinct.precision", "int3", "unknown precision"),
    ("tinct.gating", "sometimes", "unknown gating"),
    ("tinct.static_gates", "[[1, 2, 3]]", "static_gates"),
    ("tinct.config", "1" * 5000, "corrupt tinct metadata"),
])
def test_metadata_of_the_wrong_shape_is_one_line(tmp_path, capsys, key, value, want):
    """An artifact whose metadata JSON has the wrong type: info and colorize say so in one line."""
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(ROOT / "weights" / "icolorit-tiny.onnx"))
    for p in m.metadata_props:
        if p.key == key:
            p.value = value
            break
    else:
        m.metadata_props.add(key=key, value=value)
    bad = tmp_path / "bad.onnx"
    onnx.save(m, str(bad))
    _one_line_error(capsys, main(["info", str(bad)]), want)
    rc = main(["colorize", str(PHOTO), "--engine", str(bad), "-o", str(tmp_path / "o.png")])
    _one_line_error(capsys, rc, want)
    assert not (tmp_path / "o.png").exists()


def test_session_refuses_bad_hint_objects_and_stays_usable():
    from tinct.runtime.backends import open_backend
    from tinct.runtime.colorizer import Colorizer
    from tinct.runtime.hints import HintError, UserHint

    img = np.asarray(Image.open(PHOTO).convert("RGB"))
    with open_backend(ROOT / "weights" / "icolorit-tiny.onnx", threads=1) as b:
        s = Colorizer(b).session(img)
        for bad in (5, UserHint(3, 3, (300, 0, 0)), [UserHint(3, 3, (1, 2))], [UserHint(3, 3, ("a", 0, 0))],
                    [UserHint(10**9, 3, (1, 2, 3))]):
            with pytest.raises(HintError):
                s.set_hints(bad if isinstance(bad, (int, list)) else [bad])
        with pytest.raises(HintError):
            s.add_hint(UserHint(3, 3, (0, 0, 256)))
        s.set_hints([UserHint(3, 3, (10, 200, 30))])  # still usable afterwards
        assert s.colorize().shape == img.shape


def test_nan_outputs_are_an_error_not_a_black_image(tmp_path):
    from tinct.runtime.colorizer import Colorizer, ModelOutputError

    class NaNBackend:
        threads = 1

        def run_x(self, x):
            out = np.zeros((1, 2, 224, 224), np.float32)
            out[0, 0, 5, 5] = np.nan
            return out

    s = Colorizer(NaNBackend()).session(np.zeros((40, 50, 3), np.uint8))
    with pytest.raises(ModelOutputError, match="1 NaN/inf"):
        s.colorize()


def test_unwritable_output_directory_is_refused_before_the_model_runs(tmp_path, capsys, monkeypatch):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    # as root, permission bits are not enforced: simulate what a normal user meets
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if Path(p) == ro else real(p, mode, **k))
    rc = main(["colorize", str(PHOTO), "--hints", str(HINTS), "-o", str(ro / "o.png")])
    err = _one_line_error(capsys, rc, "not writable")
    assert "model" not in err and not list(ro.iterdir())


def test_export_of_random_bytes_is_one_line(tmp_path, capsys):
    pytest.importorskip("torch")
    f = tmp_path / "r.safetensors"
    f.write_bytes(np.random.default_rng(0).bytes(5000))
    rc = main(["export", str(f), "-o", str(tmp_path / "r.onnx")])
    _one_line_error(capsys, rc, "cannot read")
    assert not (tmp_path / "r.onnx").exists()


def test_an_unexpected_exception_is_one_line_and_exit_70(monkeypatch, capsys):
    from tinct.cli import info

    def boom(args):
        raise KeyError("surprise")

    monkeypatch.setattr(info, "run", boom)
    rc = main(["info", str(ROOT / "weights" / "icolorit-tiny.onnx")])
    err = capsys.readouterr().err
    assert rc == 70 and err.count("\n") == 1 and "internal error" in err and "--debug" in err
    assert "Traceback" not in err
    rc = main(["--debug", "info", str(ROOT / "weights" / "icolorit-tiny.onnx")])
    assert rc == 70 and "Traceback" in capsys.readouterr().err


_GRAPH_CLAIMS = [
    ("icolorit-tiny", "tinct.precision", "int8", "no quantize/dequantize"),
    ("acolvit-tiny-0.5", "tinct.precision", "fp16", "no float16 weights"),  # its weights made FP32 below
    ("icolorit-tiny", "tinct.gating", "dynamic", "gating"),
    ("acolvit-tiny-0.5", "tinct.gating", "none", "24 If nodes"),
    ("icolorit-tiny", "tinct.schema", "2", "schema"),
]


# fp16 weights are an ONNX claim (OpenVINO reads the graph's own types), so that one is checked on ONNX Runtime only
@pytest.mark.parametrize("backend, model, key, value, want",
                         [(b, *c) for b in ("onnxruntime", "openvino") for c in _GRAPH_CLAIMS
                          if not (b == "openvino" and c[2] == "fp16")])
def test_metadata_is_checked_against_the_graph(tmp_path, capsys, model, key, value, want, backend):
    """Claims the graph contradicts are refused on load, by every backend (info, colorize, build, bench)."""
    onnx = pytest.importorskip("onnx")
    if backend == "openvino":
        pytest.importorskip("openvino")
    from tinct.runtime.artifact import ArtifactError
    from tinct.runtime.backends import open_backend

    m = onnx.load(str(ROOT / "weights" / f"{model}.onnx"))
    if value == "fp16":  # shipped ONNX may store FP16 weights (cast to float32 at load): make every one FP32
        from onnx import numpy_helper

        for i, t in enumerate(m.graph.initializer):
            if t.data_type == onnx.TensorProto.FLOAT16:
                m.graph.initializer[i].CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(t).astype("float32"), t.name))
    next(p for p in m.metadata_props if p.key == key).value = value
    bad = tmp_path / "bad.onnx"
    onnx.save(m, str(bad))
    with pytest.raises(ArtifactError, match=want):
        open_backend(bad, backend, threads=1)
    if backend == "onnxruntime":
        _one_line_error(capsys, main(["info", str(bad)]), want)
