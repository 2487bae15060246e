"""Quantization recipes: what ``tinct quantize`` builds, as data (one recipe per route).

=========  ==========================  ==========  ===============================================
precision  backend                     route       artifact
=========  ==========================  ==========  ===============================================
int8       onnxruntime (default),      ``qdq``     Q/DQ ONNX (ONNX Runtime ``quantize_static``, or NNCF's
           tensorrt                                ONNX backend with ``qdq_tool="nncf"``; A-ColViT: per
                                                   branch, :mod:`quantization.conditional`); tensorrt:
                                                   signed INT8 activations, zero point 0
int8       openvino                    ``nncf-ir`` IR from NNCF on ``ov.convert_model`` (iColoriT default)
int8       openvino                    ``qdq-ir``  IR that OpenVINO reads from the Q/DQ ONNX above
                                                   (A-ColViT default; ``ov_route="qdq"``)
fp16       onnxruntime, tensorrt       ``fp16``    FP16 ONNX, float32 I/O
bf16       openvino                    ``bf16-ir`` FP32 IR run with INFERENCE_PRECISION_HINT=bf16, the
                                                   patch embedding kept f32 (see the OpenVINO backend)
=========  ==========================  ==========  ===============================================

:func:`make_recipe` is the one place that maps options (the CLI's flags) to a :class:`Recipe` and
refuses combinations that cannot work. Recipes are data: :func:`tinct.quantization.builders.build_candidate`
builds a recipe's artifact into a temporary directory; :func:`tinct.quantization.api.quantize` guards, stamps
and renames. Which nodes stay float is one :class:`FloatPolicy` (roles), rendered for ONNX Runtime and NNCF's
ONNX backend by :func:`tinct.quantization.onnx_int8.excluded_nodes` and for NNCF on an OpenVINO graph by
:func:`tinct.quantization.openvino_int8.float_nodes`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from tinct.quantization import PRECISIONS, WEIGHT_RANGES
from tinct.runtime.artifact import read_onnx_meta
from tinct.runtime.cpu import require_isa
from tinct.runtime.errors import TinctError
from tinct.verify.budgets import DEFAULT_BUDGET_DB, DEFAULT_MAX_MEAN_AB

BACKENDS = ("onnxruntime", "openvino", "tensorrt")
ROUTES = ("qdq", "nncf-ir", "qdq-ir", "fp16", "bf16-ir")
QDQ_TOOLS = ("onnxruntime", "nncf")
METHODS = ("minmax", "entropy", "percentile")
OV_FLOAT_PRECISIONS = ("f32", "bf16")
OV_ROUTES = ("nncf", "qdq")


@dataclass(frozen=True)
class FloatPolicy:
    """Node roles (:data:`quantization.onnx_int8.ROLES`) that stay float.

    Default chosen by measurement on the shipped icolorit-tiny (72 validation images, 300 calibration
    crops, MinMax; ``python -m tinct.benchmarks.quantization_sweep --sweep``): everything in INT8 lost 0.165 dB
    PSNR@10 (over the 0.1 dB budget); keeping only the head conv (the layer that writes ab) float lost
    0.059 dB; keeping the attention MatMuls or the patch embedding float instead did not help (0.138 /
    0.188 dB). NNCF on the IR: head conv ignored -0.021 dB, not ignored +0.109 dB. A-ColViT's gate
    Linears always stay float (quantizing them flips decisions)."""

    roles: tuple[str, ...] = ("gate_linear", "head_conv")


@dataclass(frozen=True)
class Calibration:
    """Where calibration inputs come from: a directory of images, or (None) the corpus' training split."""

    source: str | Path | None = None
    size: int = 300
    seed: int | None = None  # None: quantization.calibration.DEFAULT_SEED

    def __post_init__(self):
        if not 1 <= int(self.size) <= 100_000:
            raise TinctError(f"--calib-size {self.size}: use 1..100000 calibration samples")


@dataclass(frozen=True)
class GuardPolicy:
    """How the artifact is judged against its FP32 parent (None: the precision's default budget)."""

    max_psnr_drop: float | None = None
    max_mean_ab_err: float | None = None
    images: int | None = None  # the first N validation images; None: all

    def budgets(self, precision: str) -> tuple[float, float]:
        budget = DEFAULT_BUDGET_DB[precision] if self.max_psnr_drop is None else float(self.max_psnr_drop)
        ab = DEFAULT_MAX_MEAN_AB[precision] if self.max_mean_ab_err is None else float(self.max_mean_ab_err)
        return budget, ab


@dataclass(frozen=True)
class Recipe:
    """One route (see the module docstring) with its options; build with :func:`make_recipe`."""

    precision: str
    backend: str
    route: str
    qdq_tool: str | None = None  # qdq / qdq-ir: who writes the Q/DQ ONNX
    method: str = "minmax"  # ONNX Runtime calibration method
    weight_range: str = "portable"
    symmetric_activations: bool = False  # tensorrt: signed INT8, zero point 0
    ov_float_precision: str = "f32"  # OpenVINO INT8: precision of the unquantized ops
    conditional: bool = False  # A-ColViT: quantized per If branch under the real gates
    floats: FloatPolicy = field(default_factory=FloatPolicy)
    calibration: Calibration | None = None  # INT8 only

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["floats"] = list(self.floats.roles)
        if self.calibration is not None:
            d["calibration"] = {**d["calibration"], "source": None if self.calibration.source is None
                                else str(self.calibration.source)}
        return d


def make_recipe(*, precision: str, backend: str = "onnxruntime", dynamic: bool = False,
                qdq_tool: str | None = None, method: str | None = None, ov_route: str | None = None,
                ov_float_precision: str = "f32", weight_range: str = "portable",
                calibration: Calibration | None = None) -> Recipe:
    """Options -> :class:`Recipe`, refusing what cannot work (one line each). ``dynamic``: the parent
    has A-ColViT's ``If`` gating."""
    for value, allowed, what in ((precision, PRECISIONS, "--precision"), (backend, BACKENDS, "--backend"),
                                 (weight_range, WEIGHT_RANGES, "--int8-weights"),
                                 (ov_float_precision, OV_FLOAT_PRECISIONS, "--ov-float-precision")):
        if value not in allowed:
            raise TinctError(f"{what} {value!r}: choose one of {', '.join(allowed)}")
    if method is not None and method not in METHODS:
        raise TinctError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if ov_float_precision != "f32" and (precision != "int8" or backend != "openvino"):
        raise TinctError("--ov-float-precision applies to --precision int8 --backend openvino only")
    if precision == "bf16":
        if backend != "openvino":
            raise TinctError("BF16 is an OpenVINO route here (--backend openvino): ONNX Runtime's CPU provider has "
                             "no bf16 kernels; for GPUs use --precision fp16")
        return Recipe(precision, backend, "bf16-ir")
    if precision == "fp16":
        if backend == "openvino":
            raise TinctError("FP16 for OpenVINO: use 'tinct build --precision fp16' on a device with f16 (GPU/NPU); "
                             "on CPU use --precision bf16")
        return Recipe(precision, backend, "fp16")
    # int8
    tool = _qdq_tool(qdq_tool, backend, method)
    route = "qdq"
    if backend == "openvino":
        route = "qdq-ir" if (ov_route or ("qdq" if dynamic else "nncf")) == "qdq" else "nncf-ir"
        if dynamic and route == "nncf-ir":
            raise TinctError("NNCF through A-ColViT's If nodes gives wrong outputs when a gate is off "
                             "(measured: its outputs were 10-20 dB off): use --ov-route qdq (the default for A-ColViT)")
    elif ov_route is not None:
        raise TinctError("--ov-route applies to --backend openvino only")
    if ov_route is not None and ov_route not in OV_ROUTES:
        raise TinctError(f"--ov-route {ov_route!r}: choose one of {', '.join(OV_ROUTES)}")
    if ov_float_precision == "bf16":
        require_isa("bf16", "--ov-float-precision bf16")
    return Recipe(precision, backend, route, qdq_tool=tool if route != "nncf-ir" else None,
                  method=method or "minmax", weight_range=weight_range,
                  symmetric_activations=backend == "tensorrt", ov_float_precision=ov_float_precision,
                  conditional=dynamic and route != "nncf-ir", calibration=calibration or Calibration())


def read_parent(path: Path):
    """The FP32 tinct ONNX a recipe starts from (its metadata), or a one-line error."""
    path = Path(path)
    if path.suffix.lower() != ".onnx" or not path.is_file():
        raise TinctError(f"{path}: 'tinct quantize' takes an existing FP32 .onnx artifact")
    meta = read_onnx_meta(path)
    if meta.precision != "fp32":
        raise TinctError(f"{path.name} is already {meta.precision}: quantize the FP32 parent")
    return meta


def recipe_for(src, **options) -> Recipe:
    """:func:`make_recipe` for the FP32 ONNX ``src`` (its gating decides the A-ColViT routes)."""
    return make_recipe(dynamic=read_parent(Path(src)).gating == "dynamic", **options)


def _qdq_tool(tool: str | None, backend: str, method: str | None) -> str:
    if tool is not None and tool not in QDQ_TOOLS:
        raise TinctError(f"--qdq-tool {tool!r}: choose one of {', '.join(QDQ_TOOLS)}")
    if backend == "tensorrt":
        if tool == "nncf":
            raise TinctError("--backend tensorrt needs signed INT8 Q/DQ with zero point 0: use --qdq-tool onnxruntime "
                             "(the default for tensorrt)")
        return "onnxruntime"
    # each backend's own vendor tool by default: on Color2Embed's colorizer ONNX Runtime ran NNCF's Q/DQ
    # graph slower than FP32 while OpenVINO ran it faster than FP32; on the ViTs ONNX Runtime runs both
    # Q/DQ styles at the same speed (NNCF's loses less accuracy: --qdq-tool nncf)
    tool = tool or ("nncf" if backend == "openvino" and not method else "onnxruntime")
    if method and tool != "onnxruntime":
        raise TinctError("--method selects ONNX Runtime's calibration: use it with --qdq-tool onnxruntime")
    return tool
