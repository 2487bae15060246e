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

FIXTURES = Path(__file__).parent / "fixtures" / "photos"
COMMON = ["--calib", str(FIXTURES), "--calib-size", "6", "--no-progress"]


@pytest.fixture(autouse=True)
def _no_corpus(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TINCT_DATA", str(tmp_path_factory.mktemp("no-corpus")))


def _export(name: str, out: Path, randomize) -> Path:
    import torch

    from tinct.export.onnx_export import export_onnx
    from tinct.models.registry import create_model

    torch.manual_seed(0)
    model = randomize(create_model(name, depth=2).eval(), seed=0)
    return export_onnx(model, out, check=False)


@pytest.fixture(scope="session")
def icolorit_onnx(tmp_path_factory, randomize_weights):
    return _export("icolorit-tiny", tmp_path_factory.mktemp("q") / "icolorit-d2.onnx", randomize_weights)


@pytest.fixture(scope="session")
def acolvit_onnx(tmp_path_factory, randomize_weights):
    return _export("acolvit-tiny", tmp_path_factory.mktemp("q") / "acolvit-d2.onnx", randomize_weights)


def _tinct(*argv) -> int:
    from tinct.runtime.cli import main

    return main([str(a) for a in argv])


def _meta(path: Path):
    from tinct.runtime.artifact import ArtifactMeta

    if path.suffix == ".onnx":
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return ArtifactMeta.from_props(props)
    import openvino as ov

    from tinct.runtime.backends.openvino_backend import read_ir_props

    return ArtifactMeta.from_props(read_ir_props(ov.Core().read_model(str(path)))[0])


def _check_meta(path: Path, parent: Path, precision: str, int8: bool = True) -> dict:
    from tinct.runtime.backends.base import sha256_file

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
    from tinct.runtime.backends.openvino_backend import read_ir_props
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
    assert open_backend(out, threads=1).describe()["inference_precision"] in ("bf16", "BF16")
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
        assert b.describe()["inference_precision"] == "bf16"
    _run_runtime(out)


def test_bf16_refused_without_cpu_support(icolorit_onnx, tmp_path, monkeypatch, capsys):
    """A laptop-class CPU (ONEDNN_MAX_CPU_ISA=AVX2): one line naming the missing instruction set."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    out = tmp_path / "bf16.xml"
    assert _tinct("quantize", icolorit_onnx, "--precision", "bf16", "--backend", "openvino", "-o", out) == 1
    err = capsys.readouterr().err
    assert "AVX512_BF16" in err and "AVX2" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def _fail_variant(monkeypatch, variant: str) -> None:
    """The guard refuses the BF16 variant ``variant`` (a simulated kernel failure), judges the rest."""
    from tinct.quantization import guard

    real = guard.enforce

    def enforce(report, budget, what, max_mean_ab=None):
        if f"[bf16 variant {variant}]" in what:
            raise guard.GuardError(f"{what}: simulated kernel failure")
        return real(report, budget, what, max_mean_ab)

    monkeypatch.setattr(guard, "enforce", enforce)


def test_bf16_variants_tried_until_one_passes(icolorit_onnx, tmp_path, monkeypatch):
    """When plain bf16 fails its guard (as on AMX CPUs), the next variant is built and guarded; the
    artifact records the variant, what it applies, and every attempt."""
    pytest.importorskip("openvino")
    from tinct.runtime.cpu import missing_isa

    if missing_isa("bf16"):
        pytest.skip(f"this CPU cannot run bf16: {missing_isa('bf16')}")
    _fail_variant(monkeypatch, "default")
    out = tmp_path / "bf16.xml"
    assert _tinct("quantize", icolorit_onnx, "--precision", "bf16", "--backend", "openvino", "--no-progress",
                  "-o", out) == 0
    extra = _meta(out).extra
    assert [t["variant"] for t in extra["bf16_variants"]] == ["default", "no-snippets"]
    assert [t["verdict"] for t in extra["bf16_variants"]] == ["failed", "passed"]
    assert extra["quantization"]["compile_config"] == {"SNIPPETS_MODE": "DISABLE"}
    assert extra["guard"]["verified_on"]["cpu"]["isa"]
    from tinct.runtime.backends import open_backend

    with open_backend(out, threads=1) as b:
        assert b.describe()["compile_config"] == {"SNIPPETS_MODE": "DISABLE"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bf16.bin", "bf16.xml"]


def test_bf16_no_variant_passes(icolorit_onnx, tmp_path, monkeypatch, capsys):
    pytest.importorskip("openvino")
    from tinct.quantization import guard
    from tinct.runtime.cpu import missing_isa

    if missing_isa("bf16"):
        pytest.skip(f"this CPU cannot run bf16: {missing_isa('bf16')}")

    def enforce(report, budget, what, max_mean_ab=None):
        raise guard.GuardError(f"{what}: simulated")

    monkeypatch.setattr(guard, "enforce", enforce)
    out = tmp_path / "bf16.xml"
    assert _tinct("quantize", icolorit_onnx, "--precision", "bf16", "--backend", "openvino", "--no-progress",
                  "-o", out) == 1
    err = capsys.readouterr().err
    assert "no BF16 variant passed" in err and "f32-attention-no-snippets" in err
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


def test_acolvit_int8_keeps_if_and_reports_gate_agreement(acolvit_onnx, tmp_path):
    from tinct.quantization import guard
    from tinct.runtime.artifact import count_if_nodes

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
    ab = guard.Predictor(out)(np.zeros((1, 4, 224, 224), np.float32))
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
    from tinct.runtime.artifact import ArtifactMeta
    from tinct.runtime.backends.loaders import check_trt_int8

    check_trt_int8(_meta(trt_q), "trt.onnx")  # accepted
    with pytest.raises(Exception, match="unknown scheme"):
        check_trt_int8(ArtifactMeta("m", "icolorit", {}, precision="int8"), "m.onnx")


def test_acolvit_nncf_route_refused(acolvit_onnx, tmp_path, capsys):
    out = tmp_path / "a8.xml"
    assert _tinct("quantize", acolvit_onnx, "--precision", "int8", "--backend", "openvino", "--ov-route", "nncf",
                  *COMMON, "-o", out) == 1
    assert "NNCF" in capsys.readouterr().err and not out.exists()


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


def test_refuses_non_fp32_parent_and_bad_route(icolorit_onnx, tmp_path, capsys):
    assert _tinct("quantize", icolorit_onnx, "--precision", "bf16", "-o", tmp_path / "x.onnx") == 1
    assert "OpenVINO" in capsys.readouterr().err
    assert _tinct("quantize", icolorit_onnx, "--precision", "int8", "--backend", "openvino",
                  "-o", tmp_path / "x.onnx") == 1


def test_guard_refuses_nan_outputs_that_psnr_cannot_see():
    """A child that emits NaN on a few pixels keeps a finite PSNR (the uint8 cast maps NaN to a
    number); the guard must still refuse it."""
    from PIL import Image

    from tinct.quantization import guard

    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((224, 224)))
                       for p in sorted(FIXTURES.glob("*.jpg"))[:2]])
    names = [f"img{i}" for i in range(len(images))]

    def parent(x):
        return np.zeros((x.shape[0], 2, 224, 224), np.float32)

    def child(x):
        ab = parent(x)
        ab[:, :, :2, :2] = np.nan
        return ab

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

    from tinct.runtime.backends.openvino_backend import read_ir_props
    from tinct.runtime.cpu import missing_isa

    out = tmp_path / "auto.xml"
    assert _tinct("build", icolorit_onnx, "--backend", "openvino", "--precision", "auto", "--threads", "1",
                  "--calib", FIXTURES, "-o", out) == 0
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
    from tinct.quantization import DEFAULT_MAX_MEAN_AB

    monkeypatch.setitem(DEFAULT_MAX_MEAN_AB, "int8", 0.0)
    assert _tinct("doctor", out) == 1
    assert "FAILED on this machine" in capsys.readouterr().out
    # no parent next to it: one line asking for --parent
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(out, lone / "i8.onnx")
    assert _tinct("doctor", lone / "i8.onnx") == 1
    assert "--parent" in capsys.readouterr().err


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


def test_labelled_candidates_first_that_passes_is_written(icolorit_onnx, tmp_path, monkeypatch):
    """The candidate loop behind the BF16 variants, on any CPU: a recipe's labelled candidates are
    guarded in order, the first that passes is stamped and renamed, every attempt is recorded."""
    import shutil

    from tinct.quantization import recipes
    from tinct.quantization.api import quantize

    def fake_candidates(recipe, src, tmpdir, name, **kw):
        for label in ("first", "second", "third"):
            (tmpdir / label).mkdir()
            path = tmpdir / label / name
            shutil.copy(src, path)  # the parent itself: passes any real guard
            yield recipes.Candidate(path, label, {"quantization": {"variant": label}})
        raise AssertionError("the loop must stop at the first candidate that passes")

    monkeypatch.setattr(recipes, "candidates", fake_candidates)
    _fail_variant(monkeypatch, "first")
    out = tmp_path / "c.onnx"
    recipe = recipes.make_recipe(precision="fp16")
    path, report = quantize(icolorit_onnx, out, recipe, recipes.GuardPolicy(images=2))
    extra = _meta(out).extra
    assert [(t["variant"], t["verdict"]) for t in extra["bf16_variants"]] == [("first", "failed"), ("second", "passed")]
    assert extra["quantization"] == {"variant": "second"} and extra["recipe"]["route"] == "fp16"
    assert [p.name for p in tmp_path.iterdir()] == ["c.onnx"]


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
