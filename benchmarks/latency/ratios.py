"""Same-run ratios and efficiency of ``tinct bench latency``'s results (the scheduler is
:mod:`tinct.runtime.timing`)."""

from __future__ import annotations

from collections.abc import Callable

from tinct.benchmarks.peak import efficiency, peak_gmacs
from tinct.runtime.timing import _reason


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


def add_skipping(results: list[dict]) -> list[dict]:
    """In place, for A-ColViT entries: ``speedup_vs_dense`` (the same engine's iColoriT of the same size, same
    threads/mode/batch, median over median), ``mac_ratio`` (its MACs over the executed graph's) and
    ``skipping_paid`` = speedup / MAC ratio (1.0: the skipped compute is saved in full)."""
    dense = {}
    for e in results:
        if e.get("kept_ratio") is None and str(e.get("model_name") or "").startswith("icolorit-"):
            dense[(e["model_name"], e["backend"], e["precision"], e.get("threads"), e.get("mode"),
                   e.get("batch"), e.get("device"))] = e
    for e in results:
        name = str(e.get("model_name") or "")
        if e.get("kept_ratio") is None or not name.startswith("acolvit-"):
            continue
        ref = dense.get(("icolorit-" + name.split("-")[1], e["backend"], e["precision"], e.get("threads"),
                         e.get("mode"), e.get("batch"), e.get("device")))
        if not ref or not e.get("median_ms") or not e.get("macs") or not ref.get("macs"):
            continue
        e["speedup_vs_dense"] = ref["median_ms"] / e["median_ms"]
        e["mac_ratio"] = ref["macs"] / e["macs"]
        e["skipping_paid"] = e["speedup_vs_dense"] / e["mac_ratio"]
    return results


def add_efficiency(results: list[dict], log: Callable[[str], None] | None = None) -> list[dict]:
    """In place: ``peak_gmacs`` (this machine's matmul peak through the case's library, precision and
    thread count; :mod:`benchmarks.peak`) and ``efficiency`` = MACs / (median x peak). Measured after
    the timed rounds, so the microbenchmark never overlaps them."""

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
