"""`tinct quantize IN.onnx --precision int8|fp16|bf16 [--backend ...] -o OUT`.

Routes (the parent must be an FP32 tinct ONNX):

=========  ==========================  ====================================================
precision  backend                     artifact
=========  ==========================  ====================================================
int8       onnxruntime (default),      Q/DQ ONNX (``quantize_static``; A-ColViT: per-branch,
           tensorrt                    :mod:`quantization.conditional`); TensorRT's explicit
                                       quantization builds from this file (``tinct build``);
                                       for tensorrt the activations are signed INT8, zero point 0
int8       openvino                    IR: NNCF (iColoriT) or a Q/DQ ONNX read by OpenVINO
                                       (A-ColViT: NNCF's ONNX backend per branch; or
                                       ``--ov-route qdq``)
fp16       onnxruntime, tensorrt       FP16 ONNX, float32 I/O
bf16       openvino                    IR whose backend runs INFERENCE_PRECISION_HINT=bf16
=========  ==========================  ====================================================

Every artifact is built in a temporary directory next to ``-o``, evaluated against its parent by
:mod:`quantization.guard` (ΔPSNR@{1,10,50}, max |Δab|, gate agreement), refused with a non-zero exit
when ΔPSNR@10 exceeds the budget (default 0.1 dB INT8, 0.02 dB FP16/BF16) or the mean |Δab|
against the parent exceeds its limit (3 / 1 ab units), and renamed into place
only when it passes, with the recipe and the measurements in its metadata (``extra``).

Color2Embed: the colorizer graph (``*-colorizer.onnx``) takes the same routes with its own
calibration (L of training crops + FP32-encoder embeddings of their TPS-warped versions) and guard
(ΔPSNR with the image's own TPS-warped reference, budget as above; :mod:`quantization.color2embed`);
the colour encoder is not quantized.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tinct.quantization import DEFAULT_BUDGET_DB, DEFAULT_MAX_MEAN_AB, PRECISIONS


def register(subparsers) -> None:
    p = subparsers.add_parser("quantize", help="INT8 / FP16 / BF16 artifacts from an FP32 ONNX, accuracy-guarded",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("onnx", help="FP32 tinct ONNX artifact (from 'tinct export')")
    p.add_argument("--precision", required=True, choices=PRECISIONS)
    p.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "openvino", "tensorrt"])
    p.add_argument("--calib", default=None, metavar="DIR", help="calibration images (default: the corpus' training split)")
    p.add_argument("--calib-size", type=int, default=300)
    p.add_argument("--calib-seed", type=int, default=None)
    p.add_argument("--qdq-tool", default=None, choices=["nncf", "onnxruntime"],
                   help="who writes the Q/DQ ONNX: NNCF's ONNX backend (default for --backend openvino) or ONNX "
                        "Runtime's quantize_static (default for onnxruntime; always for tensorrt: signed INT8, zero "
                        "point 0). NNCF's graph lost less PSNR on the ViTs at the same ONNX Runtime speed")
    p.add_argument("--method", default=None, choices=["minmax", "entropy", "percentile"],
                   help="calibration method of --qdq-tool onnxruntime (default minmax)")
    p.add_argument("--max-psnr-drop", type=float, default=None, metavar="DB",
                   help="budget for PSNR@10 parent - quantized (default 0.1 int8, 0.02 fp16/bf16)")
    p.add_argument("--max-mean-ab-err", type=float, default=None, metavar="AB",
                   help="limit on mean |Δab| against the parent (default 3 int8, 1 fp16/bf16)")
    p.add_argument("--ov-route", default=None, choices=["nncf", "qdq"],
                   help="OpenVINO INT8: NNCF on the IR, or the Q/DQ ONNX (--qdq-tool) read by OpenVINO "
                        "(default: nncf for iColoriT, qdq for A-ColViT)")
    p.add_argument("--ov-float-precision", default="f32", choices=["f32", "bf16"],
                   help="OpenVINO INT8: precision of the ops left unquantized (recorded in the IR; the guard "
                        "evaluates at it). bf16 needs AVX512-BF16/AMX")
    p.add_argument("--bf16-variant", default="auto", choices=["auto", "default", "no-snippets", "f32-attention",
                                                                "f32-attention-no-snippets"],
                   help="BF16: which op groups stay out of OpenVINO's bf16 kernels; auto tries them in that order "
                        "and keeps the first that passes the guard (default auto)")
    p.add_argument("--int8-weights", default="portable", choices=["portable", "full"],
                   help="INT8 weight range: portable = 7-bit values, right on every x86 CPU (CPUs without VNNI "
                        "saturate u8 x s8 products); full = 8-bit, for VNNI/AMX CPUs and GPUs only (default "
                        "portable; TensorRT always full)")
    p.add_argument("--guard-images", type=int, default=None, metavar="N", help="evaluate on the first N validation images")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-o", "--output", required=True, help="OUT.onnx, or OUT.xml for --backend openvino")
    p.set_defaults(func=run)


def run(args) -> int:
    out, report = quantize(args.onnx, args.output, precision=args.precision, backend=args.backend,
                           calib_dir=args.calib, calib_size=args.calib_size, calib_seed=args.calib_seed,
                           method=args.method, qdq_tool=args.qdq_tool, max_psnr_drop=args.max_psnr_drop,
                           max_mean_ab_err=args.max_mean_ab_err, ov_route=args.ov_route,
                           ov_float_precision=args.ov_float_precision, guard_images=args.guard_images, progress=not args.no_progress,
                           bf16_variant=args.bf16_variant, weight_range=args.int8_weights)
    print(f"wrote {out} ({args.precision}, {args.backend}): {report.line()}")
    return 0


def _read_parent(path: Path):
    from tinct.runtime.artifact import read_onnx_meta
    from tinct.runtime.errors import TinctError

    if path.suffix.lower() != ".onnx" or not path.is_file():
        raise TinctError(f"{path}: 'tinct quantize' takes an existing FP32 .onnx artifact")
    meta = read_onnx_meta(path)
    if meta.precision != "fp32":
        raise TinctError(f"{path.name} is already {meta.precision}: quantize the FP32 parent")
    return meta


def _qdq_tool(tool: str | None, backend: str, method: str | None) -> str:
    from tinct.runtime.errors import TinctError

    if backend == "tensorrt":
        if tool == "nncf":
            raise TinctError("--backend tensorrt needs signed INT8 Q/DQ with zero point 0: use --qdq-tool onnxruntime "
                             "(the default for tensorrt)")
        return "onnxruntime"
    # each backend's own vendor tool by default: measured on Color2Embed's colorizer (256², 2 threads), ONNX
    # Runtime ran NNCF's Q/DQ graph slower than FP32 (350 vs 236 ms) while OpenVINO ran it 3.3x faster than
    # FP32; on the ViTs ONNX Runtime runs both Q/DQ styles at the same speed (NNCF's loses less accuracy:
    # --qdq-tool nncf)
    tool = tool or ("nncf" if backend == "openvino" and not method else "onnxruntime")
    if method and tool != "onnxruntime":
        raise TinctError("--method selects ONNX Runtime's calibration: use it with --qdq-tool onnxruntime")
    return tool


def _check_route(precision: str, backend: str, out: Path) -> None:
    from tinct.runtime.errors import TinctError

    want = ".xml" if backend == "openvino" else ".onnx"
    if out.suffix.lower() != want:
        raise TinctError(f"output {out.name}: --backend {backend} writes a {want} file")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise TinctError(f"output directory {out.parent} does not exist")
    if precision == "bf16" and backend != "openvino":
        raise TinctError("BF16 is an OpenVINO route here (--backend openvino): ONNX Runtime's CPU provider has "
                         "no bf16 kernels; for GPUs use --precision fp16")
    if precision == "fp16" and backend == "openvino":
        raise TinctError("FP16 for OpenVINO: use 'tinct build --precision fp16' on a device with f16 (GPU/NPU); "
                         "on CPU use --precision bf16")


def quantize(onnx_path, output, *, precision: str, backend: str = "onnxruntime", calib_dir=None,
             calib_size: int = 300, calib_seed: int | None = None, method: str | None = None,
             qdq_tool: str | None = None,
             max_psnr_drop: float | None = None, max_mean_ab_err: float | None = None, ov_route: str | None = None,
             ov_float_precision: str = "f32", guard_images: int | None = None,
             progress: bool = False, threads: int = 1, bf16_variant: str = "auto", weight_range: str = "portable"):
    """Build, guard and write one artifact; returns (path, GuardReport). See the module docstring."""
    import onnxruntime as ort

    from tinct.quantization import guard
    from tinct.quantization.calibration import DEFAULT_SEED, CalibrationSet
    from tinct.runtime.backends.base import sha256_file
    from tinct.runtime.errors import TinctError

    ort.set_default_logger_severity(3)
    src, out = Path(onnx_path), Path(output)
    parent = _read_parent(src)
    _check_route(precision, backend, out)
    qdq_tool = _qdq_tool(qdq_tool, backend, method)
    method = method or "minmax"
    budget = DEFAULT_BUDGET_DB[precision] if max_psnr_drop is None else float(max_psnr_drop)
    max_mean_ab = DEFAULT_MAX_MEAN_AB[precision] if max_mean_ab_err is None else float(max_mean_ab_err)
    parent_sha = sha256_file(src)
    dynamic = parent.gating == "dynamic"
    c2e_encoder = _color2embed_encoder(parent, src)  # Color2Embed colorizer: its FP32 encoder, else None
    extra: dict = {"parent_extra": parent.extra, "budget_db": budget, "max_mean_ab_err": max_mean_ab}
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent if str(out.parent) else "."))
    try:
        tmp = tmpdir / out.name
        if precision == "int8":
            if ov_float_precision == "bf16":
                from tinct.quantization.openvino_int8 import require_bf16_cpu

                if backend != "openvino":
                    raise TinctError("--ov-float-precision applies to --backend openvino only")
                require_bf16_cpu()
            seed = DEFAULT_SEED if calib_seed is None else calib_seed
            if c2e_encoder is not None:
                from tinct.quantization.color2embed import C2ECalibrationSet

                calib = C2ECalibrationSet.from_source(c2e_encoder, calib_dir, calib_size, seed, progress=progress)
            else:
                calib = CalibrationSet.from_source(calib_dir, calib_size, seed, progress=progress)
            extra["calibration"] = calib.describe()
            route = ov_route or ("qdq" if dynamic else DEFAULT_OV_ROUTE)
            if dynamic and backend == "openvino" and route == "nncf":
                raise TinctError("NNCF through A-ColViT's If nodes gives wrong outputs when a gate is off "
                                 "(measured: its outputs were 10-20 dB off): use --ov-route qdq (the default for A-ColViT)")
            if backend != "openvino" or route == "qdq":
                qdq = tmp if backend != "openvino" else tmpdir / "qdq.onnx"
                symmetric = backend == "tensorrt"  # TensorRT takes signed INT8 Q/DQ with zero point 0 only
                if dynamic:
                    from tinct.quantization.conditional import quantize_conditional

                    recipe = quantize_conditional(src, qdq, calib, method=method, threads=threads,
                                                  branch_tool=qdq_tool, symmetric_activations=symmetric,
                                                  weight_range=weight_range)
                elif qdq_tool == "nncf":
                    import onnx

                    from tinct.quantization.onnx_int8 import (
                        DEFAULT_FLOAT_ROLES,
                        excluded_nodes,
                        quantize_model_nncf,
                        unquantized_op_types,
                    )

                    proto = onnx.load(str(src))
                    recipe = quantize_model_nncf(proto, qdq, [calib.feed(i) for i in range(len(calib))],
                                                 ignored_names=excluded_nodes(proto, DEFAULT_FLOAT_ROLES),
                                                 weight_range=weight_range)
                    recipe["float_roles"] = list(DEFAULT_FLOAT_ROLES)
                    recipe["float_ops"] = unquantized_op_types(onnx.load(str(qdq))) + list(DEFAULT_FLOAT_ROLES)
                else:
                    from tinct.quantization.onnx_int8 import quantize_model

                    recipe = quantize_model(src, qdq, calib.ort_reader(), method=method,
                                            symmetric_activations=symmetric, weight_range=weight_range)
                extra["float_ops"] = recipe.pop("float_ops")
                extra["quantization"] = recipe
                if backend == "openvino":
                    from tinct.quantization import openvino_int8 as ovq

                    model = ovq.convert(qdq)
                    extra["quantization"]["openvino"] = "Q/DQ ONNX read by OpenVINO (FakeQuantize, int8 kernels)"
                    ovq.save_ir(model, tmp, {}, ovq.build_info(src, ov_float_precision, parent_sha))
            else:
                from tinct.quantization import openvino_int8 as ovq

                model, recipe = ovq.nncf_int8(src, calib, weight_range=weight_range)
                extra["quantization"] = recipe
                extra["float_ops"] = ["as NNCF TRANSFORMER leaves them"] + list(recipe["ignored_types"])
                ovq.save_ir(model, tmp, {}, ovq.build_info(src, ov_float_precision, parent_sha))
        elif precision == "fp16":
            from tinct.quantization.fp16 import convert_fp16

            recipe = convert_fp16(src, tmp)
            extra["float_ops"] = recipe.pop("float_ops")
            extra["quantization"] = recipe
        what = f"{src.name} -> {precision} ({backend})"

        def evaluate(candidate: Path):
            if c2e_encoder is not None:
                from tinct.quantization import color2embed

                return color2embed.evaluate(src, candidate, c2e_encoder, threads=threads, limit=guard_images)
            # an IR is evaluated at the inference precision recorded in it (--ov-float-precision)
            return guard.evaluate(src, candidate, threads=threads, limit=guard_images)

        if precision == "bf16":  # openvino: the first variant that passes the guard
            tmp, report = _bf16_variants(src, tmpdir, out.name, parent_sha, bf16_variant, evaluate, budget,
                                         max_mean_ab, what, extra)
        else:
            report = evaluate(tmp)
        extra["guard"] = {**report.to_dict(), "verified_on": verification_record(backend)}
        if report.gate_agreement is not None:
            extra["gate_agreement"] = round(report.gate_agreement, 5)
        guard.enforce(report, budget, what, max_mean_ab)
        if precision == "int8" and dynamic and out.suffix == ".onnx":  # Q/DQ inside If: see the ORT backend
            from tinct.runtime.backends.onnxruntime_backend import QDQ_IF_DISABLED

            extra["runtime_options"] = {"onnxruntime": {"disabled_optimizers": list(QDQ_IF_DISABLED)}}
        meta = _child_meta(parent, precision, parent_sha, extra)
        final = tmpdir / ("final" + out.suffix)
        if out.suffix == ".xml":
            from tinct.quantization.openvino_int8 import restamp_ir

            restamp_ir(tmp, final, meta.to_props())
            os.replace(final.with_suffix(".bin"), out.with_suffix(".bin"))
        else:
            _stamp_onnx(tmp, final, meta.to_props())
        os.replace(final, out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out, report


def verification_record(backend: str) -> dict:
    """Where a guard ran: the CPU (model, effective ISA, flags) and the library versions."""
    import onnxruntime as ort

    from tinct.runtime.cpu import cpu_record

    rec = {"cpu": cpu_record(), "onnxruntime": ort.__version__}
    if backend == "openvino":
        import openvino as ov

        rec["openvino"] = ov.__version__
    return rec


def _bf16_variants(src: Path, tmpdir: Path, name: str, parent_sha: str, variant: str, evaluate, budget: float,
                   max_mean_ab: float, what: str, extra: dict):
    """Build and guard the BF16 variants (:data:`quantization.openvino_int8.BF16_VARIANTS`) in order, or
    only ``variant``; -> (path, report) of the first that passes. Every attempt is recorded in
    ``extra["bf16_variants"]``; when none passes, GuardError lists them all."""
    from tinct.quantization import guard
    from tinct.quantization import openvino_int8 as ovq
    from tinct.runtime.backends.openvino_backend import convert_for_variant

    ovq.require_bf16_cpu()
    order = list(ovq.BF16_VARIANTS) if variant == "auto" else [variant]
    tried, failures = [], []
    for v in order:
        model = convert_for_variant(src, v)
        path = tmpdir / v / name
        path.parent.mkdir()
        ovq.save_ir(model, path, {}, {**ovq.build_info(src, "bf16", parent_sha), **ovq.bf16_build(model, v)})
        report = evaluate(path)
        row = {"variant": v, "delta_psnr": round(float(report.delta.get(getattr(report, "primary", 10), float("nan"))), 4),
               "mean_ab_err": round(report.mean_ab_err, 5), "nonfinite_outputs": report.nonfinite_outputs}
        try:
            guard.enforce(report, budget, f"{what} [bf16 variant {v}]", max_mean_ab)
        except guard.GuardError:
            tried.append({**row, "verdict": "failed"})
            failures.append(f"{v}: ΔPSNR {row['delta_psnr']:+.3f} dB, mean |Δab| {row['mean_ab_err']:.3f}"
                            + (f", {report.nonfinite_outputs} NaN/inf" if report.nonfinite_outputs else ""))
            continue
        tried.append({**row, "verdict": "passed"})
        extra["bf16_variants"] = tried
        config, groups = ovq.BF16_VARIANTS[v]
        extra["quantization"] = {"tool": "OpenVINO INFERENCE_PRECISION_HINT=bf16", "weights": "fp32 in the IR",
                                 "bf16_variant": v, "compile_config": config, "f32_groups": list(groups)}
        return path, report
    raise guard.GuardError(f"{what}: no BF16 variant passed the guard on this CPU ({'; '.join(failures)}; "
                           f"budget {budget:g} dB, mean |Δab| {max_mean_ab:g}); nothing written. Use --precision int8 (with --ov-float-precision bf16) here")


def _color2embed_encoder(parent, src: Path):
    """Color2Embed: the colorizer's FP32 encoder (calibration and guard embeddings); the encoder
    itself is not quantized (it runs once per reference). Other architectures: None."""
    from tinct.runtime.artifact import C2E_COLORIZER, C2E_ENCODER
    from tinct.runtime.errors import TinctError

    if parent.architecture == C2E_ENCODER:
        raise TinctError(f"{src.name} is the Color2Embed colour encoder: it runs once per reference and stays "
                         "FP32; quantize the colorizer graph (*-colorizer.onnx)")
    if parent.architecture != C2E_COLORIZER:
        return None
    from tinct.quantization.color2embed import encoder_for

    return encoder_for(src)


# Measured on the shipped icolorit-tiny, 1 thread (README): NNCF INT8 9.6 ms (8.97 ms with bf16 float ops),
# OpenVINO reading the ORT Q/DQ graph 12.5 ms; both within the accuracy budget.
DEFAULT_OV_ROUTE = "nncf"


def _child_meta(parent, precision: str, parent_sha: str, extra: dict):
    import dataclasses

    return dataclasses.replace(parent, precision=precision, parent_sha256=parent_sha, extra=extra)


def _stamp_onnx(src: Path, dst: Path, props: dict[str, str]) -> None:
    import onnx

    m = onnx.load(str(src))
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    m.producer_name = "tinct quantize"
    onnx.save(m, str(dst))
