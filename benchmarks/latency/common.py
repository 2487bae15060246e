"""Constants, the exceptions that end a case, and the fidelity subset size."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


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
PHOTOS = REPO_ROOT / "tests" / "fixtures" / "photos"
DEFAULT_ARTIFACTS = ".benchmarks/artifacts"  # .benchmarks/ is git-ignored (pytest-benchmark's storage too)


class SkipCase(Exception):
    """A case that cannot run here; the message says why (recorded in ``skipped``)."""


class CaseFailed(Exception):
    """A case that runs here but failed its fidelity check (recorded in ``failed``, never timed)."""


# The fidelity check every engine case passes before it is timed: the guard's protocol and criteria
# (quantization.guard: the validation split, or the fixture photos without the corpus; 1/10/50
# hints) against ONNX Runtime FP32 of the same export. The whole split, because a subset is too
# noisy for the BF16 budget: on 16 photos a correct OpenVINO BF16 engine measured ΔPSNR@10
# 0.019-0.031 dB against 0.02. With the guard's protocol the verdict is the guard's own.
FIDELITY_IMAGES: int | None = None
