"""`tinct deploy triton`: model repositories for Triton's onnxruntime, openvino and tensorrt backends, each
config.pbtxt parsed with Triton's own ModelConfig schema (tritonclient's protobufs). No server runs here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs the 'triton' extra (tritonclient)")

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from tinct.cli.main import main
from tinct.deploy import triton
from tinct.runtime.errors import TinctError

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def _cfg(path: Path) -> pb.ModelConfig:
    cfg = pb.ModelConfig()
    text_format.Parse(path.read_text(), cfg)
    return cfg


def test_onnxruntime_repository_for_a_shipped_model(tmp_path, capsys):
    assert main(["deploy", "triton", "icolorit-tiny", "-o", str(tmp_path), "--threads", "2", "--instances", "3"]) == 0
    d = tmp_path / "icolorit-tiny"
    assert (d / "1" / "model.onnx").read_bytes() == (WEIGHTS / "icolorit-tiny.onnx").read_bytes()
    cfg = _cfg(d / "config.pbtxt")
    assert cfg.name == "icolorit-tiny" and cfg.backend == "onnxruntime" and cfg.max_batch_size == 8
    assert [(t.name, list(t.dims), t.data_type) for t in cfg.input] == [("x", [4, 224, 224], pb.DataType.TYPE_FP32)]
    assert [(t.name, list(t.dims)) for t in cfg.output] == [("ab", [2, 224, 224])]
    assert cfg.HasField("dynamic_batching") and cfg.dynamic_batching.max_queue_delay_microseconds == 500
    assert cfg.instance_group[0].count == 3 and cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
    assert cfg.parameters["intra_op_thread_count"].string_value == "2"
    assert cfg.parameters["tinct.model"].string_value == "icolorit-tiny"
    assert "L_n = (L - 50) / 100" in (d / "README.md").read_text()
    assert "checked against Triton's ModelConfig schema" in capsys.readouterr().out
    # again without --force: refused, nothing changed; with --force: replaced
    assert main(["deploy", "triton", "icolorit-tiny", "-o", str(tmp_path)]) == 2  # a usage error
    assert "pass --force" in capsys.readouterr().err
    assert main(["deploy", "triton", "icolorit-tiny", "-o", str(tmp_path), "--force", "--max-batch-size", "0"]) == 0
    cfg = _cfg(d / "config.pbtxt")
    assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
    assert list(cfg.input[0].dims) == [-1, 4, 224, 224]  # the batch dimension stays in the dims
    assert main(["deploy", "triton", "--check", str(d / "config.pbtxt")]) == 0


def test_acolvit_gates_output_and_color2embed_pair(tmp_path):
    (d,) = triton.deploy_triton("acolvit-tiny-0.5", tmp_path)
    cfg = _cfg(d / "config.pbtxt")
    assert [(t.name, list(t.dims), t.data_type) for t in cfg.output] == [
        ("ab", [2, 224, 224], pb.DataType.TYPE_FP32), ("gates", [12, 2], pb.DataType.TYPE_BOOL)]
    enc, col = triton.deploy_triton("color2embed-r18", tmp_path)
    assert (enc.name, col.name) == ("color2embed-r18-encoder", "color2embed-r18-colorizer")
    c = _cfg(col / "config.pbtxt")
    assert [(t.name, list(t.dims)) for t in c.input] == [("l_n", [1, -1, -1]), ("emb", [512])]
    assert [(t.name, list(t.dims)) for t in _cfg(enc / "config.pbtxt").input] == [("ref", [3, -1, -1])]


def test_openvino_repository_runs_like_the_onnx(tmp_path):
    """The IR written for Triton's OpenVINO backend gives the ONNX's output (f32 forced here; Triton cannot)."""
    ov = pytest.importorskip("openvino", reason="needs the 'openvino' extra")
    import onnxruntime as ort

    (d,) = triton.deploy_triton("icolorit-tiny", tmp_path, backend="openvino", threads=1)
    cfg = _cfg(d / "config.pbtxt")
    assert cfg.backend == "openvino" and cfg.default_model_filename == "model.xml"
    assert cfg.parameters["INFERENCE_NUM_THREADS"].string_value == "1"
    assert cfg.parameters["ENABLE_BATCH_PADDING"].string_value == "YES"
    assert "cannot force f32" in (d / "README.md").read_text()
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 4, 224, 224)).astype(np.float32)
    x[:, 3] = (x[:, 3] > 0.45).astype(np.float32)
    want = ort.InferenceSession(str(WEIGHTS / "icolorit-tiny.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    compiled = ov.Core().compile_model(str(d / "1" / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled({"x": x})[compiled.output(0)]
    assert np.abs(got - want).max() < 1e-4


def test_tensorrt_plan_is_the_bare_engine(tmp_path):
    from tinct.runtime.backends.tensorrt_backend import pack_engine

    engine = tmp_path / "m.engine"
    engine.write_bytes(pack_engine({"source_onnx": str(WEIGHTS / "icolorit-tiny.onnx"), "precision": "fp16"},
                                   b"SERIALIZED-PLAN"))
    (d,) = triton.deploy_triton(str(engine), tmp_path / "repo", kind="KIND_GPU")
    assert (d / "1" / "model.plan").read_bytes() == b"SERIALIZED-PLAN"
    cfg = _cfg(d / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and not cfg.backend and cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    with pytest.raises(TinctError, match="only to the tensorrt backend"):
        triton.deploy_triton(str(engine), tmp_path / "repo2", backend="onnxruntime")
    with pytest.raises(TinctError, match="needs an engine built on the target GPU"):
        triton.deploy_triton("icolorit-tiny", tmp_path / "repo3", backend="tensorrt")


def test_bad_input_is_refused_and_nothing_is_half_written(tmp_path, monkeypatch, capsys):
    assert main(["deploy", "triton", "no-such-model", "-o", str(tmp_path)]) == 2
    assert "neither an artifact file nor a shipped model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["deploy", "triton", "icolorit-tiny", "-o", str(tmp_path), "--instances", "0"])
    assert "out of range (1..64)" in capsys.readouterr().err
    bad = tmp_path / "config.pbtxt"
    bad.write_text('name: "m"\nbackend: "onnxruntime"\ninput { name: "x" data_type: TYPE_FLOAT32 dims: 4 }\n')
    assert main(["deploy", "triton", "--check", str(bad)]) == 1
    assert "does not parse as Triton's ModelConfig" in capsys.readouterr().err
    bad.write_text('name: "m"\nbackend: "onnxruntime"\nmax_batch_size: 0\ndynamic_batching {}\n'
                   'input { name: "x" data_type: TYPE_FP32 dims: 4 }\noutput { name: "y" data_type: TYPE_FP32 dims: 4 }\n')
    assert main(["deploy", "triton", "--check", str(bad)]) == 1
    assert "dynamic batching needs max_batch_size >= 1" in capsys.readouterr().err

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(triton, "_place_model", boom)
    with pytest.raises(OSError):
        triton.deploy_triton("icolorit-tiny", tmp_path / "repo")
    assert not (tmp_path / "repo" / "icolorit-tiny").exists()
    assert not [p for p in (tmp_path / "repo").iterdir()]  # no temporary folder left either
