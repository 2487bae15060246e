"""The accuracy budgets of every precision: one table for the guard, the benchmark's fidelity check,
``tinct doctor`` and ``--precision auto``."""

# fp32: what an FP32 engine (OpenVINO, TensorRT) must meet against ONNX Runtime FP32 of the same export
# (the latency suite's fidelity check, tinct doctor); the export itself is held to max |Δab_n| <= 1e-4.
DEFAULT_BUDGET_DB = {"int8": 0.1, "fp16": 0.02, "bf16": 0.02, "fp32": 0.005}
# Second guard criterion: mean |Δab| (Lab units) between parent and child outputs. ΔPSNR alone is blind
# when the parent's PSNR is insensitive (a randomly initialised model saturates every colour: a
# calibration on all-zero inputs moved PSNR@10 by 0.007 dB but mean |Δab| from 1.3 to 5.3).
DEFAULT_MAX_MEAN_AB = {"int8": 3.0, "fp16": 1.0, "bf16": 1.0, "fp32": 0.05}
