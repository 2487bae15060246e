"""OpenVINO artifacts: INT8 IR (NNCF post-training quantization, or OpenVINO reading a Q/DQ ONNX)
and BF16 IR.

Metadata goes into the IR's ``rt_info`` with the runtime's own helper
(:func:`runtime.backends.openvino_backend.write_ir_props`, the one ``tinct build`` uses) and the
same build keys (inference_precision, device, openvino_version, source_onnx, source_onnx_sha256).

- INT8 via NNCF: ``nncf.quantize(model_type=TRANSFORMER)`` on ``ov.convert_model(onnx)`` with an
  ignored scope (measured; :data:`NNCF_IGNORED_TYPES`) — iColoriT only: NNCF through ``If`` gives
  wrong outputs whenever a gate is off (shared/facts.md), so A-ColViT goes through a Q/DQ ONNX.
- INT8 via Q/DQ: ``ov.convert_model`` of a Q/DQ ONNX (OpenVINO turns Q/DQ pairs into FakeQuantize
  and runs them as int8); for A-ColViT that is the per-branch quantized ``If`` graph
  (:mod:`quantization.conditional`, NNCF's ONNX backend inside each branch).
- BF16: the FP32 graph with ``inference_precision`` bf16 in rt_info (the backend then sets
  ``INFERENCE_PRECISION_HINT=bf16``). Only on CPUs with AVX512-BF16 or AMX-BF16 (else refused:
  OpenVINO would emulate or silently run f32 and the artifact would lie about itself).
  :data:`BF16_VARIANTS`: ways to keep suspect op groups out of OpenVINO's bf16 kernels, tried in
  order by ``tinct quantize --precision bf16`` until one passes the guard (on Intel AMX CPUs plain
  bf16 lost 4.7 dB PSNR@10 on iColoriT-T while the same CPU with AMX masked off was exact).
"""

from __future__ import annotations

from pathlib import Path

from runtime.cpu import has_native_bf16
from runtime.errors import TinctError

NNCF_IGNORED_TYPES: tuple[str, ...] = ()  # measured: see quantization/measure.py --sweep
def require_bf16_cpu() -> None:
    from runtime.cpu import missing_isa

    if not has_native_bf16():
        raise TinctError(f"BF16 for OpenVINO: {missing_isa('bf16')}, so OpenVINO would not run bf16 natively; "
                         "use --precision int8, or build the IR on a CPU that has it")


# name -> (compile properties recorded for run time, op groups kept in f32 through the IR's "precise"
# attribute). Ordered by expected speed; plain bf16 first. "attention": the activation x activation
# MatMuls (q.k^T, attn.v) and Softmax, which OpenVINO fuses into one "Subgraph" kernel whose matrix
# products switch to AMX tiles on AMX CPUs; SNIPPETS_MODE=DISABLE runs them as separate oneDNN ops.
BF16_VARIANTS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "default": ({}, ()),
    "no-snippets": ({"SNIPPETS_MODE": "DISABLE"}, ()),
    "f32-attention": ({}, ("attention",)),
    "f32-attention-no-snippets": ({"SNIPPETS_MODE": "DISABLE"}, ("attention",)),
}


def _is_const(output) -> bool:
    node = output.get_node()
    while node.get_type_name() == "Convert":
        node = node.input(0).get_source_output().get_node()
    return node.get_type_name() == "Constant"


def _all_ops(model):
    for op in model.get_ordered_ops():
        yield op
        if op.get_type_name() == "If":
            yield from _all_ops(op.get_then_body())
            yield from _all_ops(op.get_else_body())


def op_group_names(model, group: str) -> list[str]:
    """Friendly names of the ops of a group (If bodies included). "attention": MatMuls with no constant
    input (q.k^T, attn.v) and Softmax."""
    if group != "attention":
        raise TinctError(f"unknown op group {group!r}")
    names = []
    for op in _all_ops(model):
        t = op.get_type_name()
        if (t == "MatMul" and not any(_is_const(i.get_source_output()) for i in op.inputs())) or t == "Softmax":
            names.append(op.get_friendly_name())
    return names


def mark_precise_ir(xml: str | Path, names) -> int:
    """Give the IR layers named ``names`` OpenVINO's "precise" runtime attribute, which makes the CPU
    plugin keep them in their original f32 under a bf16 inference precision. Done on the saved XML:
    the Python API cannot create that typed attribute, and a read/save round trip drops it.
    Returns how many layers were marked."""
    import xml.etree.ElementTree as ET

    wanted = set(names)
    tree = ET.parse(str(xml))
    n = 0
    for layer in tree.getroot().iter("layer"):
        if layer.get("name") not in wanted:
            continue
        rt = layer.find("rt_info")
        if rt is None:
            rt = ET.SubElement(layer, "rt_info")
        if not any(a.get("name") == "precise" for a in rt.findall("attribute")):
            ET.SubElement(rt, "attribute", {"name": "precise", "version": "0"})
        n += 1
    tree.write(str(xml), encoding="utf-8", xml_declaration=True)
    return n


def bf16_build(model, variant: str) -> dict[str, str]:
    """Build-info entries for a BF16 variant of ``model`` (an ov.Model): inference precision, the
    compile properties, and the f32-kept layer names that :func:`save_ir` marks."""
    import json

    if variant not in BF16_VARIANTS:
        raise TinctError(f"unknown bf16 variant {variant!r}; choose from {', '.join(BF16_VARIANTS)}")
    config, groups = BF16_VARIANTS[variant]
    keep = sorted({n for g in groups for n in op_group_names(model, g)})
    out = {"bf16_variant": variant}
    if config:
        out["compile_config"] = json.dumps(config, sort_keys=True)
    if keep:
        out["f32_groups"] = ",".join(groups)
        out["f32_nodes"] = json.dumps(keep)
    return out


def _ov():
    try:
        import openvino as ov
    except ImportError:
        from runtime.errors import MissingExtraError

        raise MissingExtraError("quantize --backend openvino", "openvino", "openvino") from None
    return ov


def build_info(source_onnx: str | Path, inference_precision: str, source_sha256: str, device: str = "CPU",
               **extra) -> dict[str, str]:
    ov = _ov()
    return {"inference_precision": inference_precision, "device": device, "openvino_version": ov.__version__,
            "source_onnx": Path(source_onnx).name, "source_onnx_sha256": source_sha256,
            **{k: str(v) for k, v in extra.items()}}


def save_ir(model, out_xml: str | Path, props: dict[str, str], build: dict[str, str]) -> Path:
    """rt_info (runtime's helper) + ``ov.save_model`` with fp32 weights kept as they are."""
    import json

    from runtime.backends.openvino_backend import write_ir_props

    ov = _ov()
    write_ir_props(model, props, build)
    ov.save_model(model, str(out_xml), compress_to_fp16=False)
    if build.get("f32_nodes"):
        mark_precise_ir(out_xml, json.loads(build["f32_nodes"]))
    return Path(out_xml)


def restamp_ir(xml: str | Path, out_xml: str | Path, props: dict[str, str]) -> Path:
    """Re-save an IR with updated tinct metadata (after the guard measured it)."""
    from runtime.backends.openvino_backend import read_ir_props

    ov = _ov()
    model = ov.Core().read_model(str(xml))
    _, build = read_ir_props(model)
    build.pop("layout", None)
    return save_ir(model, out_xml, props, build)


def convert(onnx_path: str | Path):
    ov = _ov()
    try:
        return ov.convert_model(str(onnx_path))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TinctError(f"OpenVINO cannot convert {Path(onnx_path).name} ({first[:200]})") from None


def head_conv_names(model) -> list[str]:
    """The head conv (the last Convolution, which writes ab): kept float by default. Measured on the
    shipped icolorit-tiny: NNCF with it ignored changes PSNR@10 by -0.021 dB, without it by +0.109 dB."""
    convs = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    return convs[-1:] if len(convs) > 1 else []


def nncf_int8(onnx_path: str | Path, calib, *, ignored_types=NNCF_IGNORED_TYPES, ignored_names=None,
              fast_bias_correction: bool = True, smooth_quant_alpha: float | None = None,
              preset: str = "performance"):
    """-> (quantized ov.Model, recipe dict). ``calib``: a :class:`CalibrationSet`."""
    import nncf

    model = convert(onnx_path)
    if ignored_names is None:
        ignored_names = head_conv_names(model)
    kw = {}
    if smooth_quant_alpha is not None:
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            AdvancedSmoothQuantParameters,
        )

        kw["advanced_parameters"] = AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=smooth_quant_alpha))
    scope = nncf.IgnoredScope(types=list(ignored_types), names=list(ignored_names), validate=False) \
        if (ignored_types or ignored_names) else None
    q = nncf.quantize(model, calib.nncf_dataset(), subset_size=len(calib), model_type=nncf.ModelType.TRANSFORMER,
                      preset=getattr(nncf.QuantizationPreset, preset.upper()),
                      fast_bias_correction=fast_bias_correction, ignored_scope=scope, **kw)
    recipe = {"tool": f"nncf {nncf.__version__} quantize", "model_type": "TRANSFORMER", "preset": preset,
              "fast_bias_correction": fast_bias_correction, "ignored_types": list(ignored_types),
              "ignored_names": list(ignored_names), "smooth_quant_alpha": smooth_quant_alpha}
    return q, recipe
