"""The latency measurement engine with fake cases and a fake clock: no real timing is asserted."""

from __future__ import annotations

import json

import pytest

from tinct.benchmarks.latency import artifacts, patterns, plan, ratios
from tinct.benchmarks.latency import common as lat_common
from tinct.benchmarks.latency import output as lat_output
from tinct.cli import bench_latency
from tinct.runtime import timing
from tinct.runtime.timing import Case, SkipCase, Timed


class FakeClock:
    """A clock that only moves when a fake case's call advances it."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, ms: float) -> None:
        self.t += ms / 1e3


def fake_case(clock, log, name, backend="onnxruntime", precision="fp32", durations=(10.0,), threads=1,
              mode="model", variant="", **kw):
    """A case whose n-th call takes durations[n % len] ms on ``clock`` and logs its name."""
    state = {"n": 0}

    def call():
        clock.advance(durations[state["n"] % len(durations)])
        state["n"] += 1
        log.append((name, backend, precision, variant))

    return Case(name, backend, precision, threads, mode, variant, setup=lambda: Timed(call=call), **kw)


def test_round_robin_calls_every_case_once_per_round():
    clock, log = FakeClock(), []
    cases = [fake_case(clock, log, f"m{i}") for i in range(5)]
    run = timing.run_cases(cases, rounds=7, warmup=2, clock=clock, seed=3)
    assert len(log) == 5 * (7 + 2)
    assert len(run.schedule) == 7
    for rnd in run.schedule:
        assert sorted(rnd) == list(range(5))
    # the timed calls happen in the schedule's order, after the warm-up rounds
    timed = [c[0] for c in log[5 * 2:]]
    assert timed == [f"m{i}" for rnd in run.schedule for i in rnd]
    assert [r["runs"] for r in run.results] == [7] * 5


def test_burst_times_the_warm_calls_only():
    """--burst 3: each turn of a case is three consecutive calls; the first (cold: 50 ms) is untimed."""
    clock, log = FakeClock(), []
    cases = [fake_case(clock, log, f"m{i}", durations=(50.0, 10.0, 10.0)) for i in range(2)]
    run = timing.run_cases(cases, rounds=4, warmup=1, clock=clock, burst=3)
    assert len(log) == 2 * 3 * (4 + 1)
    names = [c[0] for c in log]
    assert all(len(set(names[j:j + 3])) == 1 for j in range(0, len(names), 3))  # bursts are consecutive
    assert [r["runs"] for r in run.results] == [8, 8]
    assert all(r["median_ms"] == pytest.approx(10.0) and r["min_ms"] == pytest.approx(10.0) for r in run.results)
    with pytest.raises(ValueError, match="burst"):
        timing.run_cases(cases, rounds=1, burst=0, clock=clock)


@pytest.mark.parametrize("order", ["shuffle", "rotate", "fixed"])
def test_round_orders_are_permutations(order):
    orders = timing.round_orders(6, 20, order, seed=1)
    assert all(sorted(o) == list(range(6)) for o in orders)
    if order == "fixed":
        assert all(o == list(range(6)) for o in orders)
    else:
        assert len({tuple(o) for o in orders}) > 1  # the position of a case varies between rounds
    assert timing.round_orders(6, 20, order, seed=1) == orders  # deterministic


def test_round_orders_rejects_unknown_order():
    with pytest.raises(ValueError):
        timing.round_orders(3, 2, "random")


def test_statistics():
    s = timing.stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median_ms"] == 3.0
    assert s["min_ms"] == 1.0
    assert s["iqr_ms"] == pytest.approx(4.0 - 2.0)
    assert s["runs"] == 5
    assert s["mean_ms"] == pytest.approx(22.0)
    with pytest.raises(ValueError):
        timing.stats([])


def test_fake_clock_statistics_flow_into_results():
    clock, log = FakeClock(), []
    case = fake_case(clock, log, "m", durations=(10.0, 12.0, 11.0, 30.0))
    run = timing.run_cases([case], rounds=4, warmup=0, clock=clock)
    (e,) = run.results
    assert e["median_ms"] == pytest.approx(11.5)
    assert e["min_ms"] == pytest.approx(10.0)
    assert e["runs"] == 4


def test_untimed_hooks_are_not_measured():
    clock, seen = FakeClock(), []

    def setup():
        return Timed(call=lambda: clock.advance(5.0), before=lambda: (clock.advance(100.0), seen.append("b")),
                     after=lambda: (clock.advance(100.0), seen.append("a")),
                     extra=lambda: {"stages_median_ms": {"model": 5.0}}, info={"artifact": "x.onnx"})

    run = timing.run_cases([Case("m", "fake", setup=setup)], rounds=3, warmup=1, clock=clock)
    (e,) = run.results
    assert e["median_ms"] == pytest.approx(5.0)
    assert seen.count("b") == 4 and seen.count("a") == 4
    assert e["stages_median_ms"] == {"model": 5.0} and e["artifact"] == "x.onnx"


def test_ratios_vs_eager_ort_and_all_on():
    clock, log = FakeClock(), []
    cases = [
        fake_case(clock, log, "a", "pytorch", durations=(40.0,), variant="0.5"),
        fake_case(clock, log, "a", "onnxruntime", durations=(20.0,), variant="0.5"),
        fake_case(clock, log, "a", "openvino", "bf16", durations=(10.0,), variant="0.5"),
        fake_case(clock, log, "a", "openvino", "bf16", durations=(16.0,), variant="all"),
        fake_case(clock, log, "a", "openvino", "bf16", durations=(99.0,), variant="0.5", threads=2),
    ]
    run = timing.run_cases(cases, rounds=3, warmup=0, clock=clock)
    ratios.add_ratios(run.results)
    by = {(e["backend"], e["precision"], e["variant"], e["threads"]): e for e in run.results}
    ov = by[("openvino", "bf16", "0.5", 1)]
    assert ov["speedup_vs_eager"] == pytest.approx(4.0)
    assert ov["speedup_vs_ort_fp32"] == pytest.approx(2.0)
    assert ov["speedup_vs_all_on"] == pytest.approx(1.6)
    assert by[("pytorch", "fp32", "0.5", 1)]["speedup_vs_eager"] == pytest.approx(1.0)
    # no reference in its group (2 threads): null, never a ratio against another thread count
    other = by[("openvino", "bf16", "0.5", 2)]
    assert other["speedup_vs_eager"] is None and other["speedup_vs_ort_fp32"] is None
    assert "speedup_vs_all_on" not in by[("openvino", "bf16", "all", 1)]


def test_skipping_reasons():
    clock, log = FakeClock(), []

    def skip_setup():
        raise SkipCase("openvino is not installed")

    def broken_setup():
        raise RuntimeError("cannot load model.onnx\nmore detail")

    def failing_call():
        raise RuntimeError("boom")

    cases = [
        fake_case(clock, log, "ok"),
        Case("known", "tensorrt", skip="TensorRT is not installed"),
        Case("skip", "openvino", setup=skip_setup),
        Case("broken", "onnxruntime", setup=broken_setup),
        Case("fails", "onnxruntime", setup=lambda: Timed(call=failing_call)),
    ]
    run = timing.run_cases(cases, rounds=3, warmup=1, clock=clock)
    assert [e["model"] for e in run.results] == ["ok"]
    reasons = {s["model"]: s["reason"] for s in run.skipped}
    assert reasons["known"] == "TensorRT is not installed"
    assert reasons["skip"] == "openvino is not installed"
    assert reasons["broken"] == "setup failed: RuntimeError: cannot load model.onnx"
    assert reasons["fails"].startswith("failed while timed: RuntimeError: boom")
    assert "median_ms" not in json.dumps(run.skipped)


def test_json_schema_matches_the_report(tmp_path):
    from tinct.benchmarks.gate import load_result
    from tinct.benchmarks.report import collect

    clock, log = FakeClock(), []
    cases = [fake_case(clock, log, "icolorit-tiny", "pytorch", durations=(45.0,)),
             fake_case(clock, log, "icolorit-tiny", "onnxruntime", durations=(30.0,)),
             fake_case(clock, log, "icolorit-tiny", "onnxruntime", durations=(70.0,), mode="e2e"),
             fake_case(clock, log, "acolvit-tiny-0.5", "onnxruntime", durations=(15.0,), variant="0.5",
                       info={"kept_ratio": 0.5}),
             Case("x", "openvino", skip="no")]
    run = timing.run_cases(cases, rounds=5, warmup=1, clock=clock)
    doc = lat_output.result_document(run, {"cpu": "fake"}, {"rounds": 5}, ["a note"], {"icolorit-tiny": "random"})
    path = lat_output.write_json(doc, tmp_path / "lat.json")
    data = json.loads(path.read_text())
    assert data["schema"] == lat_common.SCHEMA and data["kind"] == "latency"
    for e in data["results"]:
        for key in ("model", "backend", "precision", "threads", "median_ms", "iqr_ms", "min_ms", "runs"):
            assert key in e
        assert "kept_ratio" in e or e["variant"] is None
    # the entries stay unique under the compare gate's key (model, backend, precision, threads)
    keys = [(e["model"], e["backend"], e["precision"], e["threads"]) for e in data["results"]]
    assert len(set(keys)) == len(keys)
    assert data["skipped"][0]["reason"] == "no"
    # the report and the compare gate read it
    assert load_result(path)["kind"] == "latency"
    assert len(collect([path])["latency"]) == 4


def test_case_labels():
    assert Case("m", "ort").label == "m"
    assert Case("m", "ort", variant="own").label == "m"
    assert Case("m", "ort", variant="0.3", mode="e2e").label == "m[gates=0.3] e2e"
    assert Case("m", "ort", mode="throughput", batch=8).label == "m throughput-b8"


def test_markdown_table():
    results = [{"model": "m", "model_name": "m", "variant": None, "mode": "model", "batch": 1, "backend": "pytorch",
                "precision": "fp32", "threads": 1, "median_ms": 40.0, "iqr_ms": 1.0, "min_ms": 39.0, "runs": 5,
                "speedup_vs_eager": 1.0, "speedup_vs_ort_fp32": None}]
    md = lat_output.markdown_table(results, [{"model": "m", "backend": "openvino", "precision": "int8",
                                           "threads": 1, "reason": "no quantizer"}])
    assert "| m | model | - | pytorch | fp32 | 1 | 40.00 ± 1.00 | 39.00 | 5 | 1.00x | - | 25.0 |" in md
    assert "- no quantizer: m openvino int8 1t" in md


@pytest.mark.parametrize("spec,kept", [("all", 24), ("0.5", 12), ("0.3", 7), ("own", None)])
def test_gate_patterns(spec, kept):
    g = patterns.gate_pattern(spec, 12)
    if kept is None:
        assert g is None
        return
    assert len(g) == 12 and sum(map(sum, g)) == kept
    attn, mlp = sum(a for a, _ in g), sum(m for _, m in g)
    assert abs(attn - mlp) <= 1  # attention and MLP in equal shares
    assert patterns.kept_fraction(g) == pytest.approx(kept / 24)


def test_gate_pattern_bits_and_errors():
    bits = "11" * 6 + "10" * 6
    g = patterns.gate_pattern(bits, 12)
    assert patterns.gate_bits(g) == bits
    for bad in ("0", "1.5", "half", "11"):
        with pytest.raises(ValueError):
            patterns.gate_pattern(bad, 12)


def test_parse_list():
    assert plan.parse_list("a, b,,c") == ["a", "b", "c"]
    with pytest.raises(ValueError, match="unknown mode"):
        plan.parse_list("model,fast", lat_common.MODES, "mode")


def test_plan_without_gpu_records_one_skip(tmp_path, monkeypatch):
    store = artifacts.ModelStore(tmp_path)
    cases = plan.plan_cases(store, ["icolorit-tiny", "acolvit-tiny-0.5"], ["onnxruntime", "openvino"],
                               ["fp32", "int8"], [1, 2], ["model", "e2e", "throughput"], gpu=False)
    gpu = [c for c in cases if c.device == "cuda"]
    assert len(gpu) == 1 and "CUDA" in gpu[0].skip
    keys = [c.key for c in cases]
    assert len(set(keys)) == len(keys)
    # every group has its PyTorch eager reference; throughput is single-threaded
    groups = {c.group for c in cases if c.device == "cpu"}
    refs = {c.group for c in cases if c.backend == "pytorch"}
    assert groups == refs
    assert {c.threads for c in cases if c.mode == "throughput"} == {1}
    # A-ColViT: every gate pattern in model mode, its own decisions elsewhere
    acv = [c for c in cases if c.model == "acolvit-tiny-0.5" and c.backend == "onnxruntime" and c.threads == 1]
    assert {c.variant for c in acv if c.mode == "model"} == set(lat_common.DEFAULT_GATES)
    assert {c.variant for c in acv if c.mode == "e2e"} == {"own"}


def test_random_weights_are_flagged(tmp_path, monkeypatch):
    store = artifacts.ModelStore(tmp_path)
    monkeypatch.setattr(store, "weights_path", lambda name: None)
    assert store.weights_label("icolorit-tiny") == lat_common.RANDOM_FLAG


def test_bench_latency_is_registered():
    from tinct.cli.main import build_parser

    args = build_parser().parse_args(["bench", "latency", "--models", "icolorit-tiny", "--rounds", "3"])
    assert args.func is bench_latency.run and args.rounds == 3


def _entry(name, backend="openvino", precision="int8", ms=10.0, macs=1.4e9, kept=None, threads=1, mode="model"):
    return {"model": name, "model_name": name, "backend": backend, "precision": precision, "threads": threads,
            "mode": mode, "batch": 1, "median_ms": ms, "iqr_ms": 0.1, "macs": macs, "kept_ratio": kept}


def test_skipping_paid_is_speedup_over_mac_ratio_same_engine_only():
    results = [_entry("icolorit-tiny", ms=16.0, macs=1.6e9),
               _entry("acolvit-tiny-0.5", ms=10.0, macs=0.8e9, kept=0.5),
               _entry("acolvit-tiny-0.5", backend="onnxruntime", ms=10.0, macs=0.8e9, kept=0.5),
               _entry("acolvit-tiny-0.5", ms=9.0, macs=0.8e9, kept=0.5, threads=2),
               _entry("icolorit-small", ms=40.0, macs=4e9)]
    ratios.add_skipping(results)
    a = results[1]
    assert a["speedup_vs_dense"] == pytest.approx(1.6) and a["mac_ratio"] == pytest.approx(2.0)
    assert a["skipping_paid"] == pytest.approx(0.8)
    # no iColoriT-T of the same engine / thread count in the run: no ratio, never one across engines
    assert "skipping_paid" not in results[2] and "skipping_paid" not in results[3]
    assert "skipping_paid" not in results[0] and "skipping_paid" not in results[4]
