"""Inference backends: ONNX Runtime (always), OpenVINO and TensorRT (optional extras).

Import :func:`open_backend` from here; backend modules import their library lazily (at load),
so this package imports with numpy + onnxruntime only.
"""

from tinct.runtime.backends.base import Backend, available_backends, open_backend

__all__ = ["Backend", "available_backends", "open_backend"]
