"""A-ColViT on OpenVINO: gate-pattern specialization (runtime.backends.openvino_gates)."""

from __future__ import annotations

import numpy as np
import pytest

from tinct.benchmarks.latency.inputs import model_inputs
from tinct.runtime.backends import open_backend
from tinct.runtime.backends.base import AUX_GATES_OUTPUT
from tinct.runtime.backends.openvino_gates import SPECULATE_AT, GateSpecializer


class FakePool:
    """A specialized 'graph' that reports the gate pattern the test chose for the next call."""

    def __init__(self, pattern, log):
        self.pattern, self.log = pattern, log
        self.next_gates = pattern

    def infer(self, inputs):
        self.log.append(("special", self.pattern))
        return {"ab": np.full(1, 1.0), AUX_GATES_OUTPUT: np.array([self.next_gates], float)}


def _fake(patterns_of_calls, background=False):
    """A specializer over a fake dynamic graph whose n-th call decides patterns_of_calls[n]."""
    log, pools = [], {}

    def compile_pattern(p):
        pools[p] = FakePool(p, log)
        return pools[p]

    spec = GateSpecializer(2, compile_pattern, background=background)
    calls = iter(patterns_of_calls)

    def dynamic(inputs):
        p = next(calls)
        log.append(("dynamic", p))
        for pool in pools.values():
            pool.next_gates = p  # a specialized graph would compute the same decisions on this input
        return {"ab": np.zeros(1), AUX_GATES_OUTPUT: np.array([p], float)}

    return spec, dynamic, log, pools


def test_a_repeating_pattern_is_compiled_then_speculated():
    p = (True, False)
    spec, dynamic, log, pools = _fake([p] * 30)
    outs = []
    for _ in range(20):
        outs.append(spec.infer({}, dynamic))
    assert list(pools) == [p] and spec.compiled == 1
    first = next(i for i, (kind, _) in enumerate(log) if kind == "special")
    assert spec.rate >= SPECULATE_AT and spec.hits == 20 - first
    assert all(kind == "special" for kind, _ in log[first:])  # every hit is one call, no dynamic re-run
    d = spec.describe()
    assert d["calls"] == 20 and d["patterns_kept"] == 1 and d["hits"] == spec.hits and not d["errors"]


def test_a_changing_pattern_is_never_speculated():
    pats = [(True, False), (False, True), (True, True), (False, False)] * 6
    spec, dynamic, log, pools = _fake(pats)
    for _ in range(len(pats)):
        spec.infer({}, dynamic)
    assert spec.speculated == 0 and spec.compiled == 0 and all(kind == "dynamic" for kind, _ in log)


def test_a_failed_guard_reruns_on_the_dynamic_graph():
    p, q = (True, False), (False, True)
    decided = [p]
    spec, dynamic, log, pools = _fake(iter(lambda: decided[0], None))
    for _ in range(12):
        spec.infer({}, dynamic)
    assert spec.hits > 0
    decided[0] = pools[p].next_gates = q  # this input makes other decisions: the specialized graph's guard sees it
    hits = spec.hits
    out = spec.infer({}, dynamic)
    assert log[-2:] == [("special", p), ("dynamic", q)]
    assert out["ab"][0] == 0.0 and spec.hits == hits and spec.last == q and spec.rate < SPECULATE_AT


def test_failed_compiles_are_reported_and_stay_dynamic():
    def compile_pattern(p):
        raise RuntimeError("no memory\nmore")

    spec = GateSpecializer(2, compile_pattern, background=False)
    for _ in range(12):
        spec.infer({}, lambda inputs: {AUX_GATES_OUTPUT: np.array([[1.0, 0.0]])})
    assert spec.speculated == 0 and spec.describe()["errors"][0] == "RuntimeError: no memory"


def test_least_recently_used_patterns_are_evicted():
    spec = GateSpecializer(2, lambda p: FakePool(p, []), background=False, max_patterns=2)
    for p in [(True, True), (True, False), (False, True)]:
        spec._build(p)
    assert list(spec._pools) == [(True, False), (False, True)]


def test_openvino_specialized_graph_equals_the_if_graph(tiny_models):
    pytest.importorskip("openvino")
    path = tiny_models.acolvit[0]
    be = open_backend(path, "openvino", threads=1)
    ref = open_backend(path, "openvino", threads=1, specialize_gates=False)
    try:
        assert be._specializer is not None and ref._specializer is None
        spec = be._specializer
        spec._background = False  # compile in this thread: the test does not wait on timing
        x = model_inputs(1)
        want = ref.infer({ref.input_names[0]: x})
        for _ in range(15):
            got = be.infer({be.input_names[0]: x})
            np.testing.assert_allclose(got["ab"], want["ab"], atol=1e-5)
            np.testing.assert_array_equal(got[AUX_GATES_OUTPUT], want[AUX_GATES_OUTPUT])
        assert spec.compiled == 1 and spec.hits > 0
        # the specialized graph is straight-line: OpenVINO folded every If into its chosen branch
        pool = next(iter(spec._pools.values()))
        kinds = {op.get_rt_info()["layerType"].astype(str) for op in pool.compiled.get_runtime_model().get_ordered_ops()}
        assert "If" not in kinds
        d = be.describe()["gate_specialization"]
        assert d["if_ops"] == 4 and d["hits"] == spec.hits
        # another batch size and iColoriT graphs are never specialized
        be.infer({be.input_names[0]: model_inputs(2)})
        assert spec.calls == 15
    finally:
        be.close()
        ref.close()
    plain = open_backend(tiny_models.icolorit[0], "openvino", threads=1)
    assert plain._specializer is None and plain.describe()["gate_specialization"] is None
    plain.close()
