"""This machine's matrix-multiply peak per backend, precision and thread count.

A case's *efficiency* is its model MACs / (latency x peak MAC/s): how much of what this CPU can do
through the same library the engine achieves. The peak is measured, not looked up: a chain of
transformer-MLP-sized products ([tokens, dim] x [dim, 4 dim] x [4 dim, dim], iColoriT-T's sizes)
compiled by the same backend at the same precision and thread count, timed after a warm-up;
the best of a few short repeats (a peak, so noise only lowers it).

- OpenVINO: fp32 / bf16 through ``INFERENCE_PRECISION_HINT``; int8 through FakeQuantize on both
  operands, which OpenVINO's low-precision transformations turn into int8 kernels.
- ONNX Runtime: fp32 MatMul; int8 as a Q/DQ graph (u8 activations, s8 weights), which ONNX
  Runtime fuses into its int8 GEMM.
- PyTorch (eager references): the same chain with ``@`` in fp32 / bf16.
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np
import onnxruntime as ort

from tinct.runtime.cpu import missing_isa

TOKENS, DIM, HIDDEN, PAIRS = 197, 192, 768, 6


def _macs() -> int:
    return PAIRS * 2 * TOKENS * DIM * HIDDEN


def _weights(seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(PAIRS):
        out.append((rng.standard_normal((DIM, HIDDEN)) / DIM ** 0.5).astype(np.float32))
        out.append((rng.standard_normal((HIDDEN, DIM)) / HIDDEN ** 0.5).astype(np.float32))
    return out


def _openvino_model(int8: bool):
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([TOKENS, DIM], np.float32, name="x")
    h = x
    for w in _weights():
        wc = ops.constant(w)
        if int8:
            lim = float(np.abs(w).max())
            wc = ops.fake_quantize(wc, -lim, lim, -lim, lim, 255)
            h = ops.fake_quantize(h, -4.0, 4.0, -4.0, 4.0, 256)
        h = ops.matmul(h, wc, False, False)
    return ov.Model([h], [x], "peak")


def _onnx_model(int8: bool) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    h = "x"
    for i, w in enumerate(_weights()):
        if int8:
            s = float(np.abs(w).max()) / 127
            inits += [numpy_helper.from_array(np.clip(np.round(w / s), -127, 127).astype(np.int8), f"wq{i}"),
                      numpy_helper.from_array(np.array(s, np.float32), f"ws{i}"),
                      numpy_helper.from_array(np.array(0, np.int8), f"wz{i}"),
                      numpy_helper.from_array(np.array(8.0 / 255, np.float32), f"as{i}"),
                      numpy_helper.from_array(np.array(128, np.uint8), f"az{i}")]
            nodes += [helper.make_node("DequantizeLinear", [f"wq{i}", f"ws{i}", f"wz{i}"], [f"w{i}"]),
                      helper.make_node("QuantizeLinear", [h, f"as{i}", f"az{i}"], [f"hq{i}"]),
                      helper.make_node("DequantizeLinear", [f"hq{i}", f"as{i}", f"az{i}"], [f"hd{i}"])]
            src = f"hd{i}"
        else:
            inits.append(numpy_helper.from_array(w, f"w{i}"))
            src = h
        nodes.append(helper.make_node("MatMul", [src, f"w{i}"], [f"h{i}"]))
        h = f"h{i}"
    g = helper.make_graph(nodes, "peak", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [TOKENS, DIM])],
                          [helper.make_tensor_value_info(h, TensorProto.FLOAT, [TOKENS, DIM])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def _time(call, budget_s: float = 0.6, repeats: int = 5) -> float:
    call()
    call()
    best = float("inf")
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            call()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= budget_s / repeats:
                break
        best = min(best, dt / n)
    return best


@lru_cache(maxsize=None)
def peak_gmacs(backend: str, precision: str, threads: int) -> float | None:
    """Measured matmul peak in GMAC/s, or None when this backend/precision cannot run here."""

    x = np.random.default_rng(1).standard_normal((TOKENS, DIM)).astype(np.float32)
    int8 = precision.startswith("int8")
    if backend == "openvino":
        import openvino as ov

        hint = "bf16" if precision in ("bf16", "int8-bf16") else "f32"
        if missing_isa(hint):
            return None
        cfg = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            cfg["INFERENCE_NUM_THREADS"] = int(threads)
        req = ov.Core().compile_model(_openvino_model(int8), "CPU", cfg).create_infer_request()
        call = lambda: req.infer({0: x}, share_inputs=True)  # noqa: E731
    elif backend == "onnxruntime":

        if precision not in ("fp32", "int8"):
            return None
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads) if threads else 0
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(_onnx_model(int8), so, providers=["CPUExecutionProvider"])
        call = lambda: sess.run(None, {"x": x})  # noqa: E731
    elif backend == "pytorch":
        import torch

        if precision not in ("fp32", "bf16"):
            return None
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        ws = [torch.from_numpy(w).to(dtype) for w in _weights()]
        xt = torch.from_numpy(x).to(dtype)
        saved = torch.get_num_threads()

        def call():
            h = xt
            with torch.inference_mode():
                for w in ws:
                    h = h @ w
            return h
        if threads:
            torch.set_num_threads(int(threads))
        try:
            return _macs() / _time(call) / 1e9
        finally:
            torch.set_num_threads(saved)
    else:
        return None
    return _macs() / _time(call) / 1e9


def efficiency(macs: int | None, median_ms: float | None, peak: float | None) -> float | None:
    """Achieved MAC/s over the peak (0..1, may exceed 1 for fused kernels that beat the chain)."""
    if not macs or not median_ms or not peak:
        return None
    return macs / (median_ms * 1e-3) / (peak * 1e9)
