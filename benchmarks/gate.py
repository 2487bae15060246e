"""Regression gates: compare a new benchmark result with a baseline.

``tinct bench compare BASELINE.json NEW.json --max-psnr-drop 0.05 [--max-latency-increase 10%]``

- Accuracy results (``"kind": "accuracy"``): for every hint count in the baseline, the new PSNR
  may be at most ``max_psnr_drop`` dB lower (B-PSNR is gated the same way when both files have
  it). A count missing from the new result is a failure.
- Latency results (see :mod:`benchmarks.report` for the schema): entries are matched by
  ``(model, backend, precision, threads)``; the new median may exceed the baseline's by at most
  the threshold, given as a percentage of the baseline (``"10%"``) or in milliseconds
  (``"2.5ms"``). A baseline entry missing from the new file is a failure.

Returns exit code 0 when nothing regressed, 1 otherwise (after printing a table of every check).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from tinct.runtime.errors import InputError

_THRESHOLD = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(%|ms)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Threshold:
    value: float
    unit: str  # "%" or "ms"

    def limit_ms(self, baseline_ms: float) -> float:
        """The largest allowed increase in ms over ``baseline_ms``."""
        return baseline_ms * self.value / 100.0 if self.unit == "%" else self.value

    def __str__(self) -> str:
        return f"{self.value:g}{self.unit}"


def parse_threshold(text: str) -> Threshold:
    """``"10%"`` -> 10 percent; ``"2.5ms"`` / ``"2.5 ms"`` -> 2.5 milliseconds. Anything else raises."""
    if not isinstance(text, str):
        raise InputError(f"latency threshold must be a string like '10%' or '5ms', got {text!r}")
    m = _THRESHOLD.fullmatch(text)
    if not m:
        raise InputError(f"latency threshold {text!r}: expected a non-negative number followed by '%' or 'ms' "
                         "(e.g. '10%' or '2.5ms')")
    value = float(m.group(1))
    if not math.isfinite(value):
        raise InputError(f"latency threshold {text!r} is not finite")
    return Threshold(value, m.group(2).lower())


def load_result(path: str | Path) -> dict:
    """A result JSON of ``tinct bench accuracy`` or ``latency``, checked for the fields the comparison
    reads; anything else is an :class:`InputError` (exit 2, never 1, which means "regressed")."""

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path} is not valid JSON: {str(exc).splitlines()[0][:150]}") from None
    if isinstance(data, list):  # a bare latency list
        data = {"kind": "latency", "results": data}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    if "kind" not in data:
        data["kind"] = "accuracy" if "psnr" in data else "latency" if "results" in data else "unknown"
    if data["kind"] == "latency":
        rows = data.get("results")
        if not isinstance(rows, list) or not all(_latency_row(r) for r in rows):
            raise InputError(f"{path}: 'results' must be a list of objects with model, backend, precision "
                             "(strings) and a positive median_ms")
    elif data["kind"] == "accuracy":
        for metric in ("psnr", "bpsnr"):
            table = data.get(metric, {})
            if not isinstance(table, dict) or not all(
                    _int_key(k) and _number(v) for k, v in table.items()):
                raise InputError(f"{path}: {metric!r} must map hint counts to numbers")
    else:
        raise InputError(f"{path}: neither an accuracy result (with 'psnr') nor a latency result (with 'results')")
    return data


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_key(k) -> bool:
    try:
        int(k)
    except (TypeError, ValueError):
        return False
    return True


def _latency_row(r) -> bool:
    return (isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("model", "backend", "precision"))
            and _number(r.get("median_ms")) and r["median_ms"] > 0)


@dataclass
class Check:
    what: str
    baseline: float | None
    new: float | None
    limit: str
    ok: bool

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.new is None:
            return None
        return self.new - self.baseline


def check_accuracy(base: dict, new: dict, max_psnr_drop: float) -> list[Check]:
    checks = []
    for metric in ("psnr", "bpsnr"):
        if metric not in base or (metric == "bpsnr" and metric not in new):
            continue
        for k, b in sorted(base[metric].items(), key=lambda kv: int(kv[0])):
            n = new.get(metric, {}).get(k)
            if n is None:
                checks.append(Check(f"{metric}@{k}", b, None, "missing in new", False))
                continue
            ok = (b - n) <= max_psnr_drop + 1e-12
            checks.append(Check(f"{metric}@{k}", b, n, f"drop <= {max_psnr_drop:g} dB", ok))
    return checks


def _latency_key(e: dict) -> tuple:
    return (e.get("model"), e.get("backend"), e.get("precision"), e.get("threads"))


def check_latency(base: dict, new: dict, threshold: Threshold) -> list[Check]:
    new_by_key = {_latency_key(e): e for e in new.get("results", [])}
    checks = []
    for e in base.get("results", []):
        key = _latency_key(e)
        label = "latency " + "/".join(str(x) for x in key)
        b = float(e["median_ms"])
        other = new_by_key.get(key)
        if other is None:
            checks.append(Check(label, b, None, "missing in new", False))
            continue
        n = float(other["median_ms"])
        ok = (n - b) <= threshold.limit_ms(b) + 1e-9
        checks.append(Check(label, b, n, f"increase <= {threshold}", ok))
    return checks


def compare(base: dict, new: dict, max_psnr_drop: float = 0.05,
            max_latency_increase: Threshold | None = None) -> list[Check]:
    if not (max_psnr_drop >= 0 and math.isfinite(max_psnr_drop)):
        raise InputError(f"--max-psnr-drop must be a non-negative number, got {max_psnr_drop}")
    if base["kind"] != new["kind"]:
        raise InputError(f"cannot compare a {base['kind']} result with a {new['kind']} result")
    if base["kind"] == "accuracy":
        return check_accuracy(base, new, max_psnr_drop)
    if max_latency_increase is None:
        raise InputError("latency results: give --max-latency-increase (e.g. 10% or 2ms)")
    return check_latency(base, new, max_latency_increase)


def format_table(checks: list[Check]) -> str:
    def f(v):
        return "-" if v is None else f"{v:.3f}"

    head = ("check", "baseline", "new", "delta", "limit", "status")
    rows = [(c.what, f(c.baseline), f(c.new), "-" if c.delta is None else f"{c.delta:+.3f}", c.limit,
             "ok" if c.ok else "REGRESSED") for c in checks]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(r) -> str:
        return "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def run(baseline: str | Path, new: str | Path, max_psnr_drop: float = 0.05,
        max_latency_increase: str | None = None, out=print) -> int:
    thr = parse_threshold(max_latency_increase) if max_latency_increase is not None else None
    checks = compare(load_result(baseline), load_result(new), max_psnr_drop, thr)
    if not checks:
        raise InputError("nothing to compare: the baseline has no PSNR values or latency entries")
    out(format_table(checks))
    bad = [c for c in checks if not c.ok]
    if bad:
        out(f"\n{len(bad)} of {len(checks)} checks regressed: {', '.join(c.what for c in bad)}")
        return 1
    out(f"\nall {len(checks)} checks passed")
    return 0
