"""The one torch -> ONNX call of tinct: ``torch.onnx.export(dynamo=True)`` with its output quieted,
its failures as one line, the opset checked, and the atomic write that checks a graph before it is
renamed into place. :mod:`export.onnx_export` (iColoriT, A-ColViT) and :mod:`export.color2embed_export`
use it."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import onnx
import torch
from torch import nn

from tinct.runtime.artifact import atomic_path
from tinct.runtime.errors import TinctError

DEFAULT_OPSET = 18
MIN_OPSET = 18  # the dynamo exporter emits opset-18 ops (Pad, Reduce*); onnx cannot convert them down
EXAMPLE_BATCH = 2  # torch.export specializes a batch of 1; trace with 2 and mark it dynamic


class ExportError(TinctError):
    pass


@contextlib.contextmanager
def _quiet():
    """The exporter prints progress and warns about unrelated optional packages: keep it off stdout."""
    names = ["torch.onnx", "torch.export", "torch._dynamo", "onnxscript"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def export_graph(module: nn.Module, example: tuple, input_names: list[str], output_names: list[str],
                 dynamic_shapes: dict, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """``module`` (eval, no grad) traced on ``example`` -> an ONNX proto of exactly ``opset``."""
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is not supported: the exporter emits opset-{MIN_OPSET} operators "
                          f"(Pad, ReduceMax with axes inputs) that cannot be converted down; use --opset >= {MIN_OPSET}")
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(module.eval(), example, input_names=input_names, output_names=output_names,
                                        opset_version=opset, dynamo=True, external_data=False,
                                        dynamic_shapes=dynamic_shapes, verbose=False)
    except Exception as exc:  # the exporter's own exception types vary between torch releases
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"torch.onnx export failed (opset {opset}): {first}") from exc
    proto = program.model_proto
    got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:
        raise ExportError(f"the exporter produced opset {got}, not the requested {opset}")
    return proto


def write_checked(proto: onnx.ModelProto, out: Path, check: Callable[[str], None]) -> None:
    """Serialize next to ``out``, run ``check(path)`` (which may re-stamp ``proto``), save again, rename;
    nothing is left behind on failure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
        check(str(tmp))
        onnx.save_model(proto, str(tmp))  # check() may have added metadata to proto
