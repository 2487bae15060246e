"""Post-training quantization of tinct ONNX artifacts (``tinct quantize``).

Light on purpose: importing :mod:`quantization` imports nothing heavy. The pieces:

- :mod:`quantization.calibration`: hint-simulated calibration inputs (ORT data reader, nncf.Dataset);
- :mod:`quantization.onnx_int8`: INT8 Q/DQ ONNX via ONNX Runtime ``quantize_static``;
- :mod:`quantization.conditional`: INT8 through A-ColViT's ``If`` nodes (per-branch quantization);
- :mod:`quantization.openvino_int8`: INT8 / BF16 OpenVINO IR (NNCF, or OpenVINO reading Q/DQ ONNX);
- :mod:`quantization.fp16`: FP16 ONNX with float32 inputs/outputs;
- :mod:`quantization.recipes`: one recipe per route, the flags -> recipe mapping, the float policy;
- :mod:`quantization.builders`: builds a recipe's artifact;
- :mod:`quantization.api`: ``quantize(src, out, recipe, guard)`` (build, guard, stamp, rename).

The guard every artifact passes before it is written is :mod:`tinct.verify.guard`.

The recipe sweep behind the defaults is ``python -m tinct.benchmarks.quantization_sweep``.
"""

PRECISIONS = ("int8", "fp16", "bf16")
# INT8 weight range. "portable": 7-bit weight values (ONNX Runtime reduce_range, NNCF overflow_fix=enable),
# because x86 CPUs without VNNI (AVX2 laptops, AVX-512 before Cascade Lake) multiply u8 x s8 pairs into a
# saturating int16 (vpmaddubsw); on such a CPU 8-bit weights pushed the shipped icolorit-tiny over the INT8
# budget (docs/cpus-and-precisions.md, "INT8 weights are 7-bit by default"). "full": 8-bit weights,
# for VNNI/AMX CPUs and GPUs only. TensorRT's signed Q/DQ route always uses the full range (no saturation).
WEIGHT_RANGES = ("portable", "full")
