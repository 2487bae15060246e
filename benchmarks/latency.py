"""Latency measurement engine: ``tinct bench latency`` and ``pytest benchmarks/`` both use it.

A run measures a list of **cases** (model x backend x precision x threads x mode [x gate pattern])
against each other in one process:

- ``model``: the network alone, batch 1, ``x [1,4,224,224]`` from a real photo with 10 hints.
- ``e2e``: pre + infer + post of a 224x224 photo through :class:`runtime.colorizer.Colorizer`
  (hint encoding, model, ab upsample, Lab->RGB merge).
- ``session``: one full-resolution interactive update: a 1920x1080 photo (a fixture photo,
  upscaled) loaded once in a :class:`runtime.colorizer.Session`; every timed call moves one hint
  and calls ``colorize()`` (the per-stage times of :attr:`Session.timings` are reported too).
- ``throughput``: a batch of ``batch`` different inputs per call, single thread; images/s is
  comparable to A-ColViT Table 2 (images per second on one CPU thread).

**Noisy-neighbour guard.** Every case is set up first (artifacts built, sessions created), then
warmed up, then timed round-robin: each round makes exactly one timed call of every case, in a
shuffled order (seeded), so a neighbour's burst of load spreads over all cases instead of
penalizing whichever case happened to run then. The report gives median, IQR, min, mean, p90
and the number of samples, and **ratios measured in the same run**: speedup vs the PyTorch eager
FP32 reference of the same model (always included when torch is importable; when it is not, the
ratio is ``null`` and the run says why), vs ONNX Runtime FP32, and, for A-ColViT, vs the same
engine with every sub-layer kept.

**A-ColViT gate patterns** (``--gates``): ``own`` = the model's own per-input decisions (dynamic
export with ONNX ``If`` nodes; PyTorch with its decisions); ``all`` = every sub-layer kept;
a ratio such as ``0.5``/``0.3`` = that fraction of the 2*depth sub-layers forced on (attention and
MLP sub-layers in equal shares, evenly spread over the blocks; static exports without ``If``;
PyTorch via ``forced_gates``); or an explicit string of 2*depth 0/1 (attention, MLP per block).
``kept_ratio`` is the fraction of sub-layers that ran.

**GPU** (when CUDA is present): PyTorch eager, a CUDA-graph reference (``torch.cuda.graphs``; the
graph cannot capture data-dependent ``If``, so A-ColViT uses a static mask there) and TensorRT
when installed; otherwise skipped with the reason.

Output: a latency result in the schema of :mod:`benchmarks.report` (``results`` entries
``model, backend, precision, threads, median_ms, iqr_ms, ..., kept_ratio``; ``model`` carries
the gate pattern and mode when they are not the defaults, so the entries stay unique for
``tinct bench compare``), plus :func:`markdown_table`.

Models: the shipped weights ``weights/<name>.safetensors`` when present; otherwise a randomly
initialised model of the same architecture (seeded), flagged "random weights (latency only)".
"""

from __future__ import annotations

import contextlib
import importlib
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


SCHEMA = "tinct.bench.latency/1"
MODES = ("model", "e2e", "session", "throughput")
CPU_BACKENDS = ("pytorch", "onnxruntime", "openvino")
# "int8-bf16": OpenVINO INT8 whose unquantized ops run in bf16 (tinct quantize --ov-float-precision bf16)
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int8-bf16")
DEFAULT_GATES = ("own", "all", "0.5", "0.3")
SESSION_SIZE = (1920, 1080)  # W, H
N_HINTS = 10
RANDOM_FLAG = "random weights (latency only)"
REPO_ROOT = Path(__file__).resolve().parent.parent
PHOTOS = REPO_ROOT / "tests" / "fixtures" / "photos"
DEFAULT_ARTIFACTS = ".benchmarks/artifacts"  # .benchmarks/ is git-ignored (pytest-benchmark's storage too)


class SkipCase(Exception):
    """A case that cannot run here; the message says why (recorded in ``skipped``)."""


class CaseFailed(Exception):
    """A case that runs here but failed its fidelity check (recorded in ``failed``, never timed)."""


# The fidelity check every engine case passes before it is timed: the guard's protocol and criteria
# (quantization.guard: the validation split, or the fixture photos without the corpus; 1/10/50
# hints) against ONNX Runtime FP32 of the same export. The whole split, because a subset is too
# noisy for the BF16 budget: on 16 photos a correct OpenVINO BF16 engine measured ΔPSNR@10
# 0.019-0.031 dB against 0.02. With the guard's protocol the verdict is the guard's own.
FIDELITY_IMAGES: int | None = None


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


# ----------------------------------------------------------------------------- output

def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.0f} %"


def markdown_table(results: Sequence[dict], skipped: Sequence[dict] = (), failed: Sequence[dict] = ()) -> str:
    head = ["model", "mode", "kept", "backend", "precision", "threads", "median ms ± IQR", "min ms", "n",
            "vs eager", "vs ORT fp32", "img/s", "efficiency", "ΔPSNR@10"]
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
            else f"{e['fidelity']['delta_psnr10']:+.3f}"]) + " |")
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


# ----------------------------------------------------------------------------- gate patterns

def _spread(n_keep: int, n: int) -> list[bool]:
    """n_keep of n positions evenly spread (Bresenham), the last position always among them."""
    return [((i + 1) * n_keep) // n > (i * n_keep) // n for i in range(n)]


def gate_pattern(spec: str, depth: int) -> list[list[bool]] | None:
    """``own`` -> None (the model decides); ``all``; a ratio in (0, 1]; or 2*depth characters of 0/1."""
    s = str(spec).strip()
    if s == "own":
        return None
    if s == "all":
        return [[True, True] for _ in range(depth)]
    if len(s) == 2 * depth and set(s) <= {"0", "1"}:
        return [[s[2 * i] == "1", s[2 * i + 1] == "1"] for i in range(depth)]
    try:
        r = float(s)
    except ValueError:
        raise ValueError(f"gate pattern {spec!r}: use own, all, a kept ratio in (0, 1] or "
                         f"{2 * depth} characters of 0/1") from None
    if not 0 < r <= 1:
        raise ValueError(f"gate pattern {spec!r}: a kept ratio must be in (0, 1]")
    n_keep = round(r * 2 * depth)
    n_attn = round(n_keep / 2)
    attn, mlp = _spread(n_attn, depth), _spread(n_keep - n_attn, depth)
    return [[a, m] for a, m in zip(attn, mlp)]


def gate_bits(gates: list[list[bool]]) -> str:
    return "".join(f"{int(a)}{int(m)}" for a, m in gates)


def kept_fraction(gates) -> float:
    import numpy as np
    g = np.asarray(gates, dtype=bool)
    return float(g.mean())


# ----------------------------------------------------------------------------- inputs

def fixture_photos() -> list[Path]:
    files = sorted(p for p in PHOTOS.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SkipCase(f"no fixture photos in {PHOTOS}")
    return files


def photo(path: Path, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 [H, W, 3]: centre crop to the aspect of ``size`` (W, H), then bilinear resize."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        tw, th = size
        if w * th > h * tw:
            nw = round(h * tw / th)
            im = im.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
        else:
            nh = round(w * th / tw)
            im = im.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))
        return np.asarray(im.resize(size, Image.BILINEAR), dtype=np.uint8)


def model_inputs(n: int = 1, hints: int = N_HINTS) -> np.ndarray:
    """``x [n,4,224,224]`` float32: fixture photos with ``hints`` ground-truth hints (the evaluation
    protocol's positions, cell-mean colours), cycling through the photos for n > number of photos."""
    import numpy as np

    from tinct.runtime.color import rgb_to_lab_n
    from tinct.runtime.hints import IMG_SIZE, encode_from_lab, make_eval_hints, mask_from_coords

    paths = fixture_photos()
    rgb = np.stack([photo(paths[i % len(paths)], (IMG_SIZE, IMG_SIZE)) for i in range(n)])
    stems = [f"bench{i:04d}" for i in range(n)]
    coords = make_eval_hints([f"{s}.png" for s in stems], (hints,))[hints]
    masks = np.stack([mask_from_coords(np.asarray(coords[s], dtype=np.int64).reshape(-1, 2)) for s in stems])
    return np.ascontiguousarray(encode_from_lab(rgb_to_lab_n(rgb), masks), dtype=np.float32)


def user_hints(image: np.ndarray, n: int = N_HINTS, seed: int = 0) -> list:
    """n clicks at seeded positions coloured with the photo's own pixel there."""
    import numpy as np

    from tinct.runtime.hints import UserHint

    h, w = image.shape[:2]
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if (x, y) in seen:
            continue
        seen.add((x, y))
        out.append(UserHint(x, y, tuple(int(v) for v in image[y, x, :3])))
    return out


# ----------------------------------------------------------------------------- models and artifacts

def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


class ModelStore:
    """PyTorch models (shipped weights or seeded random init) and the artifacts built from them,
    cached in ``artifacts`` and rebuilt only when the weights they came from changed."""

    def __init__(self, artifacts: str | Path, seed: int = 0, log: Callable[[str], None] | None = None):
        self.dir = Path(artifacts)
        self.seed = seed
        self.log = log or (lambda s: None)
        self._models: dict[str, tuple] = {}
        self._files: dict[tuple, Path] = {}
        self._fidelity: dict[tuple, dict] = {}
        self._references: dict[str, object] = {}
        self._macs: dict[str, object] = {}

    # -- fidelity (every engine case, before it is timed)
    def fidelity(self, src: Path, artifact: Path, backend: str, precision: str, run_x: Callable, model: str) -> dict:
        """The guard's criteria for ``run_x`` against ONNX Runtime FP32 of ``src`` on a quick subset;
        raises :class:`CaseFailed` with the reason, else returns the measurements (cached per artifact)."""
        key = (str(artifact), backend, precision)
        if key not in self._fidelity:
            self._fidelity[key] = fidelity_check(src, run_x, precision, self._references,
                                                 random_weights=self.weights_label(model) == RANDOM_FLAG)
        rec = self._fidelity[key]
        if rec["verdict"] != "passed":
            raise CaseFailed(rec["reason"])
        return rec

    def macs(self, src: Path):
        """:class:`benchmarks.macs.MacCount` of an FP32 export (None without onnx)."""
        if str(src) not in self._macs:
            try:
                from tinct.benchmarks.macs import count_macs

                self._macs[str(src)] = count_macs(src)
            except ImportError:
                self._macs[str(src)] = None
        return self._macs[str(src)]

    # -- PyTorch
    def weights_path(self, name: str) -> Path | None:
        from tinct.models.registry import REGISTRY, WEIGHTS_DIR

        if name not in REGISTRY:
            p = Path(name)
            return p if p.is_file() else None
        p = WEIGHTS_DIR / f"{name}.safetensors"
        return p if p.is_file() else None

    def weights_label(self, name: str) -> str:
        p = self.weights_path(name)
        return f"shipped ({p.name})" if p else RANDOM_FLAG

    def model(self, name: str):
        """(torch model in eval mode, expected source_sha256 of its exports, random?)"""
        if name not in self._models:
            if not torch_available():
                raise SkipCase("torch is not installed: PyTorch reference and exports unavailable")
            import torch

            from tinct.models.registry import REGISTRY, create_model

            path = self.weights_path(name)
            if path is not None:
                from tinct.models.checkpoint import load_model

                m, card = load_model(str(path), with_card=True)
                sha, rnd = card["source_sha256"], False
            else:
                if name not in REGISTRY:
                    raise SkipCase(f"unknown model {name!r}")
                torch.manual_seed(self.seed)
                m = create_model(name).eval()
                from tinct.export.onnx_export import state_dict_sha256

                sha, rnd = state_dict_sha256(m), True
            self._models[name] = (m, sha, rnd)
        return self._models[name]

    @staticmethod
    def is_gated(name: str) -> bool:
        from tinct.models.registry import REGISTRY

        return name in REGISTRY and REGISTRY[name][0] == "acolvit"

    @staticmethod
    def depth(name: str) -> int:
        from tinct.models.registry import config_for

        return config_for(name)[1].depth

    # -- ONNX (tinct export)
    def onnx(self, name: str, gates: list[list[bool]] | None) -> Path:
        """fp32 ONNX: gating none (iColoriT), dynamic (A-ColViT own decisions) or static (a pattern)."""
        gated = self.is_gated(name)
        gating = "none" if not gated else ("dynamic" if gates is None else "static")
        stem = name + ("" if gating == "none" else "-dynamic" if gating == "dynamic" else f"-g{gate_bits(gates)}")
        key = ("onnx", stem)
        if key in self._files:
            return self._files[key]
        out = self.dir / f"{stem}.onnx"
        if out.is_file() and not torch_available():  # cannot re-check the weights without torch
            self._files[key] = out
            return out
        model, sha, _rnd = self.model(name)
        if out.is_file():
            from tinct.export.onnx_export import read_meta

            try:
                meta = read_meta(out)
                if meta.source_sha256 == sha and meta.gating == gating and (
                        gating != "static" or meta.static_gates == [[bool(a), bool(m)] for a, m in gates]):
                    self._files[key] = out
                    return out
            except Exception:  # noqa: BLE001, S110 - an unreadable cached file is rebuilt
                pass
        try:
            from tinct.export.onnx_export import export_onnx
        except ImportError as exc:
            raise SkipCase(f"export is not available ({_reason(exc)})") from None
        self.log(f"latency: exporting {out.name} ({gating} gating)")
        self.dir.mkdir(parents=True, exist_ok=True)
        export_onnx(model, out, gating=gating, static_gates=gates if gating == "static" else None,
                    model_name=name)
        self._files[key] = out
        return out

    # -- quantized / reduced-precision artifacts (tinct quantize)
    def quantized(self, src: Path, precision: str, backend: str, model: str) -> Path:
        """``tinct quantize`` of the FP32 export ``src``: an .onnx (onnxruntime) or .xml (openvino).

        Shipped weights: the quantizer's defaults (calibration on the corpus' training split when
        present, else the fixture photos; accuracy guard with its default budget). Random weights:
        a small calibration set and no accuracy budget (their accuracy means nothing; latency only)."""
        key = ("q", str(src), precision, backend)
        if key in self._files:
            return self._files[key]
        suffix = ".xml" if backend == "openvino" else ".onnx"
        out = self.dir / f"{src.stem}-{precision}-{backend}{suffix}"
        if out.is_file() and out.stat().st_mtime >= src.stat().st_mtime:
            self._files[key] = out
            return out
        fn = quantize_entry_point()
        random_weights = self.weights_label(model) == RANDOM_FLAG
        kw: dict = {"precision": precision, "backend": backend}
        if precision == "int8-bf16":
            kw.update(precision="int8", ov_float_precision="bf16")
        if random_weights:
            kw.update(calib_size=32, guard_images=4, max_psnr_drop=float("inf"))
        self.log(f"latency: quantizing {src.name} -> {out.name}")
        try:
            try:
                produced = fn(src, out, **kw)
            except Exception as exc:
                if "train" not in str(exc).lower() and "corpus" not in str(exc).lower():
                    raise
                self.log(f"latency: no training split for calibration ({_reason(exc)}); using {PHOTOS}")
                produced = fn(src, out, calib_dir=str(PHOTOS), **kw)
        except TypeError as exc:
            raise SkipCase(f"quantization API differs from what the latency suite expects ({_reason(exc)})") \
                from None
        except Exception as exc:
            from tinct.quantization.guard import GuardError

            if isinstance(exc, GuardError):  # the artifact exists only if it works: report, never time
                raise CaseFailed(f"tinct quantize's guard refused it on this CPU: {_reason(exc)}") from None
            raise
        if isinstance(produced, tuple):  # (path, guard report)
            produced = produced[0]
        produced = Path(produced) if produced else out
        if not produced.is_file():
            raise SkipCase(f"quantization produced no file for {precision}/{backend}")
        self._files[key] = produced
        return produced

    # -- OpenVINO IR (tinct build)
    def ir(self, src: Path) -> Path:
        key = ("ir", str(src))
        if key in self._files:
            return self._files[key]
        out = src.with_suffix(".xml")
        if not (out.is_file() and out.with_suffix(".bin").is_file()
                and out.stat().st_mtime >= src.stat().st_mtime):
            from tinct.runtime.commands.build import build_openvino

            self.log(f"latency: building {out.name}")
            build_openvino(src, out, precision="int8" if _onnx_precision(src) == "int8" else "fp32", check=False)
        self._files[key] = out
        return out


class _Memo:
    """A predictor whose outputs are remembered per input (the reference runs once per export)."""

    def __init__(self, fn):
        self.fn, self.seen = fn, {}

    def __call__(self, x):
        import hashlib

        key = hashlib.sha1(x.tobytes()).hexdigest() + str(x.shape)
        if key not in self.seen:
            self.seen[key] = self.fn(x)
        return self.seen[key]


def fidelity_check(src: Path, run_x: Callable, precision: str, references: dict | None = None,
                   random_weights: bool = False, images: int = FIDELITY_IMAGES) -> dict:
    """Compare an engine (``run_x``: x -> ab) with ONNX Runtime FP32 of ``src`` by the guard's
    criteria for ``precision`` (finite outputs, mean |Δab|, ΔPSNR@10 budget) -> a record with
    ``verdict`` passed/failed and, when failed, ``reason``. Random weights: no PSNR budget (their
    PSNR means nothing), the other criteria hold."""
    import numpy as np

    from tinct.quantization import DEFAULT_BUDGET_DB, DEFAULT_MAX_MEAN_AB, guard

    refs = references if references is not None else {}
    if str(src) not in refs:
        refs[str(src)] = _Memo(guard.Predictor(src, threads=1))
    names, imgs, where = guard.guard_images(images)
    base = "int8" if precision.startswith("int8") else precision
    budget = float("inf") if random_weights else DEFAULT_BUDGET_DB[base]
    max_ab = DEFAULT_MAX_MEAN_AB[base]
    rep = guard.compare(refs[str(src)], lambda x: run_x(x), imgs, names, where)
    d10 = rep.delta.get(10)
    rec = {"images": f"{len(imgs)} ({where})", "hints": list(guard.GUARD_COUNTS), "reference": "ONNX Runtime FP32",
           "delta_psnr10": None if d10 is None or not np.isfinite(d10) else round(float(d10), 4),
           "mean_ab_err": round(float(rep.mean_ab_err), 5), "max_ab_err": round(float(rep.max_ab_err), 4),
           "nonfinite_outputs": rep.nonfinite_outputs, "budget_db": budget, "max_mean_ab_err": max_ab}
    try:
        guard.enforce(rep, budget, f"{precision} engine", max_ab)
    except guard.GuardError as exc:
        reason = str(exc).split("; nothing written")[0].split(": ", 1)[-1]
        return {**rec, "verdict": "failed", "reason": f"fidelity vs ONNX Runtime FP32 on {rec['images']}: {reason}"}
    return {**rec, "verdict": "passed"}


def _onnx_precision(path: Path) -> str:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    for p in m.metadata_props:
        if p.key == "tinct.precision":
            return p.value
    return "fp32"


def quantize_entry_point() -> Callable:
    """``quantization.cli.quantize(src, out, precision=, backend=, ...)`` (what ``tinct quantize``
    runs); SkipCase when the quantization package is absent."""
    try:
        mod = importlib.import_module("tinct.quantization.cli")
    except ImportError as exc:
        raise SkipCase(f"the quantization package ('tinct quantize') is not available ({_reason(exc)})") from None
    fn = getattr(mod, "quantize", None)
    if not callable(fn):
        raise SkipCase("the quantization package has no quantize() entry point")
    return fn


# ----------------------------------------------------------------------------- engines

class TorchRunner:
    """A PyTorch model as a tinct backend (``run_x``) for Colorizer/Session, with a fixed gate pattern."""

    name = "pytorch"

    def __init__(self, model, gates, threads: int | None, device: str = "cpu", dtype=None):
        import torch

        self.torch = torch
        self.model = model
        self.gates = None if gates is None else torch.as_tensor(gates, dtype=torch.bool)
        self.threads = threads
        self.device = device
        self.dtype = dtype or torch.float32

    def set_threads(self) -> None:
        if self.threads and self.torch.get_num_threads() != self.threads:
            self.torch.set_num_threads(self.threads)

    def forward(self, xt):
        torch = self.torch
        with torch.inference_mode():
            if hasattr(self.model, "forced_gates"):
                self.model.forced_gates = self.gates
            return self.model(xt)

    def run_x(self, x: np.ndarray) -> np.ndarray:
        self.set_threads()
        return self.forward(self.torch.from_numpy(x)).numpy()


def _own_kept(store: ModelStore, name: str, x: np.ndarray) -> float:
    """A-ColViT: fraction of sub-layers its own decisions run on ``x`` (for a batch: those any
    sample keeps, which is what the dynamic export computes)."""
    return kept_fraction(_own_gates(store, name, x))


def _own_gates(store: ModelStore, name: str, x: np.ndarray):
    """A-ColViT: [depth, 2] bool, the sub-layers (attention, MLP per block) its own decisions run on
    ``x`` (any sample of a batch)."""
    import torch

    model = store.model(name)[0]
    saved = model.forced_gates
    try:
        model.forced_gates = None
        with torch.inference_mode():
            _ab, g = model.forward_with_gates(torch.from_numpy(x))
    finally:
        model.forced_gates = saved
    return g.numpy().any(axis=0)


def _backend_info(be) -> dict:
    try:
        d = be.describe()
    except Exception:  # noqa: BLE001 - reported, never fatal
        return {}
    info = {"artifact": Path(str(d.get("artifact", ""))).name or None}
    if d.get("inference_precision"):
        info["inference_precision"] = d["inference_precision"]
    if d.get("providers"):
        info["providers"] = d["providers"]
    return info


def _workload(mode: str, run_x: Callable[[np.ndarray], np.ndarray], backend_obj, batch: int) -> Timed:
    """The timed call for a mode, around any object with ``run_x`` (a Backend or TorchRunner)."""
    from tinct.runtime.hints import IMG_SIZE

    if mode == "model":
        x = model_inputs(1)
        return Timed(call=lambda: run_x(x))
    if mode == "throughput":
        x = model_inputs(batch)
        return Timed(call=lambda: run_x(x))
    from tinct.runtime.colorizer import Colorizer

    col = Colorizer(backend_obj)
    if mode == "e2e":
        img = photo(fixture_photos()[0], (IMG_SIZE, IMG_SIZE))
        hints = user_hints(img)
        return Timed(call=lambda: col.colorize(img, hints))
    if mode == "session":
        img = photo(fixture_photos()[0], SESSION_SIZE)
        hints = user_hints(img)
        sess = col.session(img)
        sess.set_hints(hints)
        sess.colorize()
        a, b = (hints[0].x, hints[0].y), (min(hints[0].x + 37, img.shape[1] - 1), hints[0].y)
        taken = {(h.x, h.y) for h in hints}
        if b == a or b in taken:
            b = next((x, a[1]) for x in range(img.shape[1] - 1, -1, -1) if (x, a[1]) not in taken)
        pos = [a]
        stages: dict[str, list[float]] = {}

        def call():
            new = b if pos[0] == a else a
            sess.move_hint(pos[0], new)
            pos[0] = new
            sess.colorize()

        def after():
            for k, v in sess.timings.items():
                if k != "prepare":
                    stages.setdefault(k, []).append(v)

        def extra():
            import numpy as np
            return {"stages_median_ms": {k: float(np.median(v)) for k, v in stages.items()},
                    "image_size": list(SESSION_SIZE)}

        return Timed(call=call, after=after, extra=extra)
    raise SkipCase(f"unknown mode {mode!r}")


def _variant_gates(store: ModelStore, name: str, variant: str):
    return gate_pattern(variant, store.depth(name)) if variant else None


def torch_case_setup(store: ModelStore, case: Case) -> Callable[[], Timed]:
    def setup() -> Timed:
        model = store.model(case.model)[0]
        gates = _variant_gates(store, case.model, case.variant)
        runner = TorchRunner(model, gates, case.threads)
        runner.set_threads()
        t = _workload(case.mode, runner.run_x, runner, case.batch)
        t.before = runner.set_threads
        kept = _kept_info(store, case, gates)
        bits = kept.pop("_bits", None)
        macs = None
        with contextlib.suppress(SkipCase, ImportError):
            macs = _case_macs(store, store.onnx(case.model, gates), bits)
        t.info.update(weights=store.weights_label(case.model), **kept, macs=macs)
        return t
    return setup


def _kept_info(store: ModelStore, case: Case, gates) -> dict:
    if not case.variant:
        return {"kept_ratio": None}
    if gates is not None:
        return {"kept_ratio": kept_fraction(gates), "gates": gate_bits(gates)}
    if not torch_available():
        return {"kept_ratio": None, "gates": "own decisions (not measured: torch is not installed)"}
    x = model_inputs(case.batch if case.mode == "throughput" else 1)
    bits = _own_gates(store, case.model, x)
    return {"kept_ratio": kept_fraction(bits), "gates": "own decisions", "_bits": bits.reshape(-1).tolist()}


def _case_macs(store: ModelStore, src: Path, own_bits: list[bool] | None) -> int | None:
    """MACs per image of the case's graph: A-ColViT's If graph counts the branches its gates ran."""
    mc = store.macs(src)
    if mc is None:
        return None
    if mc.branches and own_bits is not None and len(own_bits) == len(mc.branches):
        return mc.executed(own_bits)
    return mc.executed()


def engine_case_setup(store: ModelStore, case: Case) -> Callable[[], Timed]:
    """ONNX Runtime / OpenVINO on CPU: export (+ quantize) (+ build IR), open, wrap in the mode."""
    def setup() -> Timed:
        from tinct.runtime.backends import open_backend

        gates = _variant_gates(store, case.model, case.variant)
        src = store.onnx(case.model, gates)
        opts: dict = {"threads": case.threads or 0}
        if case.backend == "onnxruntime":
            if case.precision == "int8-bf16":
                raise SkipCase("int8-bf16 (bf16 for the unquantized ops) is an OpenVINO precision")
            if case.precision == "fp32":
                path = src
            else:  # int8 Q/DQ or fp16 ONNX from tinct quantize
                path = store.quantized(src, case.precision, "onnxruntime", case.model)
            # (INT8 A-ColViT's ONNX Runtime workaround is recorded in the artifact; the backend applies it)
        elif case.backend == "openvino":
            if importlib.util.find_spec("openvino") is None:
                raise SkipCase("openvino is not installed")
            from tinct.runtime.cpu import missing_isa

            why = missing_isa("bf16") if case.precision in ("bf16", "int8-bf16") else None
            if why:
                raise SkipCase(f"this CPU cannot run {case.precision}: {why}")
            if case.precision in ("fp32", "fp16"):
                path = store.ir(src)
            else:  # bf16 / int8 IR from tinct quantize (its guard ran on this CPU)
                path = store.quantized(src, case.precision, "openvino", case.model)
            # int8-bf16: the IR records bf16 for its unquantized ops; the backend applies it for "int8"
            opts["precision"] = "int8" if case.precision == "int8-bf16" else case.precision
        else:
            raise SkipCase(f"backend {case.backend} is not a CPU engine")
        be = open_backend(path, case.backend, **opts)
        desc = be.describe()
        if case.backend == "openvino" and case.precision in ("bf16", "fp16"):
            want = {"bf16": "bf16", "fp16": "f16"}[case.precision]
            if str(desc.get("inference_precision", want)) not in (want, case.precision):
                be.close()
                raise SkipCase(f"OpenVINO runs {desc.get('inference_precision')} here, not {case.precision} "
                               "(no native support on this CPU)")
        try:
            fidelity = store.fidelity(src, path, case.backend, case.precision, be.run_x, case.model)
        except CaseFailed:
            be.close()
            raise
        t = _workload(case.mode, be.run_x, be, case.batch)
        t.close = be.close
        kept = _kept_info(store, case, gates)
        bits = kept.pop("_bits", None)
        t.info.update(weights=store.weights_label(case.model), **_backend_info(be), **kept,
                      fidelity=fidelity, macs=_case_macs(store, src, bits))
        return t
    return setup


def gpu_case_setup(store: ModelStore, case: Case) -> Callable[[], Timed]:
    """CUDA: PyTorch eager, a CUDA-graph replay, or TensorRT (model mode)."""
    def setup() -> Timed:
        import copy

        import torch

        if not torch.cuda.is_available():
            raise SkipCase("CUDA is not available here")
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(case.precision)
        gates = _variant_gates(store, case.model, case.variant)
        x_np = model_inputs(case.batch if case.mode == "throughput" else 1)
        if case.backend == "tensorrt":
            if importlib.util.find_spec("tensorrt") is None:
                raise SkipCase("TensorRT is not installed")
            from tinct.runtime.backends import open_backend
            from tinct.runtime.commands.build import build_tensorrt

            if case.variant == "own":
                raise SkipCase("TensorRT If layers cost about both branches: use a static gate pattern")
            src = store.onnx(case.model, gates)
            eng = src.with_suffix(".engine")
            if not eng.is_file() or eng.stat().st_mtime < src.stat().st_mtime:
                build_tensorrt(src, eng, precision="fp32")
            be = open_backend(eng, "tensorrt")
            return Timed(call=lambda: be.run_x(x_np), close=be.close, info=_backend_info(be))
        if dtype is None:
            raise SkipCase(f"{case.precision} is not a PyTorch CUDA precision here")
        base = store.model(case.model)[0]
        model = copy.deepcopy(base).to("cuda", dtype).eval()
        xg = torch.from_numpy(x_np).to("cuda", dtype)
        info = {"weights": store.weights_label(case.model), "gpu": torch.cuda.get_device_name(),
                **{k: v for k, v in _kept_info(store, case, gates).items() if not k.startswith("_")}}
        if case.backend == "pytorch":
            if hasattr(model, "forced_gates"):
                model.forced_gates = None if gates is None else torch.as_tensor(gates, device="cuda")

            def call():
                with torch.inference_mode():
                    model(xg)
                torch.cuda.synchronize()
            return Timed(call=call, info=info)
        if case.backend == "pytorch-cudagraph":
            if case.variant == "own":
                raise SkipCase("CUDA graphs cannot capture data-dependent gate decisions (If)")
            module = model
            if gates is not None:
                from tinct.export.onnx_export import StaticGatedAColViT

                module = StaticGatedAColViT(model, gates).eval()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s), torch.inference_mode():
                for _ in range(3):
                    module(xg)
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph):
                module(xg)

            def replay():
                graph.replay()
                torch.cuda.synchronize()
            return Timed(call=replay, info=info)
        raise SkipCase(f"unknown GPU backend {case.backend}")
    return setup


# ----------------------------------------------------------------------------- planning

def parse_list(text: str | Sequence[str] | None, allowed: Sequence[str] | None = None, what: str = "value") -> list:
    if text is None:
        return []
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if str(s).strip()]
    if allowed is not None:
        bad = [s for s in items if s not in allowed]
        if bad:
            raise ValueError(f"unknown {what} {', '.join(bad)}; choose from {', '.join(allowed)}")
    return items


def plan_cases(store: ModelStore, models: Sequence[str], backends: Sequence[str], precisions: Sequence[str],
               threads: Sequence[int], modes: Sequence[str], gates: Sequence[str] = DEFAULT_GATES,
               batch: int = 8, gpu: bool | None = None, gate_modes: Sequence[str] = ("model",)) -> list[Case]:
    """Every case of a run. The PyTorch eager FP32 reference is always included (skipped with the
    reason when torch is absent); ``throughput`` runs single-threaded only; A-ColViT gets one
    case per gate pattern in the ``gate_modes`` (other modes: its own decisions only);
    GPU cases are added when ``gpu`` (default: torch.cuda is available) or skipped once with a reason."""
    cases: list[Case] = []
    has_torch = torch_available()
    for name in models:
        gated = store.is_gated(name)
        for mode in modes:
            variants = ([g for g in gates] if mode in gate_modes else ["own"]) if gated else [""]
            thr = [1] if mode == "throughput" else list(threads)
            b = batch if mode == "throughput" else 1
            for variant in variants:
                for t in thr:
                    ref = Case(name, "pytorch", "fp32", t, mode, variant, batch=b)
                    if not has_torch:
                        ref.skip = "torch is not installed: no PyTorch eager reference (ratios vs eager are null)"
                    else:
                        ref.setup = torch_case_setup(store, ref)
                    cases.append(ref)
                    for be in backends:
                        if be == "pytorch":
                            continue
                        for p in precisions:
                            c = Case(name, be, p, t, mode, variant, batch=b)
                            if be not in ("onnxruntime", "openvino"):
                                c.skip = f"{be} is not a CPU backend"
                            elif be == "onnxruntime" and p in ("bf16",):
                                c.skip = "ONNX Runtime CPU has no bf16 kernels for this model; use openvino bf16"
                            else:
                                c.setup = engine_case_setup(store, c)
                            cases.append(c)
    cases += plan_gpu_cases(store, models, precisions, gates, gpu)
    return cases


def plan_gpu_cases(store: ModelStore, models: Sequence[str], precisions: Sequence[str], gates: Sequence[str],
                   gpu: bool | None = None) -> list[Case]:
    if gpu is None:
        gpu = False
        if torch_available():
            import torch

            gpu = bool(torch.cuda.is_available())
    if not gpu:
        reason = ("CUDA is not available here (torch.cuda.is_available() is False)" if torch_available()
                  else "torch is not installed: no GPU cases")
        return [Case("*", "gpu (pytorch, cuda-graph, tensorrt)", "-", None, "model", device="cuda", skip=reason)]
    cases = []
    for name in models:
        variants = list(gates) if store.is_gated(name) else [""]
        for variant in variants:
            for be in ("pytorch", "pytorch-cudagraph", "tensorrt"):
                for p in [p for p in precisions if p in ("fp32", "fp16", "bf16")] or ["fp32"]:
                    if be == "tensorrt" and p != "fp32":
                        continue
                    c = Case(name, be, p, None, "model", variant, device="cuda")
                    c.setup = gpu_case_setup(store, c)
                    cases.append(c)
    return cases


# ----------------------------------------------------------------------------- the command

def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "latency", help="latency / throughput of models x backends x precisions x threads, round-robin",
        description=__doc__.split("\n\n")[0] + "\n\nCases are timed round-robin (one call of each per round) "
        "with the PyTorch eager FP32 reference in the same run; results are medians, IQRs and ratios.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  tinct bench latency --models icolorit-tiny,acolvit-tiny-0.5 --backends "
               "onnxruntime,openvino \\\n      --precisions fp32,int8 --threads 1,2 --modes model,e2e --rounds 50 "
               "--json lat.json --artifacts .benchmarks/artifacts")
    p.add_argument("--models", default="icolorit-tiny", metavar="A,B", help="registry names (default icolorit-tiny)")
    p.add_argument("--backends", default="onnxruntime,openvino", metavar="A,B",
                   help="onnxruntime, openvino (the PyTorch eager reference is always added)")
    p.add_argument("--precisions", default="fp32", metavar="A,B", help="fp32, bf16, fp16, int8 (default fp32)")
    p.add_argument("--threads", default="1", metavar="N,M", help="intra-op thread counts (default 1)")
    p.add_argument("--modes", default="model", metavar="A,B", help=f"{', '.join(MODES)} (default model)")
    p.add_argument("--gates", default=",".join(DEFAULT_GATES), metavar="P,Q",
                   help="A-ColViT gate patterns: own, all, a kept ratio (0.5), or 2*depth bits "
                        f"(default {','.join(DEFAULT_GATES)})")
    p.add_argument("--gate-modes", default="model", metavar="A,B",
                   help="modes in which every gate pattern is measured (others: own decisions; default model)")
    p.add_argument("--rounds", type=int, default=50, help="timed rounds (one call of every case each; default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    p.add_argument("--batch", type=int, default=8, help="throughput mode: images per call (default 8)")
    p.add_argument("--order", choices=("shuffle", "rotate", "fixed"), default="shuffle",
                   help="order of the cases within a round (default shuffle, seeded)")
    p.add_argument("--seed", type=int, default=0, help="seed of the order and of random-weight models")
    p.add_argument("--burst", type=int, default=1, metavar="N",
                   help="calls per case per round: the first untimed (it reloads what the other engines evicted "
                        "from the caches), the rest timed: warm-cache steady state, still interleaved (default 1)")
    p.add_argument("--gap-ms", type=float, default=2.0,
                   help="pause between calls so thread pools stop spinning (default 2 ms, untimed)")
    p.add_argument("--artifacts", default=DEFAULT_ARTIFACTS, metavar="DIR",
                   help="where exported/quantized/compiled artifacts are cached (default "
                        f"{DEFAULT_ARTIFACTS}, git-ignored)")
    p.add_argument("--json", dest="json_out", metavar="OUT.json", help="write the latency result here")
    p.add_argument("--no-gpu", action="store_true", help="do not add GPU cases even when CUDA is present")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    from tinct.benchmarks import env as envmod
    from tinct.runtime.errors import TinctError

    try:
        models = parse_list(args.models, what="model")
        backends = parse_list(args.backends, ("pytorch", "onnxruntime", "openvino", "tensorrt"), "backend")
        precisions = parse_list(args.precisions, PRECISIONS, "precision")
        threads = [int(t) for t in parse_list(args.threads, what="thread count")]
        modes = parse_list(args.modes, MODES, "mode")
        gate_modes = parse_list(args.gate_modes, MODES, "mode")
        gates = parse_list(args.gates, what="gate pattern")
        for g in gates:
            gate_pattern(g, 12)
    except ValueError as exc:
        raise TinctError(str(exc)) from None
    from tinct.models.registry import REGISTRY

    unknown = [m for m in models if m not in REGISTRY]
    if unknown:
        raise TinctError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(REGISTRY))}")
    if not models or not modes or not threads or any(t < 1 for t in threads) or args.rounds < 1 or args.batch < 1:
        raise TinctError("need at least one model, mode, thread count >= 1, --rounds >= 1 and --batch >= 1")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    env = envmod.capture()
    store = ModelStore(args.artifacts, seed=args.seed, log=log)
    cases = plan_cases(store, models, backends, precisions, threads, modes, gates, args.batch,
                       gpu=False if args.no_gpu else None, gate_modes=gate_modes)
    notes = []
    weights = {m: store.weights_label(m) for m in models}
    for m, w in weights.items():
        if w == RANDOM_FLAG:
            notes.append(f"{m}: no weights/{m}.safetensors here -> {RANDOM_FLAG}: a seeded random init of the "
                         "same architecture; A-ColViT 'own' decisions of random weights are not the trained ones")
            log(f"latency: {m}: {RANDOM_FLAG}")
    if not torch_available():
        notes.append("torch is not installed: no PyTorch eager reference; speedup_vs_eager is null")
    log(f"latency: {len(cases)} cases, {args.warmup} warm-up + {args.rounds} timed rounds, order {args.order}"
        + (f", bursts of {args.burst} (first untimed)" if args.burst > 1 else ""))
    run = run_cases(cases, rounds=args.rounds, warmup=args.warmup, order=args.order, seed=args.seed,
                    gap_s=args.gap_ms / 1e3, progress=not args.no_progress, log=log, burst=args.burst)
    envmod.finish(env)
    add_efficiency(run.results, log=log)
    config = {k: getattr(args, k) for k in ("models", "backends", "precisions", "threads", "modes", "gates",
                                            "gate_modes", "rounds", "warmup", "batch", "order", "seed", "gap_ms", "burst",
                                            "artifacts")}
    doc = result_document(run, env, config, notes, weights)
    for n in notes:
        print(f"note: {n}")
    print(f"machine: {env.get('cpu_line', env.get('cpu'))}, {env.get('cpu_count')} logical cores")
    print(markdown_table(run.results, run.skipped, run.failed))
    la, lb = env.get("loadavg_start"), env.get("loadavg_end")
    if la and lb:
        print(f"\nload average start {la[0]:.2f}, end {lb[0]:.2f} (cpu count {env.get('cpu_count')})")
    if args.json_out:
        write_json(doc, args.json_out)
        print(f"wrote {args.json_out}")
    return 0 if run.results else 1
