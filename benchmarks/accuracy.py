"""Accuracy runner: the iColoriT evaluation protocol over a dataset, for any predictor.

For each image (resized to 224x224 bilinear) and each hint count k, the predictor sees the image's
L and k ground-truth hints (:func:`runtime.evaluation.predict_rgb`), and the uint8 RGB prediction
is scored with every metric of :mod:`benchmarks.metrics`; per-metric means over images go into the
JSON result (``{"psnr": {"<k>": mean}, "bpsnr": ..., "pev": ..., "ssim": ..., "ciede2000": ...}``),
per-image values into the CSV.

Hints: the dataset's own hint files (tinct-val), ``--hint-dir`` (the paper's published hint sets,
``h2-n{N}/<stem>.txt`` or ``<seed>/h2-n{N}/...``), or generated with
:func:`runtime.hints.make_eval_hints` over the dataset's sorted file names and cached as files.
Generation always draws the official counts (0, 1, 2, 5, 10, 20, 50, 100, 200) first, in that
order, with one RNG — so the hints of, say, k=10 are the official ones whatever ``--hints`` asks
for; counts outside that list are drawn afterwards, in ascending order. With ``--limit N`` the hints
are still generated over the *whole* dataset, then the first N images are evaluated. Likewise
``--exclude-list`` (the official ``--gray_file_list_txt``: grayscale images of ctest10k) drops
images after hint generation, as the official scripts do.

A predictor is a callable ``x [N,4,224,224] float32 -> ab [N,2,224,224]``:
:func:`engine_predictor` wraps any artifact through ``runtime.backends.open_backend``,
:func:`model_predictor` a PyTorch reference model.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinct.benchmarks.datasets import Dataset
from tinct.benchmarks.metrics import METRICS, compute_all
from tinct.runtime import __version__
from tinct.runtime.backends import open_backend
from tinct.runtime.cpu import cpu_name
from tinct.runtime.errors import TinctError
from tinct.runtime.evaluation import gray_baseline_psnr, predict_rgb
from tinct.runtime.hints import (
    EVAL_HINT_COUNTS,
    EVAL_SEED,
    find_hint_file,
    make_eval_hints,
    mask_from_coords,
    read_hint_file,
    write_eval_hints,
)

SCHEMA = "tinct.bench.accuracy/1"
Predictor = Callable[[np.ndarray], np.ndarray]
PROTOCOL = ("iColoriT evaluate.py: 224x224 bilinear resize; ground-truth L + k cell-mean ab hints (2x2 cells); "
            "prediction to uint8 RGB; per-image PSNR on RGB in [0,1] with MSE floor 1e-5, averaged over images; "
            "B-PSNR on 16x16 patch borders; PEV = unbiased variance of per-patch RMSE (0..255)")


# ----------------------------------------------------------------------------- predictors

def engine_predictor(path: str | Path, **opts) -> tuple[Predictor, dict]:
    """Any tinct artifact through the runtime's backends: ``open_backend(path, **opts)``, then
    ``infer({"x": x})["ab"]`` (the backend's own input/output names when it declares them).
    ``opts``: ``backend``, ``threads``, ``precision``, ``device`` as :func:`open_backend` takes them."""
    backend = open_backend(str(path), **{k: v for k, v in opts.items() if v is not None})
    in_name = (getattr(backend, "input_names", None) or ["x"])[0]
    out_name = (getattr(backend, "output_names", None) or ["ab"])[0]

    def predict(x: np.ndarray) -> np.ndarray:
        out = backend.infer({in_name: np.ascontiguousarray(x, dtype=np.float32)})[out_name]
        return np.array(out, dtype=np.float32)  # a copy: backends may reuse their output buffers

    try:
        desc = backend.describe()
    except Exception as exc:  # noqa: BLE001 - a description is informative only
        desc = {"describe_error": str(exc)}
    if not isinstance(desc, dict):
        desc = {"description": str(desc)}
    meta = getattr(backend, "meta", None)
    model = getattr(meta, "model", None)
    return predict, {"kind": "engine", "path": str(path), **({"model": model} if model else {}), **desc}


def model_predictor(model, name: str | None = None, threads: int | None = None) -> tuple[Predictor, dict]:
    """A PyTorch model (a registry name / checkpoint path, or a module) run under ``no_grad``."""
    import torch

    if threads:
        torch.set_num_threads(threads)

    if isinstance(model, (str, Path)):
        from tinct.models import load_model
        name = name or str(model)
        model = load_model(model)
    model.eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    card = getattr(model, "card", None) or {}
    desc = {"kind": "pytorch", "model": name or type(model).__name__, "backend": "pytorch", "precision": "fp32",
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "parameters": int(sum(p.numel() for p in model.parameters()))}
    for key in ("source_path", "source_sha256"):
        if key in card:
            desc[key] = card[key]
    return predict, desc


# ----------------------------------------------------------------------------- hints

def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise TinctError(f"--hints {text!r}: expected comma-separated non-negative integers, e.g. 0,1,10") from None
    if not counts or any(c < 0 for c in counts):
        raise TinctError(f"--hints {text!r}: expected comma-separated non-negative integers, e.g. 0,1,10")
    return sorted(set(counts))


def generation_order(counts: Sequence[int]) -> list[int]:
    """Official counts first (their RNG stream), then any others ascending."""
    return list(EVAL_HINT_COUNTS) + sorted(set(counts) - set(EVAL_HINT_COUNTS))


def default_hint_cache(dataset: Dataset, counts: Sequence[int], base: str | Path) -> Path:
    order = generation_order(counts)
    h = hashlib.sha256(json.dumps([dataset.filenames, order, EVAL_SEED]).encode()).hexdigest()[:12]
    return Path(base) / f"{dataset.name}-{len(dataset)}-{h}"


def resolve_hints(dataset: Dataset, counts: Sequence[int], hint_dir: str | Path | None = None,
                  cache_dir: str | Path | None = None) -> tuple[dict[int, list[np.ndarray]], dict]:
    """``({k: [coords of image i]}, description)`` for the dataset's images, in order.

    ``dataset`` is the full dataset (hint generation depends on every file name); limit afterwards.
    """
    source = hint_dir or dataset.hint_dir
    info: dict = {}
    if source is None:
        if cache_dir is None:
            raise TinctError("no hint directory and no cache directory for generated hints")
        cache = Path(cache_dir)
        marker = cache / ".complete"  # written last: a half-written cache is regenerated
        missing = [k for k in counts if not marker.is_file() or not (cache / f"h2-n{k}").is_dir()]
        if missing:
            hints = make_eval_hints(dataset.filenames, generation_order(counts))
            write_eval_hints({k: hints[k] for k in missing}, cache)
            marker.write_text(json.dumps({"seed": EVAL_SEED, "order": generation_order(counts)}))
        source = cache
        info = {"hints": "generated", "seed": EVAL_SEED, "hint_dir": str(cache)}
    else:
        info = {"hints": "files", "hint_dir": str(source)}
    coords = {k: [read_hint_file(find_hint_file(source, k, stem)) for stem in dataset.stems] for k in counts}
    return coords, info


# ----------------------------------------------------------------------------- run

def environment() -> dict:
    env = {"tinct": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
           "cpu_count": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    env["cpu"] = cpu_name()
    for var in ("OMP_NUM_THREADS", "TINCT_THREADS"):
        if var in os.environ:
            env[var] = os.environ[var]
    return env


def evaluate_chunk(predict: Predictor, dataset: Dataset, start: int, stop: int, counts: Sequence[int],
                   hint_coords: dict[int, list[np.ndarray]], batch: int = 16, lpips=()) -> tuple[list[dict], float]:
    """Images ``start:stop`` at every hint count: per-image rows ``{image, k, metric...}`` and the gray
    baseline PSNR summed over the chunk. The unit of work both in this process and on Ray (``--ray``)."""
    images = dataset.load_batch(start, stop)
    n = len(images)
    rows = []
    for k in counts:
        masks = np.stack([mask_from_coords(c) for c in hint_coords[k][start:start + n]])
        pred = predict_rgb(predict, images, masks, batch=batch)
        vals = {m: np.asarray(v, dtype=np.float64) for m, v in compute_all(pred, images, lpips).items()}
        for i in range(n):
            rows.append({"image": dataset.stems[start + i], "k": k, **{m: float(v[i]) for m, v in vals.items()}})
    return rows, float(gray_baseline_psnr(images) * n)


def chunks(n: int, batch: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + batch)) for s in range(0, n, batch)]


def summarize(rows: list[dict], dataset: Dataset, counts: Sequence[int], gray_sums: Sequence[float],
              lpips=()) -> tuple[list[dict], dict]:
    """Rows in (k, image) order and the per-metric means (over images, in dataset order: the same sums
    whichever process computed the rows)."""
    order = {name: i for i, name in enumerate(dataset.stems)}
    rows = sorted(rows, key=lambda r: (r["k"], order[r["image"]]))
    summary: dict = {}
    metric_names = list(METRICS) + [m.name for m in lpips or ()]
    for m in metric_names:
        summary[m] = {str(k): float(np.asarray([r[m] for r in rows if r["k"] == k], dtype=np.float64).mean())
                      for k in counts}
    summary["gray_baseline_psnr"] = float(sum(gray_sums) / len(dataset))
    return rows, summary


def evaluate(predict: Predictor, dataset: Dataset, counts: Sequence[int], hint_coords: dict[int, list[np.ndarray]],
             batch: int = 16, lpips=(), progress: bool = True) -> tuple[list[dict], dict]:
    """Per-image rows ``{image, k, metric...}`` and the summary ``{metric: {"<k>": mean}}``.

    Images are streamed in chunks of ``batch``: memory stays bounded for ctest10k.
    """

    rows: list[dict] = []
    gray = []
    bar = tqdm(total=len(dataset) * len(counts), desc="accuracy", unit="img", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        for s, e in chunks(len(dataset), batch):
            r, g = evaluate_chunk(predict, dataset, s, e, counts, hint_coords, batch, lpips)
            rows += r
            gray.append(g)
            bar.update(len(r))
    finally:
        bar.close()
    return summarize(rows, dataset, counts, gray, lpips)


def write_csv(rows: list[dict], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["image", "k"] + [m for m in rows[0] if m not in ("image", "k")] if rows else ["image", "k"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({key: (f"{r[key]:.6f}" if isinstance(r[key], float) else r[key]) for key in fields})


def run(predict: Predictor, artifact: dict, dataset: Dataset, counts: Sequence[int] = EVAL_HINT_COUNTS,
        hint_dir: str | Path | None = None, hint_cache: str | Path | None = None, limit: int | None = None,
        json_out: str | Path | None = None, csv_out: str | Path | None = None, batch: int = 16,
        lpips=(), lpips_note: str | None = None, progress: bool = True,
        exclude: set[str] | None = None, evaluator=None) -> dict:
    """Evaluate and write the JSON/CSV outputs; returns the JSON result. ``evaluator``: where the chunks
    run (default: this process with ``predict``; :func:`benchmarks.ray_accuracy.ray_evaluator` for Ray)."""
    counts = sorted({int(k) for k in counts})
    if hint_dir is None and dataset.hint_dir is None and hint_cache is None:
        base = Path(json_out).parent if json_out else Path.cwd()
        hint_cache = default_hint_cache(dataset, counts, base / "bench-hints")
    coords, hint_info = resolve_hints(dataset, counts, hint_dir, hint_cache)
    if limit is not None and limit < 1:
        raise TinctError("--limit must be at least 1")
    keep = [i for i, stem in enumerate(dataset.stems) if not exclude or stem not in exclude]
    n_excluded = len(dataset) - len(keep)
    if not keep:
        raise TinctError("every image is in the exclude list")
    keep = keep[:limit]
    sub = dataset.select(keep)
    coords = {k: [v[i] for i in keep] for k, v in coords.items()}
    t0 = time.perf_counter()
    if evaluator is None:
        rows, summary = evaluate(predict, sub, counts, coords, batch=batch, lpips=lpips, progress=progress)
    else:
        rows, summary = evaluator(sub, counts, coords, batch, progress, lpips)
    result = {
        "schema": SCHEMA, "kind": "accuracy",
        "artifact": artifact,
        "dataset": {**sub.describe(), "n_total": len(dataset), "n_excluded": n_excluded, "limit": limit,
                    **hint_info},
        "counts": counts,
        **summary,
        "metrics_skipped": {} if lpips else {"lpips": lpips_note or "not asked for (--lpips vgg,alex)"},
        "lpips_config": {m.name: m.describe() for m in lpips or ()},
        "protocol": PROTOCOL,
        "environment": environment(),
        "wall_s": round(time.perf_counter() - t0, 3),
        "runner": getattr(evaluator, "describe", {"runner": "in-process"}),
    }
    if csv_out:
        write_csv(rows, csv_out)
        result["csv"] = str(csv_out)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, indent=2) + "\n")
    return result
