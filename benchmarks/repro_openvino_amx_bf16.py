"""Minimal reproducer for an OpenVINO upstream report: BF16 on Intel AMX CPUs vs FP32 (not a test).

Observed (tinct, OpenVINO 2026.4.1, Intel Xeon family 6 model 207 with AMX-BF16): iColoriT-T
(a ViT: 12 blocks, dim 192, 3 heads, 196 patch tokens, relative position bias added to the
attention logits) with ``INFERENCE_PRECISION_HINT=bf16`` differs from f32 by a mean |Δ| of 0.132
on outputs in [-1, 1]; with ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` (AMX masked off) by 0.0022,
as on AMD Zen 4 (AVX512-BF16, no AMX). Suspect: the attention core that the CPU plugin fuses into
one Snippets "Subgraph", whose matrix products use AMX tiles on AMX CPUs; the attn.v product has
K = 196 tokens, not a multiple of the 32-wide AMX K block.

This script needs only numpy and openvino. It builds one attention block with the model's
shapes from OpenVINO's opset (random weights, fixed seed), compiles it for CPU in f32 and in
several bf16 configurations, and prints the mean/max |Δ| against f32 with the layer types and
runtime precisions the plugin chose. Give an ONNX file to run a whole model the same way.

    python benchmarks/repro_openvino_amx_bf16.py                 # the synthetic attention block
    python benchmarks/repro_openvino_amx_bf16.py model.onnx      # a model: input [1,4,224,224]
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python benchmarks/repro_openvino_amx_bf16.py   # AMX off

Expected on a CPU whose bf16 kernels are right: mean |Δ| around 1e-3 of the output scale for
every configuration. A configuration far above the others on an AMX CPU is the bug.
"""

from __future__ import annotations

import collections
import os
import platform
import sys

import numpy as np


def attention_block(tokens: int = 196, dim: int = 192, heads: int = 3, seed: int = 0):
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(seed)
    hd = dim // heads
    w = lambda *s: ops.constant((rng.standard_normal(s) / np.sqrt(s[0])).astype(np.float32))  # noqa: E731
    x = ops.parameter([1, tokens, dim], np.float32, name="x")
    ln = ops.mvn(x, ops.constant(np.array([-1], np.int64)), True, 1e-6, "inside_sqrt")
    qkv = ops.add(ops.matmul(ln, w(dim, 3 * dim), False, False), w(3 * dim))
    qkv = ops.transpose(ops.reshape(qkv, ops.constant(np.array([1, tokens, 3, heads, hd], np.int64)), False),
                        ops.constant(np.array([2, 0, 3, 1, 4], np.int64)))
    q, k, v = (ops.squeeze(ops.gather(qkv, ops.constant(np.array([i], np.int64)), ops.constant(np.int64(0))),
                           ops.constant(np.array([0], np.int64))) for i in range(3))
    bias = ops.constant((rng.standard_normal((1, heads, tokens, tokens)) * 0.5).astype(np.float32))
    logits = ops.add(ops.multiply(ops.matmul(q, k, False, True), ops.constant(np.float32(hd ** -0.5))), bias)
    attn = ops.matmul(ops.softmax(logits, -1), v, False, False)
    out = ops.reshape(ops.transpose(attn, ops.constant(np.array([0, 2, 1, 3], np.int64))),
                      ops.constant(np.array([1, tokens, dim], np.int64)), False)
    y = ops.add(x, ops.matmul(out, w(dim, dim), False, False))
    return ov.Model([y], [x], "attention_block"), rng.standard_normal((1, tokens, dim)).astype(np.float32)


def main(argv: list[str]) -> int:
    import openvino as ov

    core = ov.Core()
    if argv:
        model = core.read_model(argv[0])
        model.reshape({model.inputs[0]: [1, 4, 224, 224]})
        x = np.random.default_rng(0).uniform(-1, 1, (1, 4, 224, 224)).astype(np.float32)
        x[:, 3] = (x[:, 3] > 0.9).astype(np.float32)
        what = argv[0]
    else:
        model, x = attention_block()
        what = "synthetic attention block (196 tokens, dim 192, 3 heads, additive bias)"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
        flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "")
    except OSError:
        name = platform.processor()
    amx = "amx_bf16" in flags
    print(f"openvino {ov.__version__}; CPU {name}; amx_bf16 {'yes' if amx else 'no'}; "
          f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(unset)')}")
    print(f"model: {what}")

    def run(cfg):
        c = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1, **cfg})
        y = next(iter(c.create_infer_request().infer({0: x}).values())).copy()
        kinds = collections.Counter(
            (op.get_rt_info()["layerType"].astype(str), op.get_rt_info()["runtimePrecision"].astype(str))
            for op in c.get_runtime_model().get_ordered_ops())
        return y, {k: n for k, n in kinds.items() if k[0] in ("Subgraph", "MatMul", "FullyConnected", "Softmax",
                                                               "ScaledDotProductAttention", "MVN", "Convolution")}

    ref, kinds = run({"INFERENCE_PRECISION_HINT": "f32"})
    print(f"f32 reference: {kinds}")
    for label, cfg in (("bf16", {"INFERENCE_PRECISION_HINT": "bf16"}),
                       ("bf16, SNIPPETS_MODE=DISABLE", {"INFERENCE_PRECISION_HINT": "bf16", "SNIPPETS_MODE": "DISABLE"})):
        y, kinds = run(cfg)
        d = np.abs(y - ref)
        print(f"{label:<30} mean |Δ| {d.mean():.5f}  max |Δ| {d.max():.4f}  (output mean |y| {np.abs(ref).mean():.4f})"
              f"  finite {bool(np.isfinite(y).all())}\n{'':<30} {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
