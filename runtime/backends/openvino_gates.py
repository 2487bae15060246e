"""A-ColViT on OpenVINO: the ``If`` overhead paid only when the gate decisions change.

OpenVINO's CPU plugin runs each ``If`` as a separate subgraph, copying its inputs in and its outputs out (memmove
was 75 % of a profile of 24 one-op ``If``): ~100 us per ``If`` whether its body is one op or an A-ColViT-T
sub-layer, 2.5 ms of a 7.7 ms call with every gate off; ONNX Runtime's costs ~10 us (1 thread, Zen 4,
``python -m tinct.benchmarks.if_overhead``; docs/performance.md).

So, like a JIT that specializes on what it saw and guards the assumption: when a batch-1 call repeats the gate
pattern of the call before (an interactive session moving hints: 41 of 44 updates on the sample photos), the
backend compiles, in the background, a copy of the graph with each ``If`` condition replaced by that pattern's
constant, which OpenVINO folds into the straight-line graph of the chosen branches. Later calls run the
specialized graph while its repeat rate says it pays (:data:`SPECULATE_AT`), and check the guard: the
specialized graph still computes every gate decision (its ``gates`` output). Equal to the pattern, the call ran
exactly the branches its own decisions chose, so its result is the dynamic graph's computation; different, the
call is re-run on the dynamic graph (a miss costs one extra call). Photos that change the pattern every call
(one-shot batches: 18 patterns over 72 validation photos) never speculate and pay nothing but the bookkeeping.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from tinct.runtime.backends.base import AUX_GATES_OUTPUT

SPECULATE_AT = 0.8  # repeat rate above which the specialized graph is tried first (break-even ~ t_static/t_dynamic)
RATE_WEIGHT = 0.2  # weight of the newest call in the repeat rate (exponential average)
MAX_PATTERNS = 4  # specialized graphs kept per backend (least recently used evicted)


def if_ops(model) -> list:
    """The model's top-level ``If`` ops in topological order: block 0 attention, block 0 MLP, block 1 ..."""
    return [op for op in model.get_ordered_ops() if op.get_type_name() == "If"]


def specialize(model, pattern: tuple[bool, ...]):
    """A copy of ``model`` whose ``If`` conditions are the constants of ``pattern`` (OpenVINO folds each ``If``
    into its chosen branch at compile time)."""
    from openvino import opset13

    clone = model.clone()
    ops = if_ops(clone)
    if len(ops) != len(pattern):
        raise ValueError(f"{len(ops)} If ops, a pattern of {len(pattern)}")
    for op, bit in zip(ops, pattern):
        op.input(0).replace_source_output(opset13.constant(np.array(bool(bit))).output(0))
    return clone


class GateSpecializer:
    """Specialized graphs per gate pattern of a batch-1 A-ColViT graph with ``n_ifs`` ``If`` ops (see the module
    doc). ``compile_pattern(pattern)`` returns something with ``infer(inputs)`` (the backend: :func:`specialize`,
    then its own compile and request pool); ``background=False`` compiles in the calling thread (tests)."""

    def __init__(self, n_ifs: int, compile_pattern: Callable, *, background: bool = True,
                 max_patterns: int = MAX_PATTERNS):
        self.n_ifs = n_ifs
        self._compile_pattern, self._background, self._max = compile_pattern, background, max_patterns
        self._pools: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()
        self._compiling: threading.Thread | None = None
        self.last: tuple | None = None
        self.rate = 0.0
        self.calls = self.speculated = self.hits = self.compiled = 0
        self.errors: list[str] = []

    def pattern(self, out: dict) -> tuple[bool, ...]:
        g = np.asarray(out[AUX_GATES_OUTPUT])
        return tuple(bool(v) for v in (g.reshape(g.shape[0], -1) > 0.5).any(axis=0))

    def infer(self, inputs, dynamic: Callable[[dict], dict]) -> dict:
        """The result of ``inputs``: from the specialized graph of the last pattern when its guard holds,
        else from ``dynamic`` (the backend's ``If`` graph). Thread-safe."""
        with self._lock:
            last = self.last
            pool = self._pools.get(last) if last is not None and self.rate >= SPECULATE_AT else None
            if pool is not None:
                self._pools.move_to_end(last)
        if pool is not None:
            out = pool.infer(inputs)
            if self.pattern(out) == last:
                self._observe(last, hit=True)
                return out
        out = dynamic(inputs)
        self._observe(self.pattern(out), hit=False, speculated=pool is not None)
        return out

    def _observe(self, got: tuple, hit: bool, speculated: bool = False) -> None:
        with self._lock:
            self.calls += 1
            self.speculated += hit or speculated
            self.hits += hit
            repeat = got == self.last
            self.rate = (1 - RATE_WEIGHT) * self.rate + RATE_WEIGHT * repeat
            self.last = got
            start = (repeat and got not in self._pools and len(got) == self.n_ifs
                     and (self._compiling is None or not self._compiling.is_alive()))
            if start and self._background:
                self._compiling = threading.Thread(target=self._build, args=(got,), daemon=True,
                                                   name="tinct-gate-specialize")
                self._compiling.start()
        if start and not self._background:
            self._build(got)

    def _build(self, pattern: tuple) -> None:
        try:
            pool = self._compile_pattern(pattern)
        except Exception as exc:  # noqa: BLE001 - a pattern that fails to compile stays on the dynamic graph
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
            return
        with self._lock:
            self._pools[pattern] = pool
            self.compiled += 1
            while len(self._pools) > self._max:
                self._pools.popitem(last=False)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background compile in progress (tests, benchmarks' warm-up)."""
        t = self._compiling
        if t is not None:
            t.join(timeout)

    def describe(self) -> dict:
        with self._lock:
            return {"if_ops": self.n_ifs, "patterns_kept": len(self._pools), "patterns_compiled": self.compiled,
                    "calls": self.calls, "speculated": self.speculated, "hits": self.hits,
                    "repeat_rate": round(self.rate, 3), "errors": list(self.errors)}
