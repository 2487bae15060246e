"""`tinct quantize IN.onnx --precision int8|fp16|bf16 [--backend ...] -o OUT`.

The routes are :mod:`quantization.recipes` (one recipe per route, chosen from these flags in
:func:`~tinct.quantization.recipes.make_recipe`); :func:`~tinct.quantization.api.quantize` builds in a
temporary directory next to ``-o``, guards against the FP32 parent (ΔPSNR@10 budget: 0.1 dB INT8,
0.02 dB FP16/BF16; mean |Δab| limit: 3 / 1 ab units), refuses with a non-zero exit, and renames into
place only what passed, with the recipe and the measurements in its metadata.

Color2Embed: the colorizer graph (``*-colorizer.onnx``) takes the same routes with its own calibration
(L of training crops + FP32-encoder embeddings of their TPS-warped versions) and guard (ΔPSNR with the
image's own TPS-warped reference; :mod:`quantization.color2embed`); the colour encoder is not quantized.
"""

from __future__ import annotations

from tinct.quantization import PRECISIONS, WEIGHT_RANGES
from tinct.quantization.recipes import (
    BACKENDS,
    METHODS,
    OV_FLOAT_PRECISIONS,
    OV_ROUTES,
    QDQ_TOOLS,
)

NAME = "quantize"
EXTRA = "quant"  # the extra that installs what this command needs

def register(subparsers) -> None:
    p = subparsers.add_parser("quantize", help="INT8 / FP16 / BF16 artifacts from an FP32 ONNX, accuracy-guarded",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("onnx", help="FP32 tinct ONNX artifact (from 'tinct export')")
    p.add_argument("--precision", required=True, choices=PRECISIONS)
    p.add_argument("--backend", default="onnxruntime", choices=BACKENDS)
    p.add_argument("--calib", default=None, metavar="DIR", help="calibration images (default: the corpus' training split)")
    p.add_argument("--calib-size", type=int, default=300)
    p.add_argument("--calib-seed", type=int, default=None)
    p.add_argument("--qdq-tool", default=None, choices=QDQ_TOOLS,
                   help="who writes the Q/DQ ONNX: NNCF's ONNX backend (default for --backend openvino) or ONNX "
                        "Runtime's quantize_static (default for onnxruntime; always for tensorrt: signed INT8, zero "
                        "point 0). NNCF's graph lost less PSNR on the ViTs at the same ONNX Runtime speed")
    p.add_argument("--method", default=None, choices=METHODS,
                   help="calibration method of --qdq-tool onnxruntime (default minmax)")
    p.add_argument("--max-psnr-drop", type=float, default=None, metavar="DB",
                   help="budget for PSNR@10 parent - quantized (default 0.1 int8, 0.02 fp16/bf16)")
    p.add_argument("--max-mean-ab-err", type=float, default=None, metavar="AB",
                   help="limit on mean |Δab| against the parent (default 3 int8, 1 fp16/bf16)")
    p.add_argument("--ov-route", default=None, choices=OV_ROUTES,
                   help="OpenVINO INT8: NNCF on the IR, or the Q/DQ ONNX (--qdq-tool) read by OpenVINO "
                        "(default: nncf for iColoriT, qdq for A-ColViT)")
    p.add_argument("--ov-float-precision", default="f32", choices=OV_FLOAT_PRECISIONS,
                   help="OpenVINO INT8: precision of the ops left unquantized (recorded in the IR; the guard "
                        "evaluates at it). bf16 needs AVX512-BF16/AMX")
    p.add_argument("--int8-weights", default="portable", choices=WEIGHT_RANGES,
                   help="INT8 weight range: portable = 7-bit values, right on every x86 CPU (CPUs without VNNI "
                        "saturate u8 x s8 products); full = 8-bit, for VNNI/AMX CPUs and GPUs only (default "
                        "portable; TensorRT always full)")
    p.add_argument("--guard-images", type=int, default=None, metavar="N", help="evaluate on the first N validation images")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-o", "--output", required=True, help="OUT.onnx, or OUT.xml for --backend openvino")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinct.quantization.api import quantize
    from tinct.quantization.recipes import Calibration, GuardPolicy, recipe_for

    recipe = recipe_for(args.onnx, precision=args.precision, backend=args.backend, qdq_tool=args.qdq_tool,
                        method=args.method, ov_route=args.ov_route, ov_float_precision=args.ov_float_precision,
                        weight_range=args.int8_weights,
                        calibration=Calibration(source=args.calib, size=args.calib_size, seed=args.calib_seed))
    guard = GuardPolicy(max_psnr_drop=args.max_psnr_drop, max_mean_ab_err=args.max_mean_ab_err,
                        images=args.guard_images)
    out, report = quantize(args.onnx, args.output, recipe, guard, progress=not args.no_progress)
    print(f"wrote {out} ({args.precision}, {args.backend}): {report.line()}")
    return 0
