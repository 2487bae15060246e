"""INT8 through A-ColViT's conditional graph: quantize inside the ``If`` branches, under the real gates.

ONNX Runtime's quantizers only see top-level nodes (they never enter ``If`` subgraphs), and NNCF's
route through ``If`` produced wrong outputs whenever a gate was off (measured: 10-20 dB PSNR off). So:

1. Internalize: every branch gets its own copy of the outer weights/constants it reads, so the
   branch is self-contained apart from its activations (the outer tokens and ``keep`` mask).
2. Capture under the real gates: the FP32 model runs on the calibration set (batch 1) with every
   branch input and every ``If`` condition exposed as extra outputs; a branch's inputs are kept only
   from the samples where that branch actually ran (a branch that never ran is calibrated on all
   samples and reported as such).
3. Top level: ``quantize_static`` (patch embedding, decoder head...), the gate Linears, Sigmoid and
   Greater stay float so decisions do not flip.
4. Each then-branch is extracted as a standalone model (its outer activations become inputs),
   quantized over its captured inputs, and its quantized body is spliced back (inputs dropped
   again: the names resolve to the outer scope). Else-branches are identities. The branch quantizer
   is NNCF's ONNX backend (default) or ``quantize_static`` (TensorRT: signed INT8, zero point 0).
   Measured on acolvit-tiny-0.5 / 0.3 (72 validation images): NNCF branches lose 0.014 / 0.018 dB
   PSNR@10 (gate agreement 99.81 / 99.92 %), ``quantize_static`` branches 0.061 / 0.076 dB; same
   ONNX Runtime speed, and OpenVINO runs the NNCF graph about 12 % faster.
   With NNCF, the attention core (q·kᵀ and attn·v, the activation x activation MatMuls) stays float
   inside the branches (:data:`BRANCH_FLOAT_ROLES`): OpenVINO 2026.4 fuses an INT8 attention core
   into one kernel at the top level of a graph but not inside an ``If`` body, where it ran slower
   than in bf16 (A-ColViT-T-0.5, 1 thread, bf16 float ops, same run: 6.31 -> 5.73 ms with the core
   float; a static graph runs the same at 4.51 / 4.49 ms either way). Guard, 72 validation images:
   acolvit-tiny-0.5 / 0.3 lose 0.012 / 0.025 dB PSNR@10 (gate agreement 99.79 / 99.94 %).

The result still has all its ``If`` nodes. ONNX Runtime 1.31.1 aborts on such graphs unless the
session disables ``QDQPropagationTransformer``; OpenVINO reads them correctly.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from tinct.quantization.calibration import ArrayReader
from tinct.quantization.onnx_int8 import (
    DEFAULT_FLOAT_ROLES,
    DEFAULT_QUANTIZE_OPS,
    excluded_nodes,
    quantize_model,
    quantize_model_nncf,
)
from tinct.runtime.artifact import count_if_nodes
from tinct.runtime.backends.onnxruntime_backend import QDQ_IF_DISABLED as DISABLED_OPTIMIZERS

TOP_FLOAT_ROLES = DEFAULT_FLOAT_ROLES  # gate Linears and the head conv live at the top level


def if_nodes(model: onnx.ModelProto) -> list:
    return [n for n in model.graph.node if n.op_type == "If"]


def _branch(node, name: str) -> onnx.GraphProto:
    return next(a.g for a in node.attribute if a.name == name)


def _set_branch(node, name: str, graph: onnx.GraphProto) -> None:
    for a in node.attribute:
        if a.name == name:
            a.g.CopyFrom(graph)


def outer_refs(graph: onnx.GraphProto) -> list[str]:
    """Names a subgraph reads from its enclosing scope, in first-use order."""
    local = {i.name for i in graph.initializer} | {i.name for i in graph.input}
    refs: list[str] = []
    for n in graph.node:
        for i in n.input:
            if i and i not in local and i not in refs:
                refs.append(i)
        for a in n.attribute:  # nested subgraphs (none today) read through this scope
            if a.type == onnx.AttributeProto.GRAPH:
                for r in outer_refs(a.g):
                    if r not in local and r not in refs:
                        refs.append(r)
        local.update(n.output)
    return refs


def _constant_values(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    out = {}
    for n in graph.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            t = copy.deepcopy(n.attribute[0].t)
            t.name = n.output[0]
            out[n.output[0]] = t
    return out


def internalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Copy the outer initializers/constants each branch reads into that branch (see module doc)."""
    model = copy.deepcopy(model)
    g = model.graph
    consts = {i.name: i for i in g.initializer}
    consts.update(_constant_values(g))
    for node in if_nodes(model):
        for bname in ("then_branch", "else_branch"):
            body = _branch(node, bname)
            for r in outer_refs(body):
                if r in consts:
                    body.initializer.append(copy.deepcopy(consts[r]))
    _drop_unused_initializers(model)
    return model


def _all_inputs(graph: onnx.GraphProto, acc: set) -> set:
    for n in graph.node:
        acc.update(n.input)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _all_inputs(a.g, acc)
    return acc


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = _all_inputs(model.graph, set()) | {o.name for o in model.graph.output}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def activation_refs(model: onnx.ModelProto, node) -> list[str]:
    """The outer activations a (internalized) then-branch reads."""
    return outer_refs(_branch(node, "then_branch"))


# ----------------------------------------------------------------------------- capture

def capture(model: onnx.ModelProto, calib, threads: int = 1) -> tuple[dict[str, list[dict]], dict[str, list[bool]]]:
    """Run the FP32 model on every calibration sample (batch 1) and return, for each ``If`` node,
    the feeds of its then-branch on the samples where it ran, and the condition per sample."""

    aug = copy.deepcopy(model)
    ifs = if_nodes(aug)
    wanted: list[str] = []
    for n in ifs:
        for name in [n.input[0]] + activation_refs(aug, n):
            if name not in wanted:
                wanted.append(name)
    existing = {o.name for o in aug.graph.output}
    for name in wanted:
        if name not in existing:
            aug.graph.output.append(helper.ValueInfoProto(name=name))
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = threads, 1, 3
    sess = ort.InferenceSession(aug.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    feeds: dict[str, list[dict]] = {n.name: [] for n in ifs}
    all_feeds: dict[str, list[dict]] = {n.name: [] for n in ifs}
    conds: dict[str, list[bool]] = {n.name: [] for n in ifs}
    reader = calib.ort_reader(desc="capturing branch inputs")
    while (item := reader.get_next()) is not None:
        outs = dict(zip(names, sess.run(None, item)))
        for n in ifs:
            f = {r: outs[r] for r in activation_refs(aug, n)}
            ran = bool(np.asarray(outs[n.input[0]]).reshape(-1)[0])
            conds[n.name].append(ran)
            (feeds[n.name] if ran else all_feeds[n.name]).append(f)
    for n in ifs:  # never ran: calibrate on every sample rather than on nothing
        if not feeds[n.name]:
            feeds[n.name] = all_feeds[n.name]
    return feeds, conds


# ----------------------------------------------------------------------------- per-branch quantization

def standalone_branch(model: onnx.ModelProto, node, example_feed: dict) -> onnx.ModelProto:
    """The then-branch of ``node`` as a model whose inputs are its outer activations."""
    body = copy.deepcopy(_branch(node, "then_branch"))
    for name, arr in example_feed.items():
        arr = np.asarray(arr)
        shape = ["N"] + list(arr.shape[1:]) if arr.ndim else []
        body.input.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype), shape))
    body.name = f"{node.name}_then"
    m = helper.make_model(body, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return m


def splice(node, quantized: onnx.ModelProto, output_names: Sequence[str]) -> None:
    """Put a quantized standalone branch back as ``node``'s then-branch."""
    g = copy.deepcopy(quantized.graph)
    del g.input[:]
    produced = {o for n in g.node for o in n.output} | {i.name for i in g.initializer}
    for want, have in zip(output_names, list(g.output)):
        if want != have.name or want not in produced:
            raise RuntimeError(f"quantized branch of {node.name} renamed its output {want!r} -> {have.name!r}")
    _set_branch(node, "then_branch", g)


BRANCH_TOOLS = ("onnxruntime", "nncf")
# node roles (quantization.onnx_int8.ROLES) kept float inside every then-branch, per branch tool
BRANCH_FLOAT_ROLES = {"nncf": ("attn_matmul",), "onnxruntime": ()}


def quantize_conditional(src: str | Path, out_path: str | Path, calib, *, method: str = "minmax",
                         quantize_ops: Sequence[str] = DEFAULT_QUANTIZE_OPS, per_channel: bool = True,
                         threads: int = 1, branch_tool: str = "onnxruntime",
                         symmetric_activations: bool = False, weight_range: str = "portable") -> dict:
    """INT8 Q/DQ ONNX of a dynamic A-ColViT graph at ``out_path``; returns the recipe for metadata.

    ``branch_tool``: who quantizes each then-branch: ``onnxruntime`` (``quantize_static``, the Q/DQ
    style ONNX Runtime and TensorRT artifacts use) or ``nncf`` (NNCF's ONNX backend, the placement
    OpenVINO's int8 kernels are fastest with; the OpenVINO route's default)."""
    if branch_tool not in BRANCH_TOOLS:
        raise ValueError(f"unknown branch quantizer {branch_tool!r}; choose one of {', '.join(BRANCH_TOOLS)}")
    model = internalize(onnx.load(str(src)))
    n_if = len(if_nodes(model))
    feeds, conds = capture(model, calib, threads)
    with tempfile.TemporaryDirectory(prefix="tinct-cond-") as tmp:
        tmp = Path(tmp)
        top_info = quantize_model(model, tmp / "top.onnx", calib.ort_reader(desc="calibrating top level"),
                                  method=method, quantize_ops=quantize_ops, float_roles=TOP_FLOAT_ROLES,
                                  per_channel=per_channel, symmetric_activations=symmetric_activations,
                                  weight_range=weight_range)
        q = onnx.load(str(tmp / "top.onnx"))
        by_name = {n.name: n for n in if_nodes(q)}
        if len(by_name) != n_if:
            raise RuntimeError(f"top-level quantization changed the If nodes ({n_if} -> {len(by_name)})")
        branch_samples, branch_info = [], {}
        float_roles = BRANCH_FLOAT_ROLES[branch_tool]
        for k, node in enumerate(if_nodes(model)):
            f = feeds[node.name]
            sub = standalone_branch(model, node, f[0])
            outs = [o.name for o in sub.graph.output]
            if branch_tool == "nncf":
                branch_info = quantize_model_nncf(sub, tmp / f"b{k}.onnx", f,
                                                  ignored_names=excluded_nodes(sub, float_roles),
                                                  weight_range=weight_range)
            else:
                branch_info = quantize_model(sub, tmp / f"b{k}.onnx", ArrayReader(f), method=method,
                                             quantize_ops=quantize_ops, float_roles=float_roles,
                                             per_channel=per_channel, symmetric_activations=symmetric_activations,
                                             weight_range=weight_range)
            splice(by_name[node.name], onnx.load(str(tmp / f"b{k}.onnx")), outs)
            ran = int(sum(conds[node.name]))
            branch_samples.append(ran if ran else f"0 (never ran; calibrated on all {len(f)})")
    _drop_unused_initializers(q)
    if count_if_nodes(q.graph) != n_if:
        raise RuntimeError("quantized graph lost If nodes")
    onnx.save(q, str(out_path))
    cond_rate = [float(np.mean(conds[n.name])) for n in if_nodes(model)]
    return {**top_info, "float_roles": list(TOP_FLOAT_ROLES) + ["Sigmoid/Greater gate conditions"],
            "if_nodes": n_if, "per_branch": "each then-branch quantized separately under the real gates",
            "branch_quantizer": {k: v for k, v in branch_info.items() if k not in ("float_ops", "ignored_names")},
            "branch_float_roles": list(float_roles),
            "branch_calibration_samples": branch_samples,
            "branch_run_rate_fp32": [round(r, 3) for r in cond_rate],
            "ort_session_needs": {"disabled_optimizers": DISABLED_OPTIMIZERS}}
