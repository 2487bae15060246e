"""``--precision auto`` for OpenVINO: the fastest precision that passes its guard on this CPU.

Candidates: fp32, bf16, int8, int8 with bf16 float ops (the bf16 ones only where the CPU runs bf16
natively, :func:`runtime.cpu.missing_isa`). Each is built the way its own command builds it
(``tinct build`` for fp32, ``tinct quantize`` with its guard for the others; the fp32 IR is held to
the FP32 parity criteria by the same guard), then the ones that passed are timed **interleaved**
by the latency scheduler (:func:`benchmarks.latency.run_cases`) on a validation photo with 10 hints,
at the thread count the artifact is meant for. The fastest passing candidate is written, with the
whole candidate table (median ms, IQR, ΔPSNR@10, verdict, reason) in its build info
(``auto_candidates``), which ``tinct info`` shows.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinct.data.corpus import cache_dir
from tinct.data.samples import SAMPLES_DIR
from tinct.deploy.build import build_openvino
from tinct.quantization.api import quantize, verification_record
from tinct.quantization.recipes import Calibration, GuardPolicy, make_recipe, read_parent
from tinct.runtime.artifact import C2E_COLORIZER, sha256_file
from tinct.runtime.backends.openvino_backend import OpenVINOBackend
from tinct.runtime.backends.openvino_ir import commit_ir, restamp_ir
from tinct.runtime.color import rgb_to_lab_n
from tinct.runtime.cpu import cpu_record, missing_isa
from tinct.runtime.errors import MissingExtraError, TinctError
from tinct.runtime.hints import encode_from_lab, make_eval_hints, mask_from_coords
from tinct.runtime.timing import Case, Timed, run_cases
from tinct.verify import guard
from tinct.verify.budgets import DEFAULT_BUDGET_DB, DEFAULT_MAX_MEAN_AB

CANDIDATES = ("fp32", "bf16", "int8", "int8-bf16")


def _x_for_timing():
    """One model input: the first guard image with 10 evaluation hints."""

    names, images, _ = guard.guard_images(1)
    coords = make_eval_hints([f"{names[0]}.png"], (10,))[10][names[0]]
    x = encode_from_lab(rgb_to_lab_n(images[:1]), mask_from_coords(coords)[None])
    return np.ascontiguousarray(x, dtype=np.float32)


def _calibration_dir(calib_dir):
    """--calib, else the corpus' training split (None: the quantizer's default), else the fixture photos."""
    if calib_dir:
        return calib_dir
    if (cache_dir(None) / "train" / "index.json").is_file():
        return None

    return str(SAMPLES_DIR)
    raise TinctError("--precision auto needs calibration photos for its INT8 candidates: pass --calib DIR "
                     "or run 'tinct data fetch'")


def build_auto(onnx_path, out, *, threads: int = 1, calib_dir=None, calib_size: int = 300,  # noqa: C901 - one table
               guard_images: int | None = None, rounds: int = 30, progress: bool = False,
               log: Callable[[str], None] | None = None) -> tuple[Path, list[dict]]:
    """Build, guard and time every candidate; write the fastest that passed to ``out`` (.xml).
    Returns (out, candidate table). Nothing is written when no candidate passes.
    Long on purpose: every candidate's build -> guard -> verdict and the final choice are one table
    filled in one pass; split up, the rows' states would travel through four helpers."""

    log = log or (lambda m: None)
    src, out = Path(onnx_path), Path(out)
    if out.suffix.lower() != ".xml":
        raise TinctError(f"output {out.name}: --precision auto writes an OpenVINO IR (.xml)")
    parent = read_parent(src)
    if parent.architecture == C2E_COLORIZER:
        raise TinctError("--precision auto times hint-based models (iColoriT, A-ColViT); for Color2Embed pick "
                         "--precision int8 or fp32 (tinct quantize guards it)")
    if not 1 <= int(threads) <= 256:
        raise TinctError(f"--threads {threads}: --precision auto times at 1..256 threads")
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.stem}.auto.", dir=out.parent if str(out.parent) else "."))
    table: list[dict] = []
    built: dict[str, Path] = {}
    try:
        calib = None
        for cand in CANDIDATES:
            row = {"precision": cand}
            table.append(row)
            why = missing_isa("bf16") if cand in ("bf16", "int8-bf16") else None
            if why:
                row.update(verdict="not supported", reason=why)
                continue
            path = tmpdir / f"{cand}.xml"
            log(f"auto: building and guarding {cand}")
            try:
                if cand == "fp32":
                    build_openvino(src, path, precision="fp32", threads=threads)
                    rep = guard.evaluate(src, path, limit=guard_images)
                    guard.enforce(rep, DEFAULT_BUDGET_DB["fp32"], f"{src.name} -> fp32 (openvino)",
                                  DEFAULT_MAX_MEAN_AB["fp32"])
                else:
                    if cand.startswith("int8") and calib is None:
                        calib = _calibration_dir(calib_dir) or ""
                    recipe = make_recipe(precision="int8" if cand.startswith("int8") else "bf16",
                                         backend="openvino", dynamic=parent.gating == "dynamic",
                                         ov_float_precision="bf16" if cand == "int8-bf16" else "f32",
                                         calibration=Calibration(source=calib or None, size=calib_size))
                    _, rep = quantize(src, path, recipe, GuardPolicy(images=guard_images), progress=progress)
            except guard.GuardError as exc:
                row.update(verdict="failed", reason=str(exc).split("; nothing written")[0][:300])
                continue
            except TinctError as exc:
                row.update(verdict="not built", reason=str(exc)[:300])
                continue
            row.update(verdict="passed", delta_psnr10=round(float(rep.delta.get(10, 0.0)), 4),
                       mean_ab_err=round(float(rep.mean_ab_err), 4))
            built[cand] = path
        if not built:
            raise TinctError(f"{src.name}: no precision passed its guard on this CPU: "
                             + "; ".join(f"{r['precision']} {r['verdict']}" for r in table))
        x = _x_for_timing()

        def setup_for(p: Path):
            def setup():
                be = OpenVINOBackend.load(p, threads=threads)
                return Timed(call=lambda: be.run_x(x), close=be.close)
            return setup

        cases = [Case(parent.model, "openvino", c, threads, setup=setup_for(p)) for c, p in built.items()]
        log(f"auto: timing {', '.join(built)} interleaved ({rounds} rounds, {threads} thread(s))")
        run = run_cases(cases, rounds=rounds, warmup=3, burst=2, gap_s=0.002)
        for r in run.results:
            row = next(t for t in table if t["precision"] == r["precision"])
            row.update(median_ms=round(r["median_ms"], 3), iqr_ms=round(r["iqr_ms"], 3))
        for f in run.failed + run.skipped:
            row = next(t for t in table if t["precision"] == f["precision"])
            row.update(verdict="failed", reason=f["reason"][:300])
        timed = [t for t in table if t.get("verdict") == "passed" and "median_ms" in t]
        if not timed:
            raise TinctError(f"{src.name}: no candidate could be timed on this CPU")
        best = min(timed, key=lambda t: t["median_ms"])
        for t in table:
            t["chosen"] = t is best
        _finalize(built[best["precision"]], out, tmpdir, {
            "auto_candidates": json.dumps(table), "auto_choice": best["precision"], "auto_threads": str(threads),
            "auto_verified_on": json.dumps(verification_record("openvino"))})
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out, table


def _finalize(chosen: Path, out: Path, tmpdir: Path, extra_build: dict[str, str]) -> None:
    """The chosen IR with the candidate table added to its build info, renamed into place."""

    final = tmpdir / "final" / out.name
    final.parent.mkdir()
    commit_ir(restamp_ir(chosen, final, extra_build=extra_build), out)


def format_table(table: list[dict]) -> str:
    rows = ["| precision | median ms (IQR) | ΔPSNR@10 dB | verdict |", "|---|---|---|---|"]
    for t in table:
        ms = f"{t['median_ms']:.2f} ({t['iqr_ms']:.2f})" if "median_ms" in t else "-"
        d = f"{t['delta_psnr10']:+.3f}" if t.get("delta_psnr10") is not None else "-"
        verdict = t.get("verdict", "?") + (" (chosen)" if t.get("chosen") else "")
        if t.get("reason"):
            verdict += f": {t['reason']}"
        rows.append(f"| {t['precision']} | {ms} | {d} | {verdict} |")
    return "\n".join(rows)


def auto_engine(onnx_path: Path, threads: int, cache: Path) -> Path:
    """The ``--precision auto`` IR for an FP32 ONNX on this CPU and thread count: cached in ``cache``
    under the ONNX's sha256 and the CPU record, built (and guarded, and timed) on first use."""

    if onnx_path.suffix.lower() != ".onnx":
        raise TinctError(f"--precision auto starts from an FP32 .onnx artifact, not {onnx_path.name}")
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        raise MissingExtraError("colorize --precision auto", "openvino and nncf", "openvino,quant") from None
    cpu_key = hashlib.sha256(json.dumps(cpu_record(), sort_keys=True).encode()).hexdigest()[:8]
    out = Path(cache) / f"{onnx_path.stem}-{sha256_file(onnx_path)[:12]}-auto-{cpu_key}-t{threads}.xml"
    if out.is_file() and out.with_suffix(".bin").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"choosing the precision for {onnx_path.name} on this CPU ({threads} thread(s); first use, cached "
          f"in {out.parent})", flush=True)
    build_auto(onnx_path, out, threads=threads, log=lambda m: print(m, flush=True))
    return out
