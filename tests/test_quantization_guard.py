"""tinct quantize: the guard, BF16, refusals, recipes, --precision auto, tinct doctor (tiny models).

Calibration and guard images come from the fixture photos (the corpus is never needed:
TINCT_DATA points at an empty directory).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from quantization_common import (  # noqa: F401 - fixtures and helpers shared by the quantization tests
    COMMON,
    FIXTURES,
    _check_meta,
    _int8_weight_peak,
    _meta,
    _no_corpus,
    _run_runtime,
    _tinct,
)


def test_bf16_openvino(icolorit_onnx, tmp_path):
    pytest.importorskip("openvino")
    from tinct.runtime.cpu import has_native_bf16

    if not has_native_bf16():
        pytest.skip("this CPU has no AVX512-BF16/AMX-BF16: OpenVINO BF16 is refused here")
    out = tmp_path / "bf16.xml"
    assert _tinct("quantize", icolorit_onnx, "--precision", "bf16", "--backend", "openvino", "--no-progress",
                  "-o", out) == 0
    _check_meta(out, icolorit_onnx, "bf16", int8=False)
    from tinct.runtime.backends import open_backend

    with open_backend(out, threads=1) as b:
        desc = b.describe()
        assert desc["inference_precision"] == "bf16"
        assert list(desc["f32_layers"].values()) == ["f32"]  # the patch embedding (AMX's broken bf16 conv)
    assert _meta(out).extra["quantization"]["f32_layers"] == "the patch embedding"
    _run_runtime(out)


def test_bf16_refused_without_cpu_support(icolorit_onnx, tmp_path, monkeypatch, capsys):
    """A laptop-class CPU (ONEDNN_MAX_CPU_ISA=AVX2): one line naming the missing instruction set."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    out = tmp_path / "bf16.xml"
    assert _tinct("quantize", icolorit_onnx, "--precision", "bf16", "--backend", "openvino", "-o", out) == 1
    err = capsys.readouterr().err
    assert "AVX512_BF16" in err and "AVX2" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_bf16_refused_by_its_guard_writes_nothing(icolorit_onnx, tmp_path, monkeypatch, capsys):
    """A BF16 artifact that misses its guard (as plain bf16 did on AMX CPUs) is refused in one line and
    nothing is written."""
    pytest.importorskip("openvino")
    from tinct.runtime.cpu import missing_isa
    from tinct.verify import guard

    if missing_isa("bf16"):
        pytest.skip(f"this CPU cannot run bf16: {missing_isa('bf16')}")

    def enforce(report, budget, what, max_mean_ab=None):
        raise guard.GuardError(f"{what}: simulated kernel failure; nothing written")

    monkeypatch.setattr(guard, "enforce", enforce)
    out = tmp_path / "bf16.xml"
    assert _tinct("quantize", icolorit_onnx, "--precision", "bf16", "--backend", "openvino", "--no-progress",
                  "-o", out) == 1
    err = capsys.readouterr().err
    assert "simulated kernel failure" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_guard_rejects_broken_calibration(icolorit_onnx, tmp_path, capsys, monkeypatch):
    """Calibration on all-zero inputs collapses the activation ranges: the guard must refuse the
    artifact (non-zero exit, clear message) and leave nothing behind."""
    from tinct.quantization import calibration

    monkeypatch.setattr(calibration.CalibrationSet, "__getitem__",
                        lambda self, i: np.zeros((1, 4, 224, 224), np.float32))
    out = tmp_path / "out" / "i8.onnx"
    out.parent.mkdir()
    rc = _tinct("quantize", icolorit_onnx, "--precision", "int8", *COMMON, "-o", out)
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "does not reproduce its parent" in err or "PSNR@10 drops" in err
    assert "nothing written" in err
    assert not list(out.parent.iterdir())


def test_acolvit_nncf_route_refused(acolvit_onnx, tmp_path, capsys):
    out = tmp_path / "a8.xml"
    assert _tinct("quantize", acolvit_onnx, "--precision", "int8", "--backend", "openvino", "--ov-route", "nncf",
                  *COMMON, "-o", out) == 1
    assert "NNCF" in capsys.readouterr().err and not out.exists()


def test_refuses_non_fp32_parent_and_bad_route(icolorit_onnx, tmp_path, capsys):
    assert _tinct("quantize", icolorit_onnx, "--precision", "bf16", "-o", tmp_path / "x.onnx") == 1
    assert "OpenVINO" in capsys.readouterr().err
    assert _tinct("quantize", icolorit_onnx, "--precision", "int8", "--backend", "openvino",
                  "-o", tmp_path / "x.onnx") == 1


def test_guard_refuses_nan_outputs_that_psnr_cannot_see():
    """A child that emits NaN on a few pixels keeps a finite PSNR (the uint8 cast maps NaN to a
    number); the guard must still refuse it."""
    from PIL import Image

    from tinct.verify import guard

    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((224, 224)))
                       for p in sorted(FIXTURES.glob("*.jpg"))[:2]])
    names = [f"img{i}" for i in range(len(images))]

    def parent(x):
        return np.zeros((x.shape[0], 2, 224, 224), np.float32), None

    def child(x):
        ab, _ = parent(x)
        ab[:, :, :2, :2] = np.nan
        return ab, None

    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rep = guard.compare(parent, child, images, names)
    assert rep.nonfinite_outputs > 0 and np.isfinite(rep.delta[10])
    with pytest.raises(guard.GuardError, match="NaN"):
        guard.enforce(rep, 0.1, "test", max_mean_ab=3.0)


def test_qdq_tool_and_method_conflicts_refused(icolorit_onnx, tmp_path, capsys):
    out = tmp_path / "q.onnx"
    assert _tinct("quantize", icolorit_onnx, "--precision", "int8", "--qdq-tool", "nncf", "--method", "entropy",
                  *COMMON, "-o", out) == 1
    assert "--qdq-tool onnxruntime" in capsys.readouterr().err
    assert _tinct("quantize", icolorit_onnx, "--precision", "int8", "--backend", "tensorrt", "--qdq-tool", "nncf",
                  *COMMON, "-o", out) == 1
    assert "zero point 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_precision_auto_keeps_the_fastest_passing_candidate(icolorit_onnx, tmp_path, capsys):
    """tinct build --precision auto: every candidate this CPU supports is built and guarded, the passing
    ones are timed interleaved, the fastest is written, and the table travels in the IR."""
    pytest.importorskip("nncf")
    import json

    import openvino as ov

    from tinct.runtime.backends.openvino_ir import read_ir_props
    from tinct.runtime.cpu import missing_isa

    out = tmp_path / "auto.xml"
    assert _tinct("build", icolorit_onnx, "--backend", "openvino", "--precision", "auto", "--threads", "1",
                  "--calib", FIXTURES, "--calib-size", "16", "-o", out) == 0
    build = read_ir_props(ov.Core().read_model(str(out)))[1]
    table = json.loads(build["auto_candidates"])
    assert [t["precision"] for t in table] == ["fp32", "bf16", "int8", "int8-bf16"]
    for t in table:
        if t["precision"] in ("bf16", "int8-bf16") and missing_isa("bf16"):
            assert t["verdict"] == "not supported" and "AVX512_BF16" in t["reason"]
        elif t["verdict"] == "passed":
            assert t["median_ms"] > 0 and abs(t["delta_psnr10"]) <= (0.1 if "int8" in t["precision"] else 0.02)
        else:
            assert t["verdict"] == "failed" and t["reason"]  # a refusal is recorded with its reason
    timed = [t for t in table if "median_ms" in t]
    chosen = [t for t in table if t["chosen"]]
    assert len(chosen) == 1 and chosen[0]["median_ms"] == min(t["median_ms"] for t in timed)
    assert build["auto_choice"] == chosen[0]["precision"] and build["auto_threads"] == "1"
    capsys.readouterr()
    assert _tinct("info", out) == 0
    assert "auto       chose" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto.bin", "auto.xml"]


def test_precision_auto_is_openvino_only(icolorit_onnx, tmp_path, capsys):
    assert _tinct("build", icolorit_onnx, "--backend", "tensorrt", "--precision", "auto",
                  "-o", tmp_path / "m.engine") == 1
    assert "--backend openvino" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_doctor_reverifies_a_quantized_artifact_here(icolorit_onnx, tmp_path, capsys, monkeypatch):
    """tinct doctor ARTIFACT: the guard again, on this machine, against the parent found by its sha256."""
    import shutil

    parent = tmp_path / icolorit_onnx.name
    shutil.copy(icolorit_onnx, parent)
    out = tmp_path / "i8.onnx"
    assert _tinct("quantize", parent, "--precision", "int8", *COMMON, "-o", out) == 0
    capsys.readouterr()
    assert _tinct("doctor", out) == 0
    text = capsys.readouterr().out
    assert "recorded: guard on" in text and "PASSED on this machine (int8 budget 0.1 dB" in text
    # a budget this artifact cannot meet on this machine: exit 1 with the reason
    from tinct.verify.budgets import DEFAULT_MAX_MEAN_AB

    monkeypatch.setitem(DEFAULT_MAX_MEAN_AB, "int8", 0.0)
    assert _tinct("doctor", out) == 1
    assert "FAILED on this machine" in capsys.readouterr().out
    # no parent next to it: one line asking for --parent
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(out, lone / "i8.onnx")
    assert _tinct("doctor", lone / "i8.onnx") == 1
    assert "--parent" in capsys.readouterr().err


def test_make_recipe_maps_flags_and_refuses_conflicts():
    from tinct.quantization.recipes import make_recipe
    from tinct.runtime.errors import TinctError

    assert make_recipe(precision="int8").route == "qdq"
    r = make_recipe(precision="int8", backend="openvino")
    assert (r.route, r.qdq_tool, r.conditional) == ("nncf-ir", None, False)
    r = make_recipe(precision="int8", backend="openvino", dynamic=True)
    assert (r.route, r.qdq_tool, r.conditional) == ("qdq-ir", "nncf", True)
    r = make_recipe(precision="int8", backend="tensorrt")
    assert r.symmetric_activations and r.qdq_tool == "onnxruntime"
    assert make_recipe(precision="fp16", backend="tensorrt").route == "fp16"
    for bad, match in [({"precision": "int8", "backend": "openvino", "dynamic": True, "ov_route": "nncf"}, "If nodes"),
                       ({"precision": "int8", "ov_route": "qdq"}, "--ov-route applies"),
                       ({"precision": "int8", "backend": "tensorrt", "qdq_tool": "nncf"}, "signed INT8"),
                       ({"precision": "int8", "qdq_tool": "nncf", "method": "entropy"}, "--method"),
                       ({"precision": "fp16", "backend": "openvino"}, "FP16 for OpenVINO"),
                       ({"precision": "bf16"}, "OpenVINO route"),
                       ({"precision": "fp16", "ov_float_precision": "bf16"}, "--ov-float-precision"),
                       ({"precision": "int8", "weight_range": "6bit"}, "--int8-weights"),
                       ({"precision": "int4"}, "--precision")]:
        with pytest.raises(TinctError, match=match):
            make_recipe(**bad)
