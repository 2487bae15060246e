"""Post-training quantization of tinct ONNX artifacts (``tinct quantize``).

Light on purpose: importing :mod:`quantization` imports nothing heavy. The pieces:

- :mod:`quantization.calibration`: hint-simulated calibration inputs (ORT data reader, nncf.Dataset);
- :mod:`quantization.onnx_int8`: INT8 Q/DQ ONNX via ONNX Runtime ``quantize_static``;
- :mod:`quantization.conditional`: INT8 through A-ColViT's ``If`` nodes (per-branch quantization);
- :mod:`quantization.openvino_int8`: INT8 / BF16 OpenVINO IR (NNCF, or OpenVINO reading Q/DQ ONNX);
- :mod:`quantization.fp16`: FP16 ONNX with float32 inputs/outputs;
- :mod:`quantization.guard`: the accuracy guard every artifact passes before it is written;
- :mod:`quantization.measure`: interleaved latency comparison (``python -m quantization.measure``).
"""

PRECISIONS = ("int8", "fp16", "bf16")
DEFAULT_BUDGET_DB = {"int8": 0.1, "fp16": 0.02, "bf16": 0.02}
