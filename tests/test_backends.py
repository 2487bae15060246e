"""Backends against the PyTorch reference (fp32 <= 1e-4 on ab), metadata validation, TensorRT file format."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from test_runtime import DEMO_HINTS, photo

from tinct.runtime.artifact import ArtifactMeta
from tinct.runtime.errors import TinctError

torch = pytest.importorskip("torch")
HAS_OV = importlib.util.find_spec("openvino") is not None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_models):
    path, model = tiny_models.icolorit
    return tmp_path_factory.mktemp("be"), path, model


@pytest.fixture(scope="module")
def photo_x(tiny):
    """The model input for the fixture photo + demo hints, made by the runtime's Session."""
    from tinct.runtime.backends import open_backend
    from tinct.runtime.colorizer import Colorizer
    s = Colorizer(open_backend(tiny[1], threads=1)).session(photo())
    s.set_hints(DEMO_HINTS.read_text())
    s.colorize()
    return s.x.copy()


def _torch_ref(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_onnxruntime_matches_pytorch(tiny, photo_x):
    from tinct.runtime.backends import open_backend
    b = open_backend(tiny[1], threads=1)
    assert np.abs(b.run_x(photo_x) - _torch_ref(tiny[2], photo_x)).max() <= 1e-4
    d = b.describe()
    assert d["backend"] == "onnxruntime" and d["threads"] == 1 and d["meta"]["model"] == "icolorit-tiny"
    b2 = open_backend(tiny[1], disabled_optimizers=["QDQPropagationTransformer"])
    assert np.abs(b2.run_x(photo_x) - _torch_ref(tiny[2], photo_x)).max() <= 1e-4


@pytest.mark.skipif(not HAS_OV, reason="openvino is not installed")
def test_openvino_ir_via_tinct_build_matches_pytorch(tiny, photo_x):
    from tinct.cli.main import main
    from tinct.runtime.backends import open_backend
    d, onnx_path, model = tiny
    xml = d / "tiny.xml"
    assert main(["build", str(onnx_path), "--backend", "openvino", "-o", str(xml)]) == 0
    b = open_backend(xml, threads=1)
    desc = b.describe()
    assert desc["inference_precision"] == "f32"  # explicit, never OpenVINO's bf16 default
    assert desc["build"]["source_onnx_sha256"] and b.meta.model == "icolorit-tiny"
    assert np.abs(b.run_x(photo_x) - _torch_ref(model, photo_x)).max() <= 1e-4
    # ONNX read by OpenVINO directly (metadata from rt_info['framework'])
    b2 = open_backend(onnx_path, "openvino", threads=1)
    assert np.abs(b2.run_x(photo_x) - _torch_ref(model, photo_x)).max() <= 1e-4
    # bf16 when this CPU runs it natively: 'tinct build --precision bf16' keeps the patch embedding f32
    # that agrees with FP32 here (the guard's BF16 limit, mean |Δab| <= 1 Lab unit), and records it
    from tinct.runtime.color import AB_NORM
    from tinct.runtime.cpu import missing_isa
    if missing_isa("bf16"):
        with pytest.raises(TinctError, match="AVX512_BF16"):
            open_backend(xml, precision="bf16", threads=1)
        return
    xml16 = d / "tiny-bf16.xml"
    assert main(["build", str(onnx_path), "--backend", "openvino", "--precision", "bf16", "-o", str(xml16)]) == 0
    b3 = open_backend(xml16, threads=1)
    desc = b3.describe()
    assert desc["inference_precision"] == "bf16" and list(desc["f32_layers"].values()) == ["f32"]
    assert float(desc["build"]["bf16_self_check_mean_ab"]) <= 1.0
    diff = np.abs(b3.run_x(photo_x) - _torch_ref(model, photo_x)) * AB_NORM
    assert np.isfinite(diff).all() and diff.mean() <= 1.0 and diff.max() > 0  # close, not equal


def test_openvino_static_batch_specialization(tiny, photo_x):
    """Only the batch is dynamic: compiled for batch 1 at load, once more per new batch size, and the
    outputs do not depend on which compiled shape ran them."""
    pytest.importorskip("openvino")
    from tinct.runtime.backends import open_backend

    b = open_backend(tiny[1], "openvino", threads=1)
    assert b.describe()["shapes"] == "static, batch [1]"
    one = b.infer({"x": photo_x})["ab"]
    three = b.infer({"x": np.concatenate([photo_x] * 3)})["ab"]
    assert three.shape[0] == 3 and b.describe()["shapes"] == "static, batch [1, 3]"
    assert np.abs(three - one).max() <= 1e-5
    for n in (2, 4, 5, 6):  # a bounded cache: batch 1 always stays
        b.infer({"x": np.concatenate([photo_x] * n)})
    assert len(b._by_batch) == b.MAX_BATCH_SHAPES and 1 in b._by_batch


def test_open_backend_errors(tiny, tmp_path):
    from tinct.runtime.backends import open_backend
    with pytest.raises(TinctError, match="not a tinct artifact"):
        open_backend(tmp_path / "m.txt")
    with pytest.raises(TinctError, match="does not exist"):
        open_backend(tmp_path / "m.onnx")
    with pytest.raises(TinctError, match="unknown backend"):
        open_backend(tiny[1], "tvm")
    with pytest.raises(TinctError, match="cannot read"):
        open_backend(tiny[1], "tensorrt")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(TinctError, match="cannot load"):
        open_backend(tmp_path / "junk.onnx")


def _with_props(src, dst, **changes):
    import onnx
    mp = onnx.load(str(src))
    props = {p.key: p.value for p in mp.metadata_props}
    props.update({k: v for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        props.pop(k, None)
    del mp.metadata_props[:]
    for k, v in props.items():
        p = mp.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(mp, str(dst))
    return dst


def test_metadata_validation(tiny, tmp_path):
    from tinct.runtime.backends import open_backend
    src = tiny[1]
    bad_norm = json.dumps({"ab_norm": 128.0, "l_cent": 50.0, "l_norm": 100.0})
    with pytest.raises(TinctError, match="normalization"):
        open_backend(_with_props(src, tmp_path / "n.onnx", **{"tinct.normalization": bad_norm}))
    keys = list(ArtifactMeta("m", "icolorit", {}).to_props())
    with pytest.raises(TinctError, match="no tinct metadata"):
        open_backend(_with_props(src, tmp_path / "none.onnx", **{k: None for k in keys}))
    gates = json.dumps([[1, 0]] * 3)  # depth is 2
    with pytest.raises(TinctError, match="static_gates has 3 blocks"):
        open_backend(_with_props(src, tmp_path / "g.onnx", **{
            "tinct.architecture": "acolvit", "tinct.gating": "static", "tinct.static_gates": gates}))
    with pytest.raises(TinctError, match="cannot have gating"):
        open_backend(_with_props(src, tmp_path / "i.onnx", **{"tinct.gating": "static",
                                                              "tinct.static_gates": json.dumps([[1, 1]] * 2)}))
    ok = open_backend(_with_props(src, tmp_path / "ok.onnx", **{
        "tinct.architecture": "acolvit", "tinct.gating": "static",
        "tinct.static_gates": json.dumps([[1, 0], [0, 1]])}))
    assert ok.meta.static_gates == [[1, 0], [0, 1]]


# ----------------------------------------------------------------------------- TensorRT

def test_tensorrt_engine_header_roundtrip_and_staleness(tmp_path, tiny):
    from tinct.runtime.artifact import sha256_file
    from tinct.runtime.backends.tensorrt_backend import (
        StaleEngineError,
        check_engine_header,
        pack_engine,
        read_engine_file,
    )
    props = ArtifactMeta("icolorit-tiny", "icolorit", {"depth": 2}).to_props()
    header = {"tensorrt_version": "10.13.0", "gpu_name": "Orin", "compute_capability": "8.7", "precision": "fp32",
              "source_onnx": str(tiny[1]), "source_onnx_sha256": sha256_file(tiny[1]), "props": props}
    (tmp_path / "m.engine").write_bytes(pack_engine(header, b"ENGINE"))
    h, eng = read_engine_file(tmp_path / "m.engine")
    assert bytes(eng) == b"ENGINE" and h["props"] == props
    check_engine_header(h, "m.engine", "10.13.0", "8.7", tiny[1])
    with pytest.raises(StaleEngineError, match="TensorRT 10.13.0.*--rebuild"):
        check_engine_header(h, "m.engine", "11.0.0", "8.7")
    with pytest.raises(StaleEngineError, match="compute capability 8.7"):
        check_engine_header(h, "m.engine", "10.13.0", "9.0")
    other = tmp_path / "other.onnx"
    other.write_bytes(b"changed")
    with pytest.raises(StaleEngineError, match="changed"):
        check_engine_header(h, "m.engine", "10.13.0", "8.7", other)
    (tmp_path / "foreign.engine").write_bytes(b"\x01\x02serialized-by-trtexec")
    with pytest.raises(TinctError, match="not a tinct TensorRT engine"):
        read_engine_file(tmp_path / "foreign.engine")
    (tmp_path / "t.engine").write_bytes(pack_engine(header, b"E")[:20])
    with pytest.raises(TinctError, match="truncated"):
        read_engine_file(tmp_path / "t.engine")


@pytest.mark.tensorrt
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                    reason="TensorRT is not installed here (it needs an NVIDIA GPU and NVIDIA's own package index)")
def test_tensorrt_build_and_run_matches_pytorch(tiny, photo_x):
    from tinct.deploy.build import build_tensorrt
    from tinct.runtime.backends import open_backend
    eng = build_tensorrt(tiny[1], tiny[0] / "tiny.engine")
    b = open_backend(eng)
    assert np.abs(b.run_x(photo_x) - _torch_ref(tiny[2], photo_x)).max() <= 1e-3
    b.close()


def test_missing_extra_is_named(monkeypatch, tmp_path):
    from tinct.runtime.backends import base
    from tinct.runtime.errors import MissingExtraError
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "tensorrt" else real(n, *a))
    p = tmp_path / "m.engine"
    p.write_bytes(b"x")
    with pytest.raises(MissingExtraError, match=r"tinct\[tensorrt\]"):
        base.open_backend(p)


@pytest.mark.slow
def test_dynamic_acolvit_export_runs_on_both_cpu_backends(tmp_path, photo_x):
    """The dynamic A-ColViT export (If nodes + auxiliary 'gates' output) opens in the runtime, and
    ONNX Runtime and OpenVINO (via tinct build) both match the PyTorch reference."""
    from tinct.cli.main import main
    from tinct.export.onnx_export import export_onnx
    from tinct.models.registry import create_model
    from tinct.runtime.backends import open_backend

    torch.manual_seed(0)
    model = create_model("acolvit-tiny", depth=2).eval()
    with torch.no_grad():  # mixed decisions: block 0 keeps attention only, block 1 the MLP only
        for blk, bias in zip(model.blocks, ((6.0, -6.0), (-6.0, 6.0))):
            blk.layer_select.mlp_head.weight.zero_()
            blk.layer_select.mlp_head.bias.copy_(torch.tensor(bias))
    onnx_path = export_onnx(model, tmp_path / "acolvit.onnx", gating="dynamic", model_name="acolvit-tiny")
    ref = _torch_ref(model, photo_x)
    b = open_backend(onnx_path, threads=1)
    assert "gates" in b.output_names
    assert np.abs(b.run_x(photo_x) - ref).max() <= 1e-4
    if HAS_OV:
        xml = tmp_path / "acolvit.xml"
        assert main(["build", str(onnx_path), "--backend", "openvino", "-o", str(xml)]) == 0
        assert np.abs(open_backend(xml, threads=1).run_x(photo_x) - ref).max() <= 1e-4


def test_misspelt_or_misplaced_backend_options_are_errors(tiny):
    """A typo never silently changes nothing: unknown options, and options of another backend, are refused."""
    from tinct.runtime.backends import open_backend

    with pytest.raises(TinctError, match="unknown backend option.*threds"):
        open_backend(tiny[1], threds=2)
    with pytest.raises(TinctError, match="providers do not apply to the openvino backend"):
        open_backend(tiny[1], "openvino", providers=["CPUExecutionProvider"])
    with open_backend(tiny[1], "onnxruntime", threads=1, core=None) as b:  # unset: fine
        assert b.describe()["backend"] == "onnxruntime"
