"""Latency benchmarks for pytest-benchmark, parametrized over model x mode x backend x precision x threads.

    pytest benchmarks/ --benchmark-only                                   # a few minutes here
    pytest benchmarks/ --benchmark-only --benchmark-autosave              # store a baseline
    pytest benchmarks/ --benchmark-only --benchmark-compare \\
        --benchmark-compare-fail=median:10%                               # CI gate vs the last saved run

Each test times one configuration with ``benchmark.pedantic`` (fixed rounds, one call per round,
warm-up first). pytest-benchmark runs the tests one after another, not interleaved: for
comparisons between engines use ``tinct bench latency`` (round-robin, ratios in one run); for a CI
gate use 1 thread (stable within a few per cent here; 2-thread timings swing 30-50 % with load).
Artifacts are cached in the ``latency_store`` session fixture (see ``conftest.py``). Every engine is
checked against ONNX Runtime FP32 first (``fidelity.fidelity_check``, the guard's criteria): an engine
that fails it FAILS its test and is never timed; only an engine that cannot run here is skipped.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

from tinct.benchmarks.latency import engines
from tinct.runtime import timing

WARMUP = 3


def _prepare(case, store, prepared):
    key = case.key
    if key not in prepared:
        if case.backend == "pytorch":
            setup = engines.torch_case_setup(store, case)
        elif case.backend in ("onnxruntime", "openvino"):
            setup = engines.engine_case_setup(store, case)
        else:
            setup = None
        try:
            if setup is None:
                raise timing.SkipCase(f"{case.backend} is not a CPU backend")
            prepared[key] = setup()
        except (timing.SkipCase, timing.CaseFailed) as exc:
            prepared[key] = exc
    t = prepared[key]
    if isinstance(t, timing.CaseFailed):  # runs here but its outputs are wrong: a failure, never a skip
        pytest.fail(f"{case.backend} {case.precision}: {t}")
    if isinstance(t, timing.SkipCase):  # cannot run here (no such library or instruction set)
        pytest.skip(str(t))
    return t


def test_latency(benchmark, latency_case, latency_store, latency_prepared, latency_rounds):
    case = latency_case
    t = _prepare(case, latency_store, latency_prepared)
    benchmark.group = f"{case.model} {case.mode} {case.threads}t"
    benchmark.extra_info.update({
        "model": case.model, "backend": case.backend, "precision": case.precision, "threads": case.threads,
        "mode": case.mode, "batch": case.batch, "weights": latency_store.weights_label(case.model),
        **{k: v for k, v in t.info.items() if isinstance(v, (str, int, float, bool, type(None)))},
    })

    def setup():
        if t.before:
            t.before()

    benchmark.pedantic(t.call, setup=setup, rounds=latency_rounds, iterations=1, warmup_rounds=WARMUP)
    if t.after:
        t.after()
