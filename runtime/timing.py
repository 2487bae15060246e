"""The one timing scheduler of tinct: cases timed round-robin in one process, medians with spread.

Every timing tinct reports goes through :func:`run_cases`: ``tinct bench latency``, ``--precision auto``,
``tinct doctor``, ``tinct train --speed`` and the benchmark scripts. Each case is set up first, warmed
up, then timed round-robin (one call of every case per round, in a seeded shuffled order), so a
neighbour's burst of load spreads over all cases instead of one. Standard library and numpy only.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm


class SkipCase(Exception):
    """A case that cannot run here; the message says why (recorded in ``skipped``)."""


class CaseFailed(Exception):
    """A case that runs here but failed its fidelity check (recorded in ``failed``, never timed)."""



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


def _set_up(cases: Sequence[Case], log) -> tuple[list[tuple[Case, Timed]], list[dict], list[dict]]:
    """(active cases with what their setup returned, skipped, failed): a case whose setup raises is
    skipped with the reason, one that fails its fidelity check is failed and never timed."""
    skipped: list[dict] = []
    failed: list[dict] = []
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
            failed.append({**c.base_entry(), "reason": str(exc)})
            if log:
                log(f"latency: {c.label} {c.backend}/{c.precision}: FAILED {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - an engine that cannot build/load: report it, measure the rest
            skipped.append({**c.base_entry(), "reason": f"setup failed: {type(exc).__name__}: {_reason(exc)}"})
            if log:
                log(f"latency: {c.label} {c.backend}/{c.precision}: setup failed: {_reason(exc)}")
            continue
        active.append((c, t))
    return active, skipped, failed


class _Timer:
    """The per-case samples and failures of one run, and the calls that fill them."""

    def __init__(self, timed: list[Timed], clock: Callable[[], float], gap_s: float, burst: int):
        self.timed, self.clock, self.gap_s, self.burst = timed, clock, gap_s, burst
        self.samples: list[list[float]] = [[] for _ in timed]
        self.failed: dict[int, str] = {}

    def turn(self, i: int, record: bool) -> None:
        """One turn of case ``i``: ``burst`` calls, the first untimed when ``burst`` > 1."""
        if self.burst > 1:
            self.call(i, False)
        for _ in range(max(1, self.burst - 1)):
            self.call(i, record)

    def call(self, i: int, record: bool) -> None:
        if i in self.failed:
            return
        t = self.timed[i]
        try:
            if t.before:
                t.before()
            t0 = self.clock()
            t.call()
            t1 = self.clock()
            if t.after:
                t.after()
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            self.failed[i] = f"failed while timed: {type(exc).__name__}: {_reason(exc)}"
            return
        if record:
            self.samples[i].append((t1 - t0) * 1e3)
        if self.gap_s:
            time.sleep(self.gap_s)


def _results(active: list[tuple[Case, Timed]], timer: _Timer, skipped: list[dict]) -> list[dict]:
    """Each case's entry (statistics of its samples, its info and extras); a case that failed while timed
    goes to ``skipped`` with the reason. Every case is closed."""
    results = []
    for i, (c, t) in enumerate(active):
        extra = {}
        if t.extra and i not in timer.failed:
            with contextlib.suppress(Exception):
                extra = t.extra() or {}
        if t.close:
            with contextlib.suppress(Exception):
                t.close()
        if i in timer.failed:
            skipped.append({**c.base_entry(), **t.info, "reason": timer.failed[i]})
            continue
        entry = {**c.base_entry(), **t.info, **stats(timer.samples[i]), **extra}
        if c.mode == "throughput" or c.batch > 1:
            entry["images_per_s"] = c.batch * 1e3 / entry["median_ms"]
        results.append(entry)
    return results


def run_cases(cases: Sequence[Case], rounds: int = 50, warmup: int = 5, order: str = "shuffle", seed: int = 0,
              clock: Callable[[], float] = time.perf_counter, gap_s: float = 0.0, progress: bool = False,
              log: Callable[[str], None] | None = None, burst: int = 1) -> RunResult:
    """Set up, warm up, then time every case round-robin (see the module docstring).

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
    active, skipped, failed_cases = _set_up(cases, log)
    timer = _Timer([t for _c, t in active], clock, gap_s, burst)
    schedule = round_orders(len(active), rounds, order, seed)
    warm = [round_orders(len(active), 1, order, seed + 7919 + w)[0] for w in range(warmup)]
    bar = tqdm(total=(warmup + rounds) * len(active), desc="latency", unit="call", file=sys.stderr,
               dynamic_ncols=True) if progress else None
    try:
        for record, orders in ((False, warm), (True, schedule)):
            for idx in orders:
                for i in idx:
                    timer.turn(i, record)
                    if bar:
                        bar.update()
    finally:
        if bar:
            bar.close()
    results = _results(active, timer, skipped)
    return RunResult(results, skipped, schedule, [c for c, _ in active], failed_cases)
