"""Cases, the round-robin scheduler, statistics and same-run ratios (one scheduler for every timing in tinct)."""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from tinct.benchmarks.latency.common import CaseFailed, SkipCase

# ----------------------------------------------------------------------------- cases and engine

@dataclass
class Timed:
    """What a case's setup returns: ``call`` is timed; ``before``/``after`` run untimed around it."""

    call: Callable[[], object]
    before: Callable[[], None] | None = None
    after: Callable[[], None] | None = None
    info: dict = field(default_factory=dict)  # merged into the result entry (describe(), kept_ratio...)
    extra: Callable[[], dict] | None = None  # called once after timing: more fields (e.g. stage medians)
    close: Callable[[], None] | None = None


@dataclass
class Case:
    model: str  # registry name
    backend: str  # pytorch | pytorch-cudagraph | onnxruntime | openvino | tensorrt | fake...
    precision: str = "fp32"
    threads: int | None = 1
    mode: str = "model"
    variant: str = ""  # A-ColViT gate pattern label ("own", "all", "0.5", bits); "" for iColoriT
    device: str = "cpu"
    batch: int = 1
    setup: Callable[[], Timed] | None = None
    skip: str | None = None  # known not to run here: the reason
    info: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (self.model, self.variant, self.backend, self.precision, self.threads, self.mode, self.device,
                self.batch)

    @property
    def group(self) -> tuple:
        """Cases that are compared with each other (same work, different engines)."""
        return (self.model, self.variant, self.threads, self.mode, self.device, self.batch)

    @property
    def label(self) -> str:
        """The ``model`` field of the result: unique per (variant, mode, batch) for the compare gate."""
        s = self.model
        if self.variant and self.variant != "own":
            s += f"[gates={self.variant}]"
        if self.mode != "model":
            s += f" {self.mode}" + (f"-b{self.batch}" if self.mode == "throughput" else "")
        return s

    def base_entry(self) -> dict:
        return {"model": self.label, "backend": self.backend, "precision": self.precision,
                "threads": self.threads, "device": self.device, "batch": self.batch, "mode": self.mode,
                "model_name": self.model, "variant": self.variant or None, **self.info}


def stats(samples_ms: Sequence[float]) -> dict:
    """median, IQR (p75 - p25), min, mean, p90 and the number of samples, in ms."""
    import numpy as np
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no samples")
    q25, q50, q75, q90 = np.percentile(a, [25, 50, 75, 90])
    return {"median_ms": float(q50), "iqr_ms": float(q75 - q25), "min_ms": float(a.min()),
            "mean_ms": float(a.mean()), "p90_ms": float(q90), "runs": int(a.size)}


def round_orders(n_cases: int, rounds: int, order: str = "shuffle", seed: int = 0) -> list[list[int]]:
    """Per round, the order in which the cases are called: each case exactly once per round."""
    if order not in ("shuffle", "fixed", "rotate"):
        raise ValueError(f"order must be shuffle, fixed or rotate, not {order!r}")
    rng = random.Random(seed)
    out = []
    for r in range(rounds):
        idx = list(range(n_cases))
        if order == "shuffle":
            rng.shuffle(idx)
        elif order == "rotate" and n_cases:
            k = r % n_cases
            idx = idx[k:] + idx[:k]
        out.append(idx)
    return out


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


@dataclass
class RunResult:
    results: list[dict]
    skipped: list[dict]
    schedule: list[list[int]]  # the round-robin order actually used (indices into the active cases)
    active: list[Case]
    failed: list[dict] = field(default_factory=list)  # ran, but failed the fidelity check: not timed


def run_cases(cases: Sequence[Case], rounds: int = 50, warmup: int = 5, order: str = "shuffle", seed: int = 0,
              clock: Callable[[], float] = time.perf_counter, gap_s: float = 0.0, progress: bool = False,
              log: Callable[[str], None] | None = None, burst: int = 1) -> RunResult:
    """Set up, warm up, then time every case round-robin (see the module docstring). Long on purpose:
    setup, warm-up, the interleaved rounds and the results share the per-case state (samples, failures)
    and read as one schedule.

    ``clock`` returns seconds (tests pass a fake one). ``gap_s`` sleeps between calls so that the
    spinning worker threads of one engine back off before the next engine runs.
    ``burst`` > 1: each turn of a case is ``burst`` consecutive calls; the first is untimed (it
    reloads the weights the other engines pushed out of the caches) and the others are timed: the
    steady state of an application that runs one engine over and over, still interleaved.
    A case whose setup raises is skipped with the reason; one that fails while timed is dropped
    from the rest of the run and reported as skipped (its samples are discarded).
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    if burst < 1:
        raise ValueError("burst must be at least 1")
    skipped: list[dict] = []
    failed_cases: list[dict] = []
    active: list[tuple[Case, Timed]] = []
    for c in cases:
        if c.skip:
            skipped.append({**c.base_entry(), "reason": c.skip})
            continue
        try:
            t = c.setup() if c.setup else None
            if t is None:
                raise SkipCase("case has no setup")
        except SkipCase as exc:
            skipped.append({**c.base_entry(), "reason": _reason(exc)})
            continue
        except CaseFailed as exc:
            failed_cases.append({**c.base_entry(), "reason": str(exc)})
            if log:
                log(f"latency: {c.label} {c.backend}/{c.precision}: FAILED {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - an engine that cannot build/load: report it, measure the rest
            skipped.append({**c.base_entry(), "reason": f"setup failed: {type(exc).__name__}: {_reason(exc)}"})
            if log:
                log(f"latency: {c.label} {c.backend}/{c.precision}: setup failed: {_reason(exc)}")
            continue
        active.append((c, t))

    samples: list[list[float]] = [[] for _ in active]
    failed: dict[int, str] = {}
    schedule = round_orders(len(active), rounds, order, seed)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=(warmup + rounds) * len(active), desc="latency", unit="call", file=sys.stderr,
                   dynamic_ncols=True)

    def one(i: int, timed: bool) -> None:
        if burst > 1:
            call(i, False)
            for _ in range(burst - 1):
                call(i, timed)
        else:
            call(i, timed)

    def call(i: int, timed: bool) -> None:
        if i in failed:
            return
        t = active[i][1]
        try:
            if t.before:
                t.before()
            t0 = clock()
            t.call()
            t1 = clock()
            if t.after:
                t.after()
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            failed[i] = f"failed while timed: {type(exc).__name__}: {_reason(exc)}"
            return
        if timed:
            samples[i].append((t1 - t0) * 1e3)
        if gap_s:
            time.sleep(gap_s)

    try:
        for w in range(warmup):
            for i in round_orders(len(active), 1, order, seed + 7919 + w)[0]:
                one(i, False)
                if bar:
                    bar.update()
        for idx in schedule:
            for i in idx:
                one(i, True)
                if bar:
                    bar.update()
    finally:
        if bar:
            bar.close()

    results = []
    for i, (c, t) in enumerate(active):
        extra = {}
        if t.extra and i not in failed:
            with contextlib.suppress(Exception):
                extra = t.extra() or {}
        if t.close:
            with contextlib.suppress(Exception):
                t.close()
        if i in failed:
            skipped.append({**c.base_entry(), **t.info, "reason": failed[i]})
            continue
        entry = {**c.base_entry(), **t.info, **stats(samples[i]), **extra}
        if c.mode == "throughput" or c.batch > 1:
            entry["images_per_s"] = c.batch * 1e3 / entry["median_ms"]
        results.append(entry)
    add_ratios(results)
    return RunResult(results, skipped, schedule, [c for c, _ in active], failed_cases)


def _group(e: dict) -> tuple:
    return (e.get("model_name", e.get("model")), e.get("variant"), e.get("threads"), e.get("mode"),
            e.get("device"), e.get("batch"))


def add_ratios(results: list[dict]) -> list[dict]:
    """Speedups (reference median / entry median, > 1 = faster) within one run, in place:

    - ``speedup_vs_eager``: vs the PyTorch eager FP32 entry of the same model, pattern, threads,
      mode, batch and device;
    - ``speedup_vs_ort_fp32``: vs ONNX Runtime FP32 of the same group;
    - ``speedup_vs_all_on`` (A-ColViT patterns): vs the same engine with every sub-layer kept.
    ``null`` where the reference was not measured in this run.
    """
    by_key = {}
    for e in results:
        by_key.setdefault((_group(e), e["backend"], e["precision"]), e)

    def ratio(ref):
        return None if ref is None or not e["median_ms"] else ref["median_ms"] / e["median_ms"]

    for e in results:
        g = _group(e)
        e["speedup_vs_eager"] = ratio(by_key.get((g, "pytorch", "fp32")))
        e["speedup_vs_ort_fp32"] = ratio(by_key.get((g, "onnxruntime", "fp32")))
        if e.get("variant") not in (None, "", "all"):
            g_all = (g[0], "all", *g[2:])
            e["speedup_vs_all_on"] = ratio(by_key.get((g_all, e["backend"], e["precision"])))
    return results


def add_efficiency(results: list[dict], log: Callable[[str], None] | None = None) -> list[dict]:
    """In place: ``peak_gmacs`` (this machine's matmul peak through the case's library, precision and
    thread count; :mod:`benchmarks.peak`) and ``efficiency`` = MACs / (median x peak). Measured after
    the timed rounds, so the microbenchmark never overlaps them."""
    from tinct.benchmarks.peak import efficiency, peak_gmacs

    for e in results:
        if e.get("device", "cpu") != "cpu" or not e.get("macs"):
            continue
        try:
            peak = peak_gmacs(e["backend"], e["precision"], int(e.get("threads") or 0))
        except Exception as exc:  # noqa: BLE001 - a missing peak leaves efficiency null, never fails the run
            if log:
                log(f"latency: no matmul peak for {e['backend']}/{e['precision']}: {_reason(exc)}")
            peak = None
        per_image = e["macs"] * (e.get("batch") or 1)
        e["peak_gmacs"] = None if peak is None else round(peak, 1)
        e["efficiency"] = efficiency(per_image, e.get("median_ms"), peak)
    return results
