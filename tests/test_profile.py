"""Where the time goes (``tinct bench latency --profile``): the backends' profilers and the grouping."""

from __future__ import annotations

import pytest

from tinct.benchmarks import profile as prof
from tinct.benchmarks.latency import engines
from tinct.benchmarks.latency.inputs import model_inputs
from tinct.runtime.backends import open_backend
from tinct.runtime.errors import TinctError
from tinct.runtime.timing import Case, Timed


def _check(p: dict, backend: str) -> dict:
    cats = p["categories"]
    assert p["backend"] == backend and set(cats) == set(prof.CATEGORIES)
    assert p["ms_per_call"] == pytest.approx(sum(cats.values()), abs=0.01)
    assert all(v >= 0 for v in cats.values()) and p["top"]
    return cats


def test_onnxruntime_profile_groups_weights_attention_and_if(tiny_models):
    x = model_inputs(1)
    cats = _check(prof.profile_backend(tiny_models.icolorit[0], "onnxruntime", x, runs=3, threads=1), "onnxruntime")
    assert cats["weights (FC/MatMul)"] > 0 and cats["attention"] > 0 and cats["convolution"] > 0
    assert cats["If"] == 0
    gated = _check(prof.profile_backend(tiny_models.acolvit[0], "onnxruntime", x, runs=3, threads=1), "onnxruntime")
    # the If's own cost, its bodies' nodes in their categories (the body products are still weights)
    assert gated["If"] > 0 and gated["weights (FC/MatMul)"] > 0


def test_openvino_profile_groups_fused_layers(tiny_models):
    pytest.importorskip("openvino")
    x = model_inputs(1)
    cats = _check(prof.profile_backend(tiny_models.icolorit[0], "openvino", x, runs=3, threads=1), "openvino")
    assert cats["weights (FC/MatMul)"] > 0 and cats["convolution"] > 0
    assert cats["attention"] > 0  # the fused attention subgraph is named by what was fused into it
    gated = _check(prof.profile_backend(tiny_models.acolvit[0], "openvino", x, runs=3, threads=1), "openvino")
    assert gated["If"] > 0


def test_torch_profile(tiny_models):
    torch = pytest.importorskip("torch")
    model = tiny_models.icolorit[1]

    def run_x(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    cats = _check(prof.profile_torch(run_x, model_inputs(1), runs=2), "pytorch")
    assert cats["weights (FC/MatMul)"] > 0 and cats["normalization"] > 0


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_profile_records_need_profile_true(tiny_models, backend):
    pytest.importorskip(backend)
    be = open_backend(tiny_models.icolorit[0], backend, threads=1)
    try:
        with pytest.raises(TinctError, match="profile=True"):
            be.profile_records()
    finally:
        be.close()


def test_if_overhead_is_its_time_minus_its_bodies():
    records = [  # one thread: an If of 1.0 ms holding two body nodes (0.3 + 0.4 ms), then a top-level MatMul
        {"name": "if0", "op": "If", "ms": 1.0, "ts": 100, "tid": 1},
        {"name": "mm_w", "op": "MatMul", "ms": 0.3, "ts": 150, "tid": 1},
        {"name": "sm", "op": "Softmax", "ms": 0.4, "ts": 500, "tid": 1},
        {"name": "mm_a", "op": "MatMul", "ms": 0.2, "ts": 2000, "tid": 1},
        {"name": "other_thread", "op": "Add", "ms": 0.5, "ts": 200, "tid": 2},
    ]
    kinds = {"mm_w": ("MatMul", True), "mm_a": ("MatMul", False)}
    cats = prof._ort_categories(records, kinds)
    assert cats["If"] == pytest.approx(0.3)
    assert cats["weights (FC/MatMul)"] == pytest.approx(0.3)
    assert cats["attention"] == pytest.approx(0.6)
    assert cats["elementwise"] == pytest.approx(0.5)


def test_profile_extra_reports_failures_and_keeps_other_extras():
    t = Timed(call=lambda: None, extra=lambda: {"stages": 1})
    engines._with_profile(t, Case("m", "onnxruntime"), lambda x: {"ms_per_call": 1.0, "shape": list(x.shape)})
    assert t.extra() == {"stages": 1, "profile": {"ms_per_call": 1.0, "shape": [1, 4, 224, 224]}}

    def boom(x):
        raise RuntimeError("no counters")

    t = Timed(call=lambda: None)
    engines._with_profile(t, Case("m", "openvino"), boom)
    assert t.extra() == {"profile_error": "RuntimeError: no counters"}
    t = Timed(call=lambda: None)
    engines._with_profile(t, Case("m", "openvino", mode="session"), boom)
    assert t.extra is None  # session modes time more than the model: their model call is profiled in model mode


def test_profile_table():
    cats = dict.fromkeys(prof.CATEGORIES, 0.0)
    cats.update({"weights (FC/MatMul)": 3.0, "attention": 1.0})
    rows = [{"model": "icolorit-tiny", "backend": "openvino", "precision": "int8", "threads": 1,
             "profile": {"ms_per_call": 4.0, "categories": cats}},
            {"model": "icolorit-tiny", "backend": "onnxruntime", "precision": "fp32", "threads": 1,
             "profile_error": "RuntimeError: x"},
            {"model": "icolorit-tiny", "backend": "pytorch", "precision": "fp32", "threads": 1}]
    table = prof.profile_table(rows).splitlines()
    assert len(table) == 4
    assert "| icolorit-tiny openvino int8 1t | 4.00 | 75 % | - | 25 % |" in table[2]
    assert "failed: RuntimeError: x" in table[3]
