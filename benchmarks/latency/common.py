"""Constants, the exceptions that end a case, and the fidelity subset size."""

from __future__ import annotations

from pathlib import Path

from tinct.data.samples import SAMPLES_DIR

SCHEMA = "tinct.bench.latency/1"
MODES = ("model", "e2e", "session", "session-4k", "preview", "throughput")
CPU_BACKENDS = ("pytorch", "onnxruntime", "openvino")
# "int8-bf16": OpenVINO INT8 whose unquantized ops run in bf16 (tinct quantize --ov-float-precision bf16)
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int8-bf16")
DEFAULT_GATES = ("own", "all", "0.5", "0.3")
# session modes: (photo size W x H, preview's longer side or None = full resolution)
SESSION_MODES = {"session": ((1920, 1080), None), "session-4k": ((3840, 2160), None), "preview": ((3840, 2160), 1280)}
N_HINTS = 10
RANDOM_FLAG = "random weights (latency only)"
REPO_ROOT = Path(__file__).resolve().parents[2]
PHOTOS = SAMPLES_DIR
DEFAULT_ARTIFACTS = ".benchmarks/artifacts"  # .benchmarks/ is git-ignored (pytest-benchmark's storage too)


from tinct.runtime.timing import CaseFailed, SkipCase  # noqa: E402,F401 - the scheduler's own exceptions
