"""Post-training quantization of tinct ONNX artifacts (``tinct quantize``).

Light on purpose: importing :mod:`quantization` imports nothing heavy. The pieces:

- :mod:`quantization.calibration`: hint-simulated calibration inputs (ORT data reader, nncf.Dataset);
- :mod:`quantization.onnx_int8`: INT8 Q/DQ ONNX via ONNX Runtime ``quantize_static``;
- :mod:`quantization.conditional`: INT8 through A-ColViT's ``If`` nodes (per-branch quantization);
- :mod:`quantization.openvino_int8`: INT8 / BF16 OpenVINO IR (NNCF, or OpenVINO reading Q/DQ ONNX);
- :mod:`quantization.fp16`: FP16 ONNX with float32 inputs/outputs;
- :mod:`quantization.guard`: the accuracy guard every artifact passes before it is written;
- :mod:`quantization.recipes`: one recipe per route, the flags -> recipe mapping, the float policy;
- :mod:`quantization.api`: ``quantize(src, out, recipe, guard)`` (build, guard, stamp, rename).

The recipe sweep behind the defaults is ``python -m tinct.benchmarks.quantization_sweep``.
"""

PRECISIONS = ("int8", "fp16", "bf16")
# fp32: what an FP32 engine (OpenVINO, TensorRT) must meet against ONNX Runtime FP32 of the same export
# (the latency suite's fidelity check, tinct doctor); the export itself is held to max |Δab_n| <= 1e-4.
DEFAULT_BUDGET_DB = {"int8": 0.1, "fp16": 0.02, "bf16": 0.02, "fp32": 0.005}
# Second guard criterion: mean |Δab| (Lab units) between parent and child outputs. ΔPSNR alone is blind
# when the parent's PSNR is insensitive (a randomly initialised model saturates every colour: a
# calibration on all-zero inputs moved PSNR@10 by 0.007 dB but mean |Δab| from 1.3 to 5.3).
DEFAULT_MAX_MEAN_AB = {"int8": 3.0, "fp16": 1.0, "bf16": 1.0, "fp32": 0.05}

# INT8 weight range. "portable": 7-bit weight values (ONNX Runtime reduce_range, NNCF overflow_fix=enable),
# because x86 CPUs without VNNI (AVX2 laptops, AVX-512 before Cascade Lake) multiply u8 x s8 pairs into a
# saturating int16 (vpmaddubsw); on such a CPU 8-bit weights pushed the shipped icolorit-tiny over the INT8
# budget (README, "INT8 weights are 7-bit by default"). "full": 8-bit weights,
# for VNNI/AMX CPUs and GPUs only. TensorRT's signed Q/DQ route always uses the full range (no saturation).
WEIGHT_RANGES = ("portable", "full")
