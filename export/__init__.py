"""Export: PyTorch reference models -> ONNX with tinct metadata, checked for parity.

    from tinct.export import export_onnx
    export_onnx("acolvit-tiny-0.5", "acolvit.onnx")                  # 24 If nodes (dynamic gating)
    export_onnx("acolvit-tiny-0.5", "static.onnx", gating="static")  # fixed mask, no If

This package imports nothing heavy until an export function is used (the tinct CLI lists
``export`` without torch installed).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "export_onnx": "tinct.export.onnx_export",
    "read_meta": "tinct.export.onnx_export",
    "check_parity": "tinct.verify.parity",
    "parity_inputs": "tinct.verify.parity",
}

__all__ = ["check_parity", "export_onnx", "parity_inputs", "read_meta"]


def __getattr__(name: str):
    if name in _LAZY:

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
