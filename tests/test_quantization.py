"""tinct quantize: every route end to end on tiny models (depth 2), the guard, A-ColViT's If graphs.

Calibration and guard images come from the fixture photos (the corpus is never needed:
TINCT_DATA points at an empty directory).
"""

from __future__ import annotations

import json
from pathlib import Path

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


def test_int8_onnxruntime(icolorit_onnx, tmp_path):
    out = tmp_path / "i8.onnx"
    assert _tinct("quantize", icolorit_onnx, "--precision", "int8", *COMMON, "-o", out) == 0
    extra = _check_meta(out, icolorit_onnx, "int8")
    assert extra["quantization"]["format"] == "QDQ"
    assert "Softmax" in extra["float_ops"] and "LayerNormalization" in extra["float_ops"]
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # portable by default: 7-bit weight values (CPUs without VNNI saturate u8 x s8 pairs in int16)
    assert extra["quantization"]["weight_range"] == "portable" and _int8_weight_peak(out) <= 64
    _run_runtime(out)
    assert [p.name for p in tmp_path.iterdir()] == ["i8.onnx"]  # no temporaries left
    full = tmp_path / "full" / "i8.onnx"
    full.parent.mkdir()
    assert _tinct("quantize", icolorit_onnx, "--precision", "int8", "--int8-weights", "full", *COMMON,
                  "--max-mean-ab-err", "50", "--max-psnr-drop", "5", "-o", full) == 0
    assert _meta(full).extra["quantization"]["weight_range"] == "full" and _int8_weight_peak(full) == 127
    # the head conv (writes ab) stays float: its weight is a plain float initializer, not dequantized
    g = onnx.load(str(out)).graph
    produced_by = {o: n for n in g.node for o in n.output}
    convs = [n for n in g.node if n.op_type == "Conv"]
    assert len(convs) == 2
    patch, head = convs
    assert produced_by[patch.input[1]].op_type == "DequantizeLinear"
    assert head.input[1] in {i.name for i in g.initializer}
    assert "head_conv" in extra["quantization"]["float_roles"]


@pytest.mark.parametrize("route", ["nncf", "qdq"])
def test_int8_openvino(icolorit_onnx, tmp_path, route):
    pytest.importorskip("openvino")
    if route == "nncf":
        pytest.importorskip("nncf")
    out = tmp_path / "i8.xml"
    assert _tinct("quantize", icolorit_onnx, "--precision", "int8", "--backend", "openvino",
                  "--ov-route", route, *COMMON, "-o", out) == 0
    assert out.with_suffix(".bin").is_file()
    q = _check_meta(out, icolorit_onnx, "int8")["quantization"]
    assert q["weight_range"] == "portable"
    if route == "nncf":
        assert q["overflow_fix"] == "enable"
    _run_runtime(out)


def test_int8_openvino_bf16_float_ops(icolorit_onnx, tmp_path):
    """--ov-float-precision bf16: recorded in the IR, used by the runtime and by the guard."""
    pytest.importorskip("nncf")
    from tinct.runtime.backends import open_backend
    from tinct.runtime.backends.openvino_ir import read_ir_props
    from tinct.runtime.cpu import has_native_bf16

    out = tmp_path / "i8bf.xml"
    rc = _tinct("quantize", icolorit_onnx, "--precision", "int8", "--backend", "openvino",
                "--ov-float-precision", "bf16", *COMMON, "-o", out)
    if not has_native_bf16():
        assert rc == 1 and not out.exists()
        return
    assert rc == 0
    import openvino as ov

    assert read_ir_props(ov.Core().read_model(str(out)))[1]["inference_precision"] == "bf16"
    desc = open_backend(out, threads=1).describe()
    assert desc["inference_precision"] in ("bf16", "BF16")
    # the patch embedding never runs in bf16 (OpenVINO's AMX bf16 convolution is wrong for it): NNCF
    # quantizes it (u8) or it stays f32
    assert len(desc["f32_layers"]) == 1 and set(desc["f32_layers"].values()) <= {"u8", "i8", "f32"}
    assert _tinct("quantize", icolorit_onnx, "--precision", "int8", "--ov-float-precision", "bf16",
                  *COMMON, "-o", tmp_path / "x.onnx") == 1  # only meaningful for OpenVINO


def test_fp16_onnx(icolorit_onnx, tmp_path):
    out = tmp_path / "f16.onnx"
    assert _tinct("quantize", icolorit_onnx, "--precision", "fp16", "--no-progress", "-o", out) == 0
    m = onnx.load(str(out))
    elem = {v.name: v.type.tensor_type.elem_type for v in list(m.graph.input) + list(m.graph.output)}
    assert elem == {"x": onnx.TensorProto.FLOAT, "ab": onnx.TensorProto.FLOAT}
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)
    extra = _check_meta(out, icolorit_onnx, "fp16", int8=False)
    assert abs(extra["guard"]["delta_psnr"]["10"]) <= 0.02
    _run_runtime(out)


def test_acolvit_int8_keeps_if_and_reports_gate_agreement(acolvit_onnx, tmp_path):
    from tinct.runtime.artifact import count_if_nodes
    from tinct.verify.predictors import ArtifactPredictor

    out = tmp_path / "a8.onnx"
    # A random A-ColViT's gates sit near 0.5 on some inputs: one flipped decision moves that sample's
    # output a lot (max |Δab| ~180), so the mean-|Δab| criterion is relaxed for this random model.
    loose = ["--max-mean-ab-err", "50"]
    assert _tinct("quantize", acolvit_onnx, "--precision", "int8", *COMMON, *loose, "-o", out) == 0
    m = onnx.load(str(out))
    assert count_if_nodes(m.graph) == count_if_nodes(onnx.load(str(acolvit_onnx)).graph) == 4
    # Q/DQ inside the branches, gate Linears left float
    inner = [b.op_type for n in m.graph.node if n.op_type == "If"
             for a in n.attribute if a.name == "then_branch" for b in a.g.node]
    assert "QuantizeLinear" in inner and "DequantizeLinear" in inner
    gemm_inputs = [i for n in m.graph.node if n.op_type == "Gemm" for i in n.input]
    assert not any(i.endswith("_DequantizeLinear_Output") for i in gemm_inputs)
    extra = _check_meta(out, acolvit_onnx, "int8")
    assert 0.0 <= extra["gate_agreement"] <= 1.0 and extra["gate_agreement"] >= 0.9
    rates = extra["quantization"]["branch_run_rate_fp32"]
    assert len(rates) == 4
    # runs under ONNX Runtime with QDQPropagationTransformer disabled (recorded in the metadata)
    assert extra["quantization"]["ort_session_needs"]["disabled_optimizers"] == ["QDQPropagationTransformer"]
    ab, _gates = ArtifactPredictor.open(out)(np.zeros((1, 4, 224, 224), np.float32))
    assert np.isfinite(ab).all()


def test_acolvit_openvino_int8_via_qdq(acolvit_onnx, tmp_path):
    pytest.importorskip("openvino")
    out = tmp_path / "a8.xml"
    assert _tinct("quantize", acolvit_onnx, "--precision", "int8", "--backend", "openvino", *COMMON,
                  "--max-mean-ab-err", "50", "-o", out) == 0
    extra = _check_meta(out, acolvit_onnx, "int8")
    assert "gate_agreement" in extra
    assert extra["quantization"]["openvino"].startswith("Q/DQ ONNX")
    # the branches are quantized by NNCF's ONNX backend on this route; the If nodes survive into the IR
    assert extra["quantization"]["branch_quantizer"]["tool"].startswith("nncf")
    import openvino as ov

    ops = [op.get_type_name() for op in ov.Core().read_model(str(out)).get_ordered_ops()]
    assert ops.count("If") == 4
    # the attention core (q.k^T, attn.v) stays float inside the branches on this route
    assert extra["quantization"]["branch_float_roles"] == ["attn_matmul"]
    _run_runtime(out)
    _check_batch1_select_fold(out)


def _check_batch1_select_fold(xml: Path) -> None:
    """The OpenVINO backend drops the per-sample Where of every then-branch at batch 1: exact (the
    same values), batches still get per-sample decisions, and nothing else is touched."""
    import openvino as ov

    from tinct.runtime.backends import open_backend
    from tinct.runtime.backends import openvino_backend as ovb

    model = ov.Core().read_model(str(xml))
    assert ovb.fold_batch1_selects(ovb._with_batch(model, 1)) == 4  # one per then-branch
    assert ovb.fold_batch1_selects(ovb._with_batch(model, 2)) == 4  # (the backend folds batch 1 only)
    with open_backend(xml, threads=1) as b:
        assert b.describe()["batch1_folded_selects"] == 4
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 1, (2, 4, 224, 224)).astype(np.float32)
    x[:, 3] = (x[:, 3] > 0.99).astype(np.float32)  # a sparse hint mask
    with open_backend(xml, threads=1) as folded:
        one = [folded.infer({"x": x[i:i + 1]})["ab"] for i in range(2)]
        two = folded.infer({"x": x})["ab"]  # batch 2: compiled unfolded
    original = ovb.fold_batch1_selects
    try:
        ovb.fold_batch1_selects = lambda m: 0
        with open_backend(xml, threads=1) as plain:
            ref = [plain.infer({"x": x[i:i + 1]})["ab"] for i in range(2)]
    finally:
        ovb.fold_batch1_selects = original
    for a, b in zip(one, ref):
        assert np.array_equal(a, b)
    assert np.abs(two - np.concatenate(one)).max() <= 1e-4


def test_nncf_branches_keep_attention_core_float(acolvit_onnx, tmp_path):
    """quantize_conditional with NNCF in the branches: Q/DQ around the weight MatMuls of every
    branch, none feeding the activation x activation MatMuls (q.k^T, attn.v)."""
    pytest.importorskip("nncf")
    from tinct.quantization.calibration import CalibrationSet
    from tinct.quantization.conditional import if_nodes, quantize_conditional

    calib = CalibrationSet.from_source(FIXTURES, 6, 0)
    out = tmp_path / "c.onnx"
    recipe = quantize_conditional(acolvit_onnx, out, calib, branch_tool="nncf")
    assert recipe["branch_float_roles"] == ["attn_matmul"]
    attn_core = weight_mm = 0
    for node in if_nodes(onnx.load(str(out))):
        body = next(a.g for a in node.attribute if a.name == "then_branch")
        inits = {i.name for i in body.initializer}
        dq = {o for n in body.node if n.op_type == "DequantizeLinear" for o in n.output}
        for n in body.node:
            if n.op_type != "MatMul":
                continue
            fed = [i in dq for i in n.input]
            if any(i in inits or i in dq and _reads_weight(body, i, inits) for i in n.input):
                weight_mm += 1
                assert all(fed), n.name
            else:
                attn_core += 1
                assert not any(fed), n.name
    assert attn_core == 4 and weight_mm == 8  # 2 blocks: (2 core + 2 weight) attention, 2 weight MLP each


def _reads_weight(body, name: str, inits: set) -> bool:
    producer = next((n for n in body.node if name in n.output), None)
    return producer is not None and producer.op_type == "DequantizeLinear" and producer.input[0] in inits


def test_tensorrt_int8_is_symmetric_and_build_refuses_asymmetric(icolorit_onnx, tmp_path, capsys):
    """TensorRT takes signed INT8 Q/DQ with zero point 0 only: the tensorrt route writes that, and
    'tinct build --backend tensorrt' refuses the U8-asymmetric ONNX Runtime artifact before needing TensorRT."""
    from onnx import numpy_helper

    trt_q, ort_q = tmp_path / "trt.onnx", tmp_path / "ort.onnx"
    assert _tinct("quantize", icolorit_onnx, "--precision", "int8", "--backend", "tensorrt", *COMMON, "-o", trt_q) == 0
    g = onnx.load(str(trt_q)).graph
    inits = {i.name: i for i in g.initializer}
    zps = [numpy_helper.to_array(inits[n.input[2]]) for n in g.node
           if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)
    assert _int8_weight_peak(trt_q) == 127  # TensorRT has no int16 saturation: the full 8-bit range
    assert _check_meta(trt_q, icolorit_onnx, "int8")["quantization"]["activations"].startswith("int8 symmetric")
    assert _tinct("quantize", icolorit_onnx, "--precision", "int8", *COMMON, "-o", ort_q) == 0
    capsys.readouterr()
    assert _tinct("build", ort_q, "--backend", "tensorrt", "--precision", "int8", "-o", tmp_path / "x.engine") == 1
    err = capsys.readouterr().err
    assert "zero point 0" in err and "--backend tensorrt" in err and not (tmp_path / "x.engine").exists()
    from tinct.deploy.build import check_trt_int8
    from tinct.runtime.artifact import ArtifactMeta

    check_trt_int8(_meta(trt_q), "trt.onnx")  # accepted
    with pytest.raises(Exception, match="unknown scheme"):
        check_trt_int8(ArtifactMeta("m", "icolorit", {}, precision="int8"), "m.onnx")


def test_calibration_set_deterministic_and_spread():
    from tinct.quantization.calibration import CalibrationSet, load_photo_dir

    photos = load_photo_dir(FIXTURES)
    a, b = CalibrationSet(photos, size=9, seed=3), CalibrationSet(photos, size=9, seed=3)
    assert np.array_equal(a[4], b[4]) and a[4].shape == (1, 4, 224, 224) and a[4].dtype == np.float32
    assert sorted(a.counts.tolist()) == [0, 16, 32, 48, 64, 80, 96, 112, 128]
    assert [int(m.sum()) for m in a.masks] == a.counts.tolist()
    r = a.ort_reader()
    assert sum(1 for _ in iter(r.get_next, None)) == 9
    json.dumps(a.describe())


def test_int8_acolvit_runs_in_the_runtime_without_the_caller_knowing_the_ort_workaround(acolvit_onnx, tmp_path):
    """Q/DQ inside If: ONNX Runtime aborts the process unless QDQPropagationTransformer is off. The artifact
    records that and the runtime applies it: a plain open_backend(path) works (in a subprocess, since a
    failure here is an abort, not an exception)."""
    import subprocess
    import sys

    out = tmp_path / "ac8.onnx"
    # random gates flip under INT8 (see test_acolvit_int8_keeps_if_and_reports_gate_agreement): loose mean |Δab|
    assert _tinct("quantize", acolvit_onnx, "--precision", "int8", *COMMON, "--max-mean-ab-err", "50", "-o", out) == 0
    extra = _meta(out).extra
    assert extra["runtime_options"] == {"onnxruntime": {"disabled_optimizers": ["QDQPropagationTransformer"]}}
    code = ("import numpy as np; from tinct.runtime.backends import open_backend; b = open_backend(%r); "
            "print(b.describe()['disabled_optimizers']); "
            "print(np.isfinite(b.run_x(np.zeros((1, 4, 224, 224), np.float32))).all())" % str(out))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "QDQPropagationTransformer" in r.stdout and "True" in r.stdout
