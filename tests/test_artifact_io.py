"""runtime.artifact's file helpers: the ONNX metadata reader (no onnx, no session), the atomic writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinct.runtime.artifact import ArtifactError, atomic_path, count_ops, read_onnx_props, set_onnx_props

onnx = pytest.importorskip("onnx")
WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def _model(props: dict[str, str], big: int = 0):
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.arange(big, dtype=np.float32), "w")
    node = helper.make_node("Identity", ["x"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])], initializer=[w])
    m = helper.make_model(g, producer_name="test")
    set_onnx_props(m, props, producer="tinct test")
    return m


@pytest.mark.parametrize("big", [0, 300_000])
def test_metadata_reader_matches_onnx(tmp_path, big):
    props = {"tinct.model": "x", "tinct.extra": '{"é": [1, 2]}', "other": "", "k" * 300: "v" * 5000}
    path = tmp_path / "m.onnx"
    onnx.save(_model(props, big), str(path))
    assert read_onnx_props(path) == {p.key: p.value for p in onnx.load(str(path)).metadata_props} == props


def test_metadata_reader_on_the_shipped_models():
    for path in sorted(WEIGHTS.glob("*.onnx")):
        want = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        assert read_onnx_props(path) == want and want["tinct.schema"], path.name


def test_metadata_reader_refuses_a_truncated_model(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model({"a": "b"}, 1000), str(path))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ArtifactError, match="not a readable ONNX file"):
        read_onnx_props(path)


def test_count_ops_walks_subgraphs():
    from onnx import helper

    inner = helper.make_graph([helper.make_node("If", ["c"], ["o"])], "b", [], [])
    outer = helper.make_graph([helper.make_node("If", ["c"], ["o"], then_branch=inner, else_branch=inner)], "g", [], [])
    assert count_ops(outer, "If") == 3 and count_ops(outer, "If", recursive=False) == 1


def test_atomic_path_replaces_only_on_success(tmp_path):
    out = tmp_path / "f.bin"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]
