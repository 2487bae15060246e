"""OpenVINO artifacts: INT8 IR (NNCF post-training quantization, or OpenVINO reading a Q/DQ ONNX)
and BF16 IR.

Metadata goes into the IR's ``rt_info`` with the runtime's own helper
(:func:`runtime.backends.openvino_backend.write_ir_props`, the one ``tinct build`` uses) and the
same build keys (inference_precision, device, openvino_version, source_onnx, source_onnx_sha256).

- INT8 via NNCF: ``nncf.quantize(model_type=TRANSFORMER)`` on ``ov.convert_model(onnx)`` with an
  ignored scope (measured; :data:`NNCF_IGNORED_TYPES`) — iColoriT only: NNCF through ``If`` gives
  wrong outputs whenever a gate is off (measured: 10-20 dB PSNR off), so A-ColViT goes through a Q/DQ ONNX.
- INT8 via Q/DQ: ``ov.convert_model`` of a Q/DQ ONNX (OpenVINO turns Q/DQ pairs into FakeQuantize
  and runs them as int8); for A-ColViT that is the per-branch quantized ``If`` graph
  (:mod:`quantization.conditional`, NNCF's ONNX backend inside each branch).
- BF16: the FP32 graph with ``inference_precision`` bf16 in rt_info (the backend then sets
  ``INFERENCE_PRECISION_HINT=bf16``), its patch embedding marked to stay f32 (every IR writer does
  that: :func:`runtime.backends.openvino_backend.save_ir`; OpenVINO's AMX bf16 convolution is wrong for
  it). Only on CPUs with AVX512-BF16 or AMX-BF16 (else refused: OpenVINO would emulate or silently run
  f32 and the artifact would lie about itself).
"""

from __future__ import annotations

from pathlib import Path

# The IR writers and the one ONNX -> ov.Model conversion live with the backend (``tinct build`` uses them too).
from tinct.quantization.onnx_int8 import nncf_overflow_fix, nncf_scope
from tinct.quantization.recipes import FloatPolicy
from tinct.runtime.backends.openvino_ir import build_info, commit_ir, convert, restamp_ir, save_ir
from tinct.runtime.errors import TinctError

__all__ = ["build_info", "commit_ir", "convert", "float_nodes", "nncf_int8", "restamp_ir", "save_ir"]

NNCF_IGNORED_TYPES: tuple[str, ...] = ()  # measured: see python -m tinct.benchmarks.quantization_sweep --sweep


def float_nodes(model, roles) -> list[str]:
    """Friendly names of the OpenVINO ops playing the float roles of a
    :class:`~tinct.quantization.recipes.FloatPolicy` (NNCF on an ``ov.Model``). The IR route has no gate
    Linears (iColoriT only) and knows the head conv: the last Convolution."""
    names: list[str] = []
    convs = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    for role in roles:
        if role == "head_conv":
            names += convs[-1:] if len(convs) > 1 else []
        elif role != "gate_linear":
            raise TinctError(f"float role {role!r} is not supported on the OpenVINO IR route")
    return names


def nncf_int8(onnx_path: str | Path, calib, *, ignored_types=NNCF_IGNORED_TYPES, floats=None,
              fast_bias_correction: bool = True, smooth_quant_alpha: float | None = None,
              preset: str = "performance", weight_range: str = "portable"):
    """-> (quantized ov.Model, recipe dict). ``calib``: a :class:`CalibrationSet`; ``floats``: the
    :class:`~tinct.quantization.recipes.FloatPolicy` (default: the measured one)."""
    import nncf

    floats = floats or FloatPolicy()
    model = convert(onnx_path)
    ignored_names = float_nodes(model, floats.roles)

    advanced = nncf_overflow_fix(weight_range)
    if smooth_quant_alpha is not None:
        from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

        advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(matmul=smooth_quant_alpha)
    scope = nncf_scope(ignored_names, ignored_types)
    q = nncf.quantize(model, calib.nncf_dataset(), subset_size=len(calib), model_type=nncf.ModelType.TRANSFORMER,
                      preset=getattr(nncf.QuantizationPreset, preset.upper()),
                      fast_bias_correction=fast_bias_correction, ignored_scope=scope,
                      advanced_parameters=advanced)
    recipe = {"tool": f"nncf {nncf.__version__} quantize", "model_type": "TRANSFORMER", "preset": preset,
              "fast_bias_correction": fast_bias_correction, "ignored_types": list(ignored_types),
              "ignored_names": list(ignored_names), "smooth_quant_alpha": smooth_quant_alpha,
              "weight_range": weight_range, "overflow_fix": advanced.overflow_fix.value}
    return q, recipe
