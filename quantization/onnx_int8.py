"""INT8 ONNX with Q/DQ nodes through ONNX Runtime's ``quantize_static``.

QDQ format, U8 activations (asymmetric), S8 weights (per-channel by default), calibration method
MinMax / Entropy / Percentile. Which ops are quantized is a list of ONNX op types (every other op
type stays float) plus node roles kept float; both are recorded in ``extra.float_ops``. Roles:

- ``head_conv``: the output convolution (its input is the decoder's pre-pixel-shuffle features);
- ``patch_embed``: the input convolution (reads ``x`` directly);
- ``gate_linear``: A-ColViT's policy Linears (always kept float: quantizing them flips decisions);
- ``attn_matmul``: the two activation x activation MatMuls of attention (q·kᵀ, attn·v).

The default set was chosen by measurement (``python -m tinct.benchmarks.quantization_sweep --sweep``; numbers in
:data:`SWEEP_NOTE`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import onnx
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

from tinct.quantization import WEIGHT_RANGES
from tinct.quantization.recipes import METHODS, FloatPolicy

# Chosen by measurement on iColoriT-T (see SWEEP_NOTE): quantize these op types, keep every other
# op type float, and keep these node roles float as well.
DEFAULT_QUANTIZE_OPS = ("MatMul", "Conv")
DEFAULT_FLOAT_ROLES = FloatPolicy().roles  # measured: see FloatPolicy
SWEEP_NOTE = "see python -m tinct.benchmarks.quantization_sweep --sweep"
ROLES = ("head_conv", "patch_embed", "gate_linear", "attn_matmul")
ACTIVATIONS_SYMMETRIC = "int8 symmetric (zero point 0)"  # recorded in extra.quantization.activations
HIST_CHUNK = 16  # samples held in memory at once by histogram calibration


def _method(name: str):
    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


def _initializers(graph) -> set[str]:
    return {i.name for i in graph.initializer}


def role_nodes(model: onnx.ModelProto, role: str) -> list[str]:
    """Names of the top-level nodes playing ``role`` (see the module docstring)."""
    g = model.graph
    inits = _initializers(g)
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    convs = [n for n in g.node if n.op_type == "Conv"]
    if role == "head_conv":
        return [convs[-1].name] if len(convs) > 1 else []
    if role == "patch_embed":
        return [n.name for n in convs if n.input[0] in {i.name for i in g.input}]
    if role == "gate_linear":
        out = []
        for n in g.node:
            if n.op_type in ("Gemm", "MatMul") and (
                    any("layer_select" in i for i in n.input)
                    or any(c.op_type == "Sigmoid" for o in n.output for c in consumers.get(o, []))):
                out.append(n.name)
        return out
    if role == "attn_matmul":
        return [n.name for n in g.node if n.op_type == "MatMul" and not any(i in inits for i in n.input)]
    raise ValueError(f"unknown node role {role!r}; roles: {', '.join(ROLES)}")


def float_ops_of(model: onnx.ModelProto, quantize_ops: Iterable[str], float_roles: Iterable[str]) -> list[str]:
    """What stays float, for ``extra.float_ops``: op types present but not quantized, then roles."""
    types = {n.op_type for n in model.graph.node} - {"If", "Constant", "Shape", "Cast"}
    return sorted(types - set(quantize_ops)) + list(float_roles)


def unquantized_op_types(model: onnx.ModelProto) -> list[str]:
    """Op types of a Q/DQ graph that never read a DequantizeLinear output (they run in float)."""
    skip = {"QuantizeLinear", "DequantizeLinear", "Constant", "Shape", "Cast", "If", "Reshape", "Transpose",
            "Unsqueeze", "Squeeze", "Gather", "GatherND", "Concat", "Slice", "Pad", "Where"}
    g = model.graph
    dq_out = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    fed = {n.op_type for n in g.node if any(i in dq_out for i in n.input)}
    return sorted({n.op_type for n in g.node} - skip - fed)


def excluded_nodes(model: onnx.ModelProto, float_roles: Iterable[str]) -> list[str]:
    return [name for role in float_roles for name in role_nodes(model, role)]


@contextlib.contextmanager
def _chunked_histograms(chunk: int = HIST_CHUNK):
    """ORT's calibrators keep every intermediate tensor of every sample until the end (gigabytes
    for 300 samples of a 12-block model). MinMax merges ranges and the histogram collector merges
    histograms across ``collect_data`` calls, so feed them ``chunk`` samples at a time: same result,
    bounded memory. (ORT's own ``CalibMaxIntermediateOutputs`` fails when the sample count is a
    multiple of it: "No data is collected".)"""

    qmod = importlib.import_module("onnxruntime.quantization.quantize")

    original = qmod.create_calibrator

    class _Chunk:
        def __init__(self, reader, n):
            self.reader, self.n, self.left, self.done = reader, n, n, False

        def get_next(self):
            if self.left == 0:
                return None
            item = self.reader.get_next()
            if item is None:
                self.done = True
                return None
            self.left -= 1
            return item

    def create(*args, **kwargs):
        cal = original(*args, **kwargs)
        collect = cal.collect_data

        def chunked(reader):
            while True:
                part = _Chunk(reader, chunk)
                first = part.get_next()
                if first is None:
                    return
                part.left += 1
                part.get_next = _prepend(first, part.get_next)
                collect(part)
                if part.done:
                    return

        cal.collect_data = chunked
        return cal

    qmod.create_calibrator = create
    try:
        yield
    finally:
        qmod.create_calibrator = original


def _prepend(first, get_next):
    state = {"first": first}

    def f():
        if state["first"] is not None:
            item, state["first"] = state["first"], None
            return item
        return get_next()
    return f


def quantize_model(model: onnx.ModelProto | str | Path, out_path: str | Path, reader, *,
                   method: str = "minmax", quantize_ops: Sequence[str] = DEFAULT_QUANTIZE_OPS,
                   float_roles: Sequence[str] = DEFAULT_FLOAT_ROLES,
                   per_channel: bool = True, extra_nodes_to_exclude: Sequence[str] = (),
                   extra_options: dict | None = None, symmetric_activations: bool = False,
                   weight_range: str = "portable") -> dict:
    """``quantize_static`` one (top-level) graph to ``out_path``; returns the recipe for metadata.

    ``weight_range``: ``portable`` stores 7-bit weight values (``reduce_range``; see
    :data:`quantization.WEIGHT_RANGES`), ``full`` 8-bit; symmetric (TensorRT) graphs always use 8 bits.

    ``symmetric_activations``: signed INT8 activations with zero point 0 and float biases, the INT8
    Q/DQ form TensorRT's explicit quantization accepts (the default, U8 asymmetric with INT32 biases,
    suits ONNX Runtime's CPU kernels and OpenVINO)."""

    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    if isinstance(model, onnx.ModelProto):  # ORT round-trips protos through external data, which
        tmpdir = tempfile.TemporaryDirectory(prefix="tinct-q-")  # loses subgraph initializers
        model = Path(tmpdir.name) / "in.onnx"
        onnx.save(proto, str(model))
    excluded = excluded_nodes(proto, float_roles) + list(extra_nodes_to_exclude)
    types = sorted(set(quantize_ops))
    reduce_range = _reduce_range(weight_range, symmetric_activations)
    opts = {"ActivationSymmetric": bool(symmetric_activations), "WeightSymmetric": True}
    if symmetric_activations:  # TensorRT: biases stay float (it has no INT32 DequantizeLinear)
        opts["QuantizeBias"] = False
    opts.update(extra_options or {})
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs a pre-processing advert at WARNING on every call
    with _chunked_histograms(), contextlib.ExitStack() as stack:
        stack.callback(root.setLevel, level)
        quantize_static(str(model), str(out_path), reader, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=types, per_channel=per_channel, reduce_range=reduce_range,
                        activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        nodes_to_exclude=excluded, calibrate_method=_method(method), extra_options=opts)
    acts = ACTIVATIONS_SYMMETRIC if symmetric_activations else "uint8 asymmetric"
    return {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ", "activations": acts,
            "weights": "int8 symmetric " + ("per-channel" if per_channel else "per-tensor")
            + (", 7-bit range (portable to CPUs without VNNI)" if reduce_range else ", 8-bit range"),
            "weight_range": "portable" if reduce_range else "full",
            "method": method, "quantized_op_types": types, "float_roles": list(float_roles),
            "excluded_nodes": len(excluded), "float_ops": float_ops_of(proto, types, float_roles)}


def _reduce_range(weight_range: str, symmetric_activations: bool) -> bool:
    if weight_range not in WEIGHT_RANGES:
        raise ValueError(f"unknown weight range {weight_range!r}; choose one of {', '.join(WEIGHT_RANGES)}")
    return weight_range == "portable" and not symmetric_activations


def nncf_overflow_fix(weight_range: str):
    """NNCF's advanced parameters for ``weight_range`` (:data:`quantization.WEIGHT_RANGES`)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    _reduce_range(weight_range, False)
    fix = OverflowFix.ENABLE if weight_range == "portable" else OverflowFix.DISABLE
    return AdvancedQuantizationParameters(overflow_fix=fix)


def nncf_scope(names, types=()):
    """NNCF's ``IgnoredScope`` for node names (and op types); None when empty."""
    import nncf

    if not names and not types:
        return None
    return nncf.IgnoredScope(names=list(names), types=list(types), validate=False)


def quantize_model_nncf(model: onnx.ModelProto, out_path: str | Path, feeds: Sequence[dict], *,
                        ignored_names: Sequence[str] = (), weight_range: str = "portable") -> dict:
    """Q/DQ ONNX of one (top-level) graph through NNCF's ONNX backend (``model_type=TRANSFORMER``:
    SmoothQuant on the MatMuls, symmetric int8 with the placement NNCF uses for OpenVINO's int8
    kernels). ``feeds``: the calibration samples as ``{input name: array}``.

    Used for the OpenVINO route through A-ColViT's ``If`` branches: measured on iColoriT-T (1 thread),
    OpenVINO runs this graph as fast as NNCF's own IR (10.33 vs 10.19 ms) and 26 % faster than
    ``quantize_static``'s Q/DQ (13.06 ms); ONNX Runtime runs both Q/DQ styles at the same speed."""
    import nncf

    scope = nncf_scope(ignored_names)
    kw = {"ignored_scope": scope} if scope is not None else {}
    q = nncf.quantize(model, nncf.Dataset(list(feeds)), subset_size=len(feeds),
                      model_type=nncf.ModelType.TRANSFORMER, advanced_parameters=nncf_overflow_fix(weight_range), **kw)
    onnx.save(q, str(out_path))
    return {"tool": f"nncf {nncf.__version__} quantize (ONNX backend)", "format": "QDQ", "model_type": "TRANSFORMER",
            "activations": "int8/uint8 symmetric per-tensor (NNCF performance preset)",
            "weights": "int8 symmetric per-channel", "weight_range": weight_range,
            "overflow_fix": "enable" if weight_range == "portable" else "disable",
            "smooth_quant": "NNCF default for TRANSFORMER (MatMul)",
            "ignored_names": list(ignored_names)}
