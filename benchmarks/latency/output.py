"""Markdown tables and the JSON result document."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tinct.benchmarks.latency.common import SCHEMA
from tinct.runtime.timing import RunResult

# ----------------------------------------------------------------------------- output

def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.0f} %"


def _post(e: dict) -> str:
    """Session modes: the post-processing's share of an update, its ms, and the output size."""
    st = e.get("stages_median_ms") or {}
    size = "x".join(str(v) for v in e.get("output_size") or [])
    return f"{e['post_share']:.0%} ({st.get('post', 0):.1f} ms, {size})"


def markdown_table(results: Sequence[dict], skipped: Sequence[dict] = (), failed: Sequence[dict] = ()) -> str:
    head = ["model", "mode", "kept", "backend", "precision", "threads", "median ms ± IQR", "min ms", "n",
            "vs eager", "vs ORT fp32", "img/s", "efficiency", "ΔPSNR@10", "post share"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for e in results:
        kept = e.get("kept_ratio")
        ips = e.get("images_per_s") or (1e3 / e["median_ms"] if e["median_ms"] else None)
        lines.append("| " + " | ".join(str(c) for c in [
            e.get("model_name", e["model"]) + (f" [{e['variant']}]" if e.get("variant") else ""),
            e.get("mode", "model") + (f" b{e['batch']}" if (e.get("batch") or 1) > 1 else ""),
            "-" if kept is None else f"{kept:.2f}", e["backend"], e["precision"],
            "-" if e.get("threads") is None else e["threads"],
            f"{e['median_ms']:.2f} ± {e.get('iqr_ms', 0):.2f}", f"{e.get('min_ms', float('nan')):.2f}",
            e.get("runs", "-"), _x(e.get("speedup_vs_eager")), _x(e.get("speedup_vs_ort_fp32")),
            "-" if ips is None else f"{ips:.1f}", _pct(e.get("efficiency")),
            "-" if (e.get("fidelity") or {}).get("delta_psnr10") is None
            else f"{e['fidelity']['delta_psnr10']:+.3f}",
            "-" if e.get("post_share") is None else _post(e)]) + " |")
    if failed:
        lines += ["", "FAILED the fidelity check (not timed):", ""]
        for f in failed:
            what = " ".join(str(f.get(k)) for k in ("model", "backend", "precision") if f.get(k))
            t = f.get("threads")
            lines.append(f"- {what}{f' {t}t' if t is not None else ''}: {f['reason']}")
    if skipped:
        lines += ["", "Skipped (grouped by reason):", ""]
        by_reason: dict[str, list[str]] = {}
        for s in skipped:
            what = " ".join(str(s.get(k)) for k in ("model", "backend", "precision") if s.get(k))
            t = s.get("threads")
            by_reason.setdefault(s["reason"], []).append(what + (f" {t}t" if t is not None else ""))
        for reason, whats in by_reason.items():
            lines.append(f"- {reason}: {'; '.join(whats)}")
    return "\n".join(lines)


def result_document(run: RunResult, environment: dict, config: dict, notes: Sequence[str] = (),
                    weights: dict | None = None) -> dict:
    return {"schema": SCHEMA, "kind": "latency", "environment": environment, "config": config,
            "weights": weights or {}, "notes": list(notes), "results": run.results, "skipped": run.skipped,
            "failed": run.failed}


def write_json(doc: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return path
