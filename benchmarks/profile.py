"""Where the time goes: an engine's per-layer times grouped by the kind of work (``tinct bench latency --profile``).

The backends' own profilers (:meth:`tinct.runtime.backends.Backend.profile_records`): ONNX Runtime's trace
(every node of the optimized graph, ``If`` bodies included) and OpenVINO's per-layer performance counters
(every executed layer of the compiled model; fused layers are classified by the operations fused into them).
Profiling slows a call down (ONNX Runtime's trace adds ~10 %), so it runs after the timed rounds, on a backend of
its own; the shares are what to read, the absolute ms are the profiled run's.

Categories (:data:`CATEGORIES`): products with a weight (FC/MatMul/Gemm and their int8 forms), convolutions, the
attention core (products of two activations, Softmax), normalization, activations (GELU/Erf), elementwise
(Add, Mul, fused eltwise chains), precision conversions and reorders (Q/DQ, Cast, Convert, Reorder), data
movement (Transpose, Reshape, Split, Concat, Gather, Pad, DepthToSpace), ``If``: on ONNX Runtime the ``If``
node's own time minus the nodes of its bodies (the overhead of the conditional), on OpenVINO the whole ``If``
layer (its bodies are not reported by the plugin: compare with a static export to see the overhead).
"""

from __future__ import annotations

import bisect
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from tinct.runtime.backends import Backend, open_backend
from tinct.runtime.backends.onnxruntime_backend import recorded_disabled_optimizers

CATEGORIES = ("weights (FC/MatMul)", "convolution", "attention", "normalization", "activation", "elementwise",
              "conversions & reorders", "data movement", "If", "other")
_MATMULS = {"MatMul", "FusedMatMul", "Gemm", "MatMulInteger", "QLinearMatMul", "MatMulIntegerToFloat",
            "DynamicQuantizeMatMul", "QGemm", "MatMulNBits"}
_BY_OP = {
    "convolution": {"Conv", "QLinearConv", "ConvInteger", "NhwcConv", "FusedConv", "Convolution",
                    "GroupConvolution", "Deconvolution"},
    "attention": {"Softmax", "ScaledDotProductAttention", "Attention", "MultiHeadAttention", "SoftMax"},
    "normalization": {"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization", "MVN",
                      "NormalizeL2", "BatchNormalization", "InstanceNormalization", "ReduceMean"},
    "activation": {"Erf", "Gelu", "FastGelu", "BiasGelu", "QuickGelu", "Tanh", "Sigmoid", "Relu", "LeakyRelu",
                   "Elu", "Swish", "HSwish", "Mish", "Clamp"},
    "elementwise": {"Add", "Mul", "Div", "Sub", "Pow", "Sqrt", "Where", "Select", "Eltwise", "Multiply", "Subtract",
                    "Divide", "Power", "Maximum", "Minimum", "Max", "Min", "Equal", "Greater", "Less", "Not", "And",
                    "Or", "Abs", "Neg", "Exp", "Log", "ReduceMax", "ReduceSum", "Sum", "Mean"},
    "conversions & reorders": {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Cast", "Convert",
                               "Reorder", "ReorderInput", "ReorderOutput", "FakeQuantize", "MemoryCopy"},
    "data movement": {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Split", "VariadicSplit", "Concat", "Gather",
                      "GatherElements", "Pad", "DepthToSpace", "SpaceToDepth", "Slice", "StridedSlice", "Flatten",
                      "Expand", "Tile", "Shape", "ShapeOf", "Identity", "Broadcast"},
}
_CATEGORY_OF_OP = {op: cat for cat, ops in _BY_OP.items() for op in ops}
_OV_WEIGHTS = ("FullyConnected", "FullyConnectedQuantized", "FullyConnectedQuantizedLegacy", "FullyConnectedCompressed")


def profile_backend(path: str | Path, backend: str, x: np.ndarray, *, runs: int = 20, **opts) -> dict:
    """Open ``path`` on ``backend`` with its profiler, run ``x`` ``runs`` times (after 3 warm-up calls) and group
    the per-layer times -> ``{"backend", "runs", "ms_per_call", "categories": {name: ms per call}, "top": [...]}``."""
    warm = open_backend(path, backend, **opts)
    for _ in range(3):
        warm.run_x(x)
    warm.close()
    be = open_backend(path, backend, profile=True, **opts)
    try:
        for _ in range(runs):
            be.run_x(x)
        records = be.profile_records()
        if backend == "onnxruntime":  # the optimized graph its trace names: weights vs activation products
            with tempfile.TemporaryDirectory(prefix="tinct-profile-") as tmp:
                optimized = Path(tmp) / "optimized.onnx"
                _save_optimized(path, optimized, opts)
                cats = _ort_categories(records, _onnx_node_kinds(optimized))
        else:
            cats = _ov_categories(records, be)
    finally:
        be.close()
    per_call = {c: round(cats.get(c, 0.0) / runs, 3) for c in CATEGORIES}
    top = Counter()
    for r in records:
        top[(r["name"], r["op"])] += r["ms"]
    return {"backend": backend, "runs": runs, "ms_per_call": round(sum(per_call.values()), 3),
            "categories": per_call,
            "top": [{"name": n, "op": o, "ms": round(ms / runs, 3)} for (n, o), ms in top.most_common(8)]}


def _save_optimized(path, out: Path, opts: dict) -> None:
    """The graph ONNX Runtime runs for ``path`` with these options (its node names are the trace's)."""
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(out)
    so.log_severity_level = 3
    disabled = recorded_disabled_optimizers(Path(path)) or []
    kw = {"disabled_optimizers": disabled} if disabled else {}
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"], **kw)


def _onnx_node_kinds(path: Path) -> dict[str, tuple[str, bool]]:
    """node name -> (op type, True when one of its inputs is a constant) over a graph and its subgraphs."""
    out: dict[str, tuple[str, bool]] = {}

    def walk(graph, consts: set[str]) -> None:
        consts = consts | {i.name for i in graph.initializer}
        consts |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
        # a weight that is dequantized or cast is still a weight
        for n in graph.node:
            if n.op_type in ("DequantizeLinear", "Cast") and n.input and n.input[0] in consts:
                consts |= set(n.output)
        for n in graph.node:
            out[n.name] = (n.op_type, any(i in consts for i in n.input[:2] if i))
            for a in n.attribute:
                for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    walk(g, consts)

    walk(onnx.load(str(path), load_external_data=False).graph, set())
    return out


def _ort_categories(records: list[dict], kinds: dict[str, tuple[str, bool]]) -> dict[str, float]:
    cats: dict[str, float] = defaultdict(float)
    by_tid: dict[int, list[dict]] = defaultdict(list)
    for r in records:
        by_tid[r["tid"]].append(r)
    for rows in by_tid.values():
        rows.sort(key=lambda r: r["ts"])
        starts = [r["ts"] for r in rows]
        for r in rows:
            if r["op"] != "If":
                continue
            end = r["ts"] + r["ms"] * 1e3  # its bodies' nodes run inside it, on its thread
            lo, hi = bisect.bisect_right(starts, r["ts"]), bisect.bisect_right(starts, end)
            nested = sum(o["ms"] for o in rows[lo:hi] if o["ts"] + o["ms"] * 1e3 <= end)
            cats["If"] += max(r["ms"] - nested, 0.0)  # the conditional's own cost; its bodies are counted below
    for r in records:
        op = r["op"]
        if op == "If":
            continue
        if op in _MATMULS:
            has_weight = kinds.get(r["name"], (op, True))[1]
            cats["weights (FC/MatMul)" if has_weight else "attention"] += r["ms"]
        else:
            cats[_CATEGORY_OF_OP.get(op, "other")] += r["ms"]
    return cats


def _ov_categories(records: list[dict], backend: Backend) -> dict[str, float]:
    fused = backend.fused_layers()
    cats: dict[str, float] = defaultdict(float)
    for r in records:
        op = r["op"]
        if op.startswith(_OV_WEIGHTS):
            cats["weights (FC/MatMul)"] += r["ms"]
        elif op == "MatMul":  # weight products became FullyConnected: what stays a MatMul multiplies activations
            cats["attention"] += r["ms"]
        elif op == "If":
            cats["If"] += r["ms"]
        elif op == "Subgraph":
            cats[_subgraph_category(set(fused.get(r["name"], [])))] += r["ms"]
        else:
            cats[_CATEGORY_OF_OP.get(op, "other")] += r["ms"]
    return cats


def _subgraph_category(types: set[str]) -> str:
    """A fused OpenVINO Subgraph, by what was fused into it."""
    if types & (_BY_OP["attention"] | {"MatMul"}):
        return "attention"
    if types & {"MVN", "ReduceMean"}:
        return "normalization"
    if types & {"Erf", "Gelu", "Tanh"}:
        return "activation"
    if types and types <= _BY_OP["conversions & reorders"]:
        return "conversions & reorders"
    return "elementwise"


_TORCH = {
    "weights (FC/MatMul)": {"addmm", "mm", "linear"},
    "convolution": {"convolution", "_convolution", "conv2d", "mkldnn_convolution", "thnn_conv2d",
                    "_slow_conv2d_forward", "_nnpack_spatial_convolution"},
    "attention": {"bmm", "baddbmm", "matmul", "softmax", "_softmax", "scaled_dot_product_attention",
                  "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_attention_math"},
    "normalization": {"layer_norm", "native_layer_norm", "batch_norm", "native_batch_norm", "group_norm",
                      "native_group_norm", "instance_norm", "_batch_norm_impl_index"},
    "activation": {"gelu", "relu", "relu_", "sigmoid", "tanh", "silu", "leaky_relu", "hardtanh", "clamp"},
    "elementwise": {"add", "add_", "mul", "mul_", "div", "div_", "sub", "rsub", "pow", "sqrt", "rsqrt", "where",
                    "exp", "log", "neg", "abs", "maximum", "minimum", "sum", "mean", "max", "min", "lt", "gt", "eq",
                    "ne", "ge", "le", "logical_not", "any", "all", "masked_fill", "fill_", "round", "floor", "erf",
                    "clamp_min", "clamp_max", "addcmul", "lerp"},
    "conversions & reorders": {"to", "_to_copy", "type_as"},
    "data movement": {"copy_", "contiguous", "clone", "transpose", "permute", "view", "reshape", "cat", "stack",
                      "pixel_shuffle", "index", "slice", "select", "expand", "unsqueeze", "squeeze", "flatten",
                      "unbind", "split", "chunk", "narrow", "as_strided", "t", "empty", "empty_like", "zeros",
                      "resolve_conj", "resolve_neg", "pad", "constant_pad_nd", "_unsafe_view", "unfold",
                      "upsample_nearest2d", "upsample_bilinear2d", "interpolate", "repeat", "index_select"},
}
_TORCH_CATEGORY = {op: cat for cat, ops in _TORCH.items() for op in ops}


def profile_torch(run_x, x: np.ndarray, *, runs: int = 20) -> dict:
    """PyTorch eager through ``torch.profiler``: each operator's self CPU time, grouped like the engines'."""
    # deferred: torch is optional (the bench extra)
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        run_x(x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            run_x(x)
    cats: dict[str, float] = defaultdict(float)
    top = Counter()
    for ev in prof.key_averages():
        if not ev.key.startswith("aten::"):
            continue  # the Python-level ranges: their time is their operators'
        op = ev.key.removeprefix("aten::")
        ms = ev.self_cpu_time_total / 1e3
        cat = _TORCH_CATEGORY.get(op, "other")
        cats[cat] += ms
        top[(ev.key, op)] += ms
    per_call = {c: round(cats.get(c, 0.0) / runs, 3) for c in CATEGORIES}
    return {"backend": "pytorch", "runs": runs, "ms_per_call": round(sum(per_call.values()), 3),
            "categories": per_call,
            "top": [{"name": n, "op": o, "ms": round(ms / runs, 3)} for (n, o), ms in top.most_common(8)]}


def profile_table(results: list[dict]) -> str:
    """One row per profiled result entry (``tinct bench latency --profile``): ms per call and each category's
    share; entries whose profiler failed say why."""
    head = "| engine | ms/call (profiled) | " + " | ".join(CATEGORIES) + " |"
    lines = [head, "|" + "---|" * (len(CATEGORIES) + 2)]
    for e in results:
        label = " ".join(str(v) for v in (e.get("model"), e.get("backend"), e.get("precision"),
                                          f"{e.get('threads')}t") if v)
        if e.get("profile_error"):
            lines.append(f"| {label} | failed: {e['profile_error']} |" + " |" * len(CATEGORIES))
            continue
        p = e.get("profile")
        if not p:
            continue
        total = p["ms_per_call"] or 1.0
        cells = [f"{p['categories'][c] / total * 100:.0f} %" if p["categories"][c] else "-" for c in CATEGORIES]
        lines.append(f"| {label} | {p['ms_per_call']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
