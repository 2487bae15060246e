"""pytest-benchmark latency suite (``pytest benchmarks/ --benchmark-only``).

Not collected by the default ``pytest`` (``testpaths = ["tests"]``). Options (also as environment
variables, for CI): ``--latency-models`` (TINCT_BENCH_MODELS), ``--latency-backends``
(TINCT_BENCH_BACKENDS), ``--latency-precisions`` (TINCT_BENCH_PRECISIONS), ``--latency-threads``
(TINCT_BENCH_THREADS), ``--latency-modes`` (TINCT_BENCH_MODES), ``--latency-rounds``
(TINCT_BENCH_ROUNDS), ``--latency-artifacts`` (TINCT_BENCH_ARTIFACTS).

Artifacts (ONNX exports, quantized files, OpenVINO IR) are built once per session in a
session-scoped fixture and cached on disk between sessions (rebuilt when the weights change).
"""

from __future__ import annotations

import os

import pytest

DEFAULTS = {
    "models": ("TINCT_BENCH_MODELS", "icolorit-tiny,acolvit-tiny-0.5"),
    "backends": ("TINCT_BENCH_BACKENDS", "pytorch,onnxruntime,openvino"),
    "precisions": ("TINCT_BENCH_PRECISIONS", "fp32,bf16,int8"),
    "threads": ("TINCT_BENCH_THREADS", "1,2"),
    "modes": ("TINCT_BENCH_MODES", "model"),
    "rounds": ("TINCT_BENCH_ROUNDS", "30"),
    "artifacts": ("TINCT_BENCH_ARTIFACTS", ".benchmarks/artifacts"),
}


def pytest_addoption(parser):
    group = parser.getgroup("tinct latency")
    for name, (var, default) in DEFAULTS.items():
        group.addoption(f"--latency-{name}", default=os.environ.get(var, default),
                        help=f"latency suite {name} (env {var}; default {default})")


def _opt(config, name: str) -> list[str]:
    return [s.strip() for s in str(config.getoption(f"--latency-{name}")).split(",") if s.strip()]


def pytest_generate_tests(metafunc):
    if "latency_case" not in metafunc.fixturenames:
        return
    from tinct.runtime import timing

    cfg = metafunc.config
    params, ids = [], []
    for model in _opt(cfg, "models"):
        gated = model.startswith("acolvit")
        for mode in _opt(cfg, "modes"):
            for backend in _opt(cfg, "backends"):
                precisions = ["fp32"] if backend == "pytorch" else _opt(cfg, "precisions")
                for precision in precisions:
                    if backend == "onnxruntime" and precision == "bf16":
                        continue  # not an ONNX Runtime CPU configuration (see benchmarks.latency)
                    threads = [1] if mode == "throughput" else [int(t) for t in _opt(cfg, "threads")]
                    for t in threads:
                        batch = 8 if mode == "throughput" else 1
                        params.append(timing.Case(model, backend, precision, t, mode, "own" if gated else "",
                                                   batch=batch))
                        ids.append(f"{model}-{mode}-{backend}-{precision}-{t}t")
    metafunc.parametrize("latency_case", params, ids=ids)


@pytest.fixture(scope="session")
def latency_store(request):
    """The models and the artifacts built from them, shared by every benchmark of the session."""
    from tinct.benchmarks.latency import artifacts

    return artifacts.ModelStore(_opt(request.config, "artifacts")[0])


@pytest.fixture(scope="session")
def latency_prepared(latency_store):
    """case key -> Timed (engines are loaded once per session, outside the timed region)."""
    cache: dict = {}
    yield cache
    for t in cache.values():
        if not isinstance(t, str) and t.close:
            t.close()


@pytest.fixture(scope="session")
def latency_rounds(request) -> int:
    return int(_opt(request.config, "rounds")[0])
