"""FP16 ONNX with float32 inputs and outputs.

``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)`` (ships with
onnxruntime; onnxconverter-common is not needed): weights and activations become float16, Casts are
inserted at the float32 graph input/output so the artifact keeps the runtime's I/O contract.
Ops kept in float32: the converter's own default block list plus :data:`FP16_BLOCKED_OPS` (empty:
on iColoriT the plain conversion measured ΔPSNR@10 ≈ 0.000 dB, max |Δab| ≈ 0.3; see ``extra.guard``). The result is meant for GPUs (TensorRT strongly typed builds, CUDA EP);
ONNX Runtime's CPU provider runs most float16 ops through inserted casts, slowly.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

FP16_BLOCKED_OPS: tuple[str, ...] = ()  # on top of the converter's DEFAULT_OP_BLOCK_LIST


def convert_fp16(src: str | Path | onnx.ModelProto, out_path: str | Path,
                 blocked_ops=FP16_BLOCKED_OPS) -> dict:

    model = src if isinstance(src, onnx.ModelProto) else onnx.load(str(src))
    blocked = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(blocked_ops))
    fp16 = convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked)
    _drop_duplicate_nodes(fp16.graph)
    for io in list(fp16.graph.input) + list(fp16.graph.output):
        if io.name in ("x", "ab") and io.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise RuntimeError(f"fp16 conversion changed the type of {io.name!r}")
    onnx.save(fp16, str(out_path))
    return {"tool": "onnxruntime.transformers.float16.convert_float_to_float16", "keep_io_types": True,
            "io": "float32 (Casts at input/output)", "float_ops": sorted(set(blocked_ops)),
            "converter_block_list": "DEFAULT_OP_BLOCK_LIST"}


def _drop_duplicate_nodes(graph) -> None:
    """The converter inserts one Cast per consumer of a shared float constant feeding blocked ops
    (Color2Embed: one Resize ``scales`` initializer shared by four Resize nodes), all with the same
    name and output: an invalid graph. Identical copies are the same computation: keep the first."""
    seen, keep = set(), []
    for node in graph.node:
        key = node.SerializeToString()
        if node.name and key in seen:
            continue
        seen.add(key)
        keep.append(node)
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
