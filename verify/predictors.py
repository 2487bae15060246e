"""An artifact as a predictor: the one way every check runs an artifact, through :func:`open_backend`.

A hint-model predictor is a callable ``x [N,4,224,224] float32 -> (ab [N,2,224,224], gates [N,depth,2]
bool or None)``: the gates are the auxiliary ``gates`` output of a dynamic A-ColViT export (ONNX
Runtime's ``If`` choices are not observable otherwise). A reference that is not an artifact (the
PyTorch model of an export) is any callable with the same signature. Color2Embed's colorizer is
``(l_n, emb) -> ab`` and its encoder ``uint8 RGB [N,H,W,3] -> emb``.

Artifacts open exactly as the runtime opens them: the backend from the suffix (or ``backend``), an IR
at its recorded inference precision (or ``precision``), ONNX Runtime's workarounds that the artifact
records (or that its kind implies), static batch shapes on OpenVINO.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinct.runtime.backends import Backend, open_backend
from tinct.runtime.backends.base import AUX_GATES_OUTPUT

Predictor = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray | None]"]


class ArtifactPredictor:
    """A hint-model artifact as a :data:`Predictor`."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self._input = backend.input_names[0]
        self._main = next(n for n in backend.output_names if n != AUX_GATES_OUTPUT)

    @classmethod
    def open(cls, path: str | Path, *, threads: int = 1, precision: str | None = None,
             backend: str | None = None) -> ArtifactPredictor:
        return cls(open_backend(path, backend, threads=threads, precision=precision))

    def __call__(self, x: np.ndarray):
        out = self.backend.infer({self._input: np.ascontiguousarray(x, dtype=np.float32)})
        gates = out.get(AUX_GATES_OUTPUT)
        return np.array(out[self._main]), (None if gates is None else np.asarray(gates).astype(bool))

    def close(self) -> None:
        self.backend.close()


def from_run_x(run_x: Callable[[np.ndarray], np.ndarray]) -> Predictor:
    """A predictor for an engine that only gives ab (``Backend.run_x``, a benchmark's callable)."""
    return lambda x: (np.asarray(run_x(x)), None)


class ColorizerPredictor:
    """A Color2Embed colorizer artifact: ``(l_n [N,1,H,W], emb [N,E]) -> ab [N,2,H,W]`` float32."""

    def __init__(self, path: str | Path, threads: int = 1):
        self.backend = open_backend(path, threads=threads)

    def __call__(self, l_n: np.ndarray, emb: np.ndarray) -> np.ndarray:
        out = self.backend.infer({"l_n": np.ascontiguousarray(l_n, np.float32),
                                  "emb": np.ascontiguousarray(emb, np.float32)})
        return np.asarray(out["ab"], np.float32)


class EncoderPredictor:
    """A Color2Embed colour encoder artifact: uint8 (or [0,1] float) RGB [N,H,W,3] -> float32 [N,E]."""

    def __init__(self, path: str | Path, threads: int = 1):
        self.backend = open_backend(path, threads=threads)

    def __call__(self, rgb) -> np.ndarray:
        x = np.asarray(rgb)
        x = x.astype(np.float32) * np.float32(1 / 255.0) if x.dtype == np.uint8 else x.astype(np.float32)
        return np.array(self.backend.infer({"ref": np.ascontiguousarray(np.moveaxis(x, -1, 1))})["emb"])
