"""The If-overhead benchmark's graph surgery: a straight-line graph computes what the If graph computes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tinct.benchmarks import if_overhead
from tinct.benchmarks.latency.inputs import model_inputs
from tinct.quantization.conditional import if_nodes


def _run(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


@pytest.mark.parametrize("pattern", [(0, 0, 0, 0), (1, 0, 0, 1), (1, 1, 1, 1)])
def test_straight_line_equals_the_if_graph_with_those_conditions(tiny_models, pattern):
    src = onnx.load(str(tiny_models.acolvit[0]))
    assert len(if_nodes(src)) == 4
    x = model_inputs(1)
    cond = if_overhead.with_condition_inputs(src)
    feed = {src.graph.input[0].name: x, **{f"cond_{k}": np.array(bool(b)) for k, b in enumerate(pattern)}}
    straight = if_overhead.straight_line(src, [bool(b) for b in pattern])
    assert not if_nodes(straight)
    onnx.checker.check_model(straight)
    want, got = _run(cond, feed), _run(straight, {src.graph.input[0].name: x})
    np.testing.assert_allclose(got[0], want[0], atol=1e-6)


def test_straight_line_refuses_a_wrong_pattern_length(tiny_models):
    from tinct.runtime.errors import TinctError

    with pytest.raises(TinctError, match="4 If nodes, a pattern of 3"):
        if_overhead.straight_line(onnx.load(str(tiny_models.acolvit[0])), [True] * 3)


def test_micro_graphs_agree():
    ifs, plain = if_overhead.micro(n=3, tokens=2, dim=4)
    x = np.ones((1, 2, 4), np.float32)
    on = _run(ifs, {"x": x, **{f"cond_{k}": np.array(True) for k in range(3)}})[0]
    off = _run(ifs, {"x": x, **{f"cond_{k}": np.array(False) for k in range(3)}})[0]
    np.testing.assert_allclose(on, _run(plain, {"x": x})[0], rtol=1e-6)
    np.testing.assert_array_equal(off, x)


def test_rows_and_markdown():
    a = {"median_ms": 12.0, "iqr_ms": 0.5}
    b = {"median_ms": 10.0, "iqr_ms": 0.25}
    row = if_overhead._row("openvino", "g", 0.5, a, b, 20)
    assert row["overhead_ms"] == 2.0 and row["us_per_if"] == 100.0 and row["if_over_straight"] == 1.2
    md = if_overhead.markdown({"rows": [row]})
    assert "| openvino | g | 0.50 | 12.00 (0.50) | 10.00 (0.25) | 1.20x | 100 |" in md


def test_cli_refuses_bad_rounds(capsys):
    with pytest.raises(SystemExit):
        if_overhead.main(["--rounds", "0"])
    assert "--rounds" in capsys.readouterr().err
