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
from tinct.runtime.backends.openvino_backend import _ov, commit_ir, convert, restamp_ir, save_ir
from tinct.runtime.cpu import has_native_bf16
from tinct.runtime.errors import TinctError

__all__ = ["build_info", "commit_ir", "convert", "nncf_int8", "require_bf16_cpu", "restamp_ir", "save_ir"]

NNCF_IGNORED_TYPES: tuple[str, ...] = ()  # measured: see python -m tinct.benchmarks.quantization_sweep --sweep


def require_bf16_cpu() -> None:
    from tinct.runtime.cpu import missing_isa

    if not has_native_bf16():
        raise TinctError(f"BF16 for OpenVINO: {missing_isa('bf16')}, so OpenVINO would not run bf16 natively; "
                         "use --precision int8, or build the IR on a CPU that has it")


def build_info(source_onnx: str | Path, inference_precision: str, source_sha256: str, device: str = "CPU",
               **extra) -> dict[str, str]:
    ov = _ov()
    return {"inference_precision": inference_precision, "device": device, "openvino_version": ov.__version__,
            "source_onnx": Path(source_onnx).name, "source_onnx_sha256": source_sha256,
            **{k: str(v) for k, v in extra.items()}}


def nncf_int8(onnx_path: str | Path, calib, *, ignored_types=NNCF_IGNORED_TYPES, floats=None,
              fast_bias_correction: bool = True, smooth_quant_alpha: float | None = None,
              preset: str = "performance", weight_range: str = "portable"):
    """-> (quantized ov.Model, recipe dict). ``calib``: a :class:`CalibrationSet`; ``floats``: the
    :class:`~tinct.quantization.recipes.FloatPolicy` (default: the measured one)."""
    import nncf

    from tinct.quantization.onnx_int8 import nncf_overflow_fix
    from tinct.quantization.recipes import FloatPolicy

    floats = floats or FloatPolicy()
    model = convert(onnx_path)
    ignored_names = floats.openvino_nodes(model)

    advanced = nncf_overflow_fix(weight_range)
    if smooth_quant_alpha is not None:
        from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

        advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(matmul=smooth_quant_alpha)
    scope = FloatPolicy.nncf_scope(ignored_names, ignored_types)
    q = nncf.quantize(model, calib.nncf_dataset(), subset_size=len(calib), model_type=nncf.ModelType.TRANSFORMER,
                      preset=getattr(nncf.QuantizationPreset, preset.upper()),
                      fast_bias_correction=fast_bias_correction, ignored_scope=scope,
                      advanced_parameters=advanced)
    recipe = {"tool": f"nncf {nncf.__version__} quantize", "model_type": "TRANSFORMER", "preset": preset,
              "fast_bias_correction": fast_bias_correction, "ignored_types": list(ignored_types),
              "ignored_names": list(ignored_names), "smooth_quant_alpha": smooth_quant_alpha,
              "weight_range": weight_range, "overflow_fix": advanced.overflow_fix.value}
    return q, recipe
