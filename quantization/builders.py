"""Building a :class:`~tinct.quantization.recipes.Recipe`'s artifact from an FP32 ONNX (the guard, the
stamping and the final rename are :func:`tinct.quantization.api.quantize`'s)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from tinct.quantization import openvino_int8 as ovq
from tinct.quantization.conditional import quantize_conditional
from tinct.quantization.fp16 import convert_fp16
from tinct.quantization.onnx_int8 import (
    excluded_nodes,
    quantize_model,
    quantize_model_nncf,
    unquantized_op_types,
)
from tinct.quantization.recipes import Recipe
from tinct.runtime.artifact import set_onnx_props
from tinct.runtime.cpu import require_isa


@dataclass
class Candidate:
    """The built artifact awaiting the guard: ``path`` in the temporary directory, ``extra`` (recipe facts
    for the metadata)."""

    path: Path
    extra: dict


def build_candidate(recipe: Recipe, src: Path, tmpdir: Path, name: str, *, parent_sha: str, calib=None,
                    threads: int = 1, props: dict | None = None) -> Candidate:
    """Build ``recipe``'s artifact from the FP32 ONNX ``src`` into ``tmpdir``. ``props``: the provisional
    tinct metadata an IR carries while it is guarded (its precision, not the parent's: the runtime checks
    the claim against the graph)."""
    props = props or {}
    out = tmpdir / name
    if recipe.route == "bf16-ir":
        require_isa("bf16", "BF16 for OpenVINO")
        ovq.save_ir(ovq.convert(src), out, props, ovq.build_info(src, "bf16", parent_sha))
        return Candidate(out, {"quantization": {"tool": "OpenVINO INFERENCE_PRECISION_HINT=bf16",
                                                "weights": "fp32 in the IR", "f32_layers": "the patch embedding"}})
    if recipe.route == "fp16":
        info = convert_fp16(src, out)
        stamp_onnx(out, props)
        return Candidate(out, {"float_ops": info.pop("float_ops"), "quantization": info})
    if recipe.route == "nncf-ir":
        model, info = ovq.nncf_int8(src, calib, floats=recipe.floats, weight_range=recipe.weight_range)
        ovq.save_ir(model, out, props, ovq.build_info(src, recipe.ov_float_precision, parent_sha))
        return Candidate(out, {"quantization": info,
                               "float_ops": ["as NNCF TRANSFORMER leaves them"] + list(info["ignored_types"])})
    qdq = out if recipe.route == "qdq" else tmpdir / "qdq.onnx"
    info = _build_qdq(recipe, src, qdq, calib, threads)
    stamp_onnx(qdq, props)  # the child's provisional metadata: the runtime checks the claim against the graph
    extra = {"float_ops": info.pop("float_ops"), "quantization": info}
    if recipe.route == "qdq-ir":
        info["openvino"] = "Q/DQ ONNX read by OpenVINO (FakeQuantize, int8 kernels)"
        ovq.save_ir(ovq.convert(qdq), out, props, ovq.build_info(src, recipe.ov_float_precision, parent_sha))
    return Candidate(out, extra)


def stamp_onnx(path: Path, props: dict) -> None:
    """Write tinct metadata ``props`` into the ONNX file at ``path`` (nothing when ``props`` is empty)."""
    if not props:
        return
    m = onnx.load(str(path))
    set_onnx_props(m, props, producer=m.producer_name or "tinct quantize")
    onnx.save(m, str(path))


def _build_qdq(recipe: Recipe, src: Path, out: Path, calib, threads: int) -> dict:
    if recipe.conditional:
        return quantize_conditional(src, out, calib, method=recipe.method, threads=threads,
                                    branch_tool=recipe.qdq_tool, symmetric_activations=recipe.symmetric_activations,
                                    weight_range=recipe.weight_range)
    if recipe.qdq_tool == "nncf":
        proto = onnx.load(str(src))
        info = quantize_model_nncf(proto, out, [calib.feed(i) for i in range(len(calib))],
                                   ignored_names=excluded_nodes(proto, recipe.floats.roles), weight_range=recipe.weight_range)
        info["float_roles"] = list(recipe.floats.roles)
        info["float_ops"] = unquantized_op_types(onnx.load(str(out))) + list(recipe.floats.roles)
        return info
    return quantize_model(src, out, calib.ort_reader(), method=recipe.method, float_roles=recipe.floats.roles,
                          symmetric_activations=recipe.symmetric_activations, weight_range=recipe.weight_range)
