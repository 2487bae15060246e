"""``quantize(src, out, recipe, guard)``: build -> guard -> stamp -> rename, nothing half-written.

Every artifact is built in a temporary directory next to ``out``, evaluated against its FP32 parent
(:mod:`quantization.guard`: ΔPSNR@{1,10,50}, mean/max |Δab|, gate agreement; Color2Embed's colorizer:
:mod:`quantization.color2embed`), refused with :class:`~tinct.verify.guard.GuardError` when it
misses the budget, and renamed into place only when it passes, with the recipe, the measurements and
the CPU it was verified on in its metadata (``extra``). Recipes: :mod:`quantization.recipes`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import onnxruntime as ort

from tinct.quantization.calibration import DEFAULT_SEED, CalibrationSet
from tinct.quantization.color2embed import C2ECalibrationSet, encoder_for
from tinct.quantization.recipes import GuardPolicy, Recipe, read_parent
from tinct.runtime.artifact import C2E_COLORIZER, C2E_ENCODER, set_onnx_props, sha256_file
from tinct.runtime.backends.onnxruntime_backend import QDQ_IF_DISABLED
from tinct.runtime.cpu import cpu_record
from tinct.runtime.errors import TinctError
from tinct.verify import color2embed
from tinct.verify import guard as guard_mod


def quantize(src, out, recipe: Recipe, guard: GuardPolicy | None = None, *, threads: int = 1,
             progress: bool = False):
    """Build ``recipe`` from the FP32 ONNX ``src``, guard it and write ``out``; -> (out, report).
    One function on purpose: the temporary directory, the build, the guard and the final rename are one
    transaction (nothing is written unless the artifact passed)."""

    from tinct.quantization.builders import build_candidate

    ort.set_default_logger_severity(3)
    src, out = Path(src), Path(out)
    guard = guard or GuardPolicy()
    parent = read_parent(src)
    _check_output(recipe, out)
    budget, max_mean_ab = guard.budgets(recipe.precision)
    parent_sha = sha256_file(src)
    c2e_encoder = _color2embed_encoder(parent, src)  # Color2Embed colorizer: its FP32 encoder, else None
    extra: dict = {"parent_extra": parent.extra, "budget_db": budget, "max_mean_ab_err": max_mean_ab,
                   "recipe": recipe.to_dict()}
    what = f"{src.name} -> {recipe.precision} ({recipe.backend})"

    def evaluate(candidate: Path):
        if c2e_encoder is not None:

            return color2embed.evaluate(src, candidate, c2e_encoder, threads=threads, limit=guard.images)
        # an IR is evaluated at the inference precision recorded in it (--ov-float-precision)
        return guard_mod.evaluate(src, candidate, threads=threads, limit=guard.images)

    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent if str(out.parent) else "."))
    try:
        calib = _calibration(recipe, c2e_encoder, progress)
        if calib is not None:
            extra["calibration"] = calib.describe()
        child = dataclasses.replace(parent, precision=recipe.precision, parent_sha256=parent_sha)
        cand = build_candidate(recipe, src, tmpdir, out.name, parent_sha=parent_sha, calib=calib, threads=threads,
                               props=child.to_props())
        report = evaluate(cand.path)
        guard_mod.enforce(report, budget, what, max_mean_ab)
        extra.update(cand.extra)
        extra["guard"] = {**report.to_dict(), "verified_on": verification_record(recipe.backend)}
        if report.gate_agreement is not None:
            extra["gate_agreement"] = round(report.gate_agreement, 5)
        if recipe.conditional and out.suffix == ".onnx":  # Q/DQ inside If: see the ORT backend

            extra["runtime_options"] = {"onnxruntime": {"disabled_optimizers": list(QDQ_IF_DISABLED)}}
        props = dataclasses.replace(child, extra=extra).to_props()
        final = tmpdir / ("final" + out.suffix)
        if out.suffix == ".xml":
            from tinct.quantization.openvino_int8 import commit_ir, restamp_ir

            commit_ir(restamp_ir(cand.path, final, props), out)
        else:
            import onnx

            m = onnx.load(str(cand.path))
            set_onnx_props(m, props, producer="tinct quantize")
            onnx.save(m, str(final))
            os.replace(final, out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out, report


def _calibration(recipe: Recipe, c2e_encoder, progress: bool):
    """The calibration set an INT8 recipe needs (None for FP16/BF16)."""
    if recipe.precision != "int8":
        return None

    c = recipe.calibration
    seed = DEFAULT_SEED if c.seed is None else c.seed
    if c2e_encoder is not None:

        return C2ECalibrationSet.from_source(c2e_encoder, c.source, c.size, seed, progress=progress)
    return CalibrationSet.from_source(c.source, c.size, seed, progress=progress)


def _check_output(recipe: Recipe, out: Path) -> None:
    want = ".xml" if recipe.backend == "openvino" else ".onnx"
    if out.suffix.lower() != want:
        raise TinctError(f"output {out.name}: --backend {recipe.backend} writes a {want} file")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise TinctError(f"output directory {out.parent} does not exist")


def verification_record(backend: str) -> dict:
    """Where a guard ran: the CPU (model, effective ISA, flags) and the library versions."""

    rec = {"cpu": cpu_record(), "onnxruntime": ort.__version__}
    if backend == "openvino":
        import openvino as ov

        rec["openvino"] = ov.__version__
    return rec


def _color2embed_encoder(parent, src: Path):
    """Color2Embed: the colorizer's FP32 encoder (calibration and guard embeddings); the encoder
    itself is not quantized (it runs once per reference). Other architectures: None."""

    if parent.architecture == C2E_ENCODER:
        raise TinctError(f"{src.name} is the Color2Embed colour encoder: it runs once per reference and stays "
                         "FP32; quantize the colorizer graph (*-colorizer.onnx)")
    if parent.architecture != C2E_COLORIZER:
        return None

    return encoder_for(src)
