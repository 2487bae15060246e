"""Shared by the quantization tests: tiny random exports (depth 2), the CLI, metadata checks.

Calibration and guard images come from the fixture photos (the corpus is never needed: TINCT_DATA
points at an empty directory, see the autouse fixture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

FIXTURES = Path(__file__).parent.parent / "data" / "samples"
COMMON = ["--calib", str(FIXTURES), "--calib-size", "6", "--no-progress"]


@pytest.fixture(autouse=True)
def _no_corpus(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TINCT_DATA", str(tmp_path_factory.mktemp("no-corpus")))


def _tinct(*argv) -> int:
    from tinct.cli.main import main

    return main([str(a) for a in argv])


def _meta(path: Path):
    from tinct.runtime.artifact import ArtifactMeta

    if path.suffix == ".onnx":
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return ArtifactMeta.from_props(props)
    import openvino as ov

    from tinct.runtime.backends.openvino_ir import read_ir_props

    return ArtifactMeta.from_props(read_ir_props(ov.Core().read_model(str(path)))[0])


def _check_meta(path: Path, parent: Path, precision: str, int8: bool = True) -> dict:
    from tinct.runtime.artifact import sha256_file

    meta = _meta(path)
    assert meta.precision == precision
    assert meta.parent_sha256 == sha256_file(parent)
    g = meta.extra["guard"]
    assert set(g["delta_psnr"]) == {"1", "10", "50"} and "max_ab_err" in g and "psnr_parent" in g
    assert "quantization" in meta.extra and "budget_db" in meta.extra
    if int8:
        assert meta.extra["calibration"]["size"] == 6
        assert "float_ops" in meta.extra
    return meta.extra


def _run_runtime(path: Path, **opts) -> np.ndarray:
    from tinct.runtime.backends import open_backend

    x = np.zeros((1, 4, 224, 224), np.float32)
    with open_backend(path, threads=1, **opts) as b:
        ab = b.infer({"x": x})["ab"]
    assert ab.shape == (1, 2, 224, 224) and np.isfinite(ab).all()
    return ab


def _int8_weight_peak(path: Path) -> int:
    """Largest |value| among the int8 weight initializers of a Q/DQ ONNX (127: 8-bit range, 63/64: 7-bit)."""
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    weights = [inits[n.input[0]] for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
               and inits[n.input[0]].dtype == np.int8 and inits[n.input[0]].ndim >= 2]
    assert weights, "no int8 weight initializers"
    return max(int(np.abs(w.astype(np.int16)).max()) for w in weights)
