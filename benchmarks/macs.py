"""Multiply-accumulates of a tinct ONNX graph at batch 1 (MatMul, Gemm, Conv), from ONNX shape inference.

The papers' "GFLOPs" are MACs (iColoriT-T: 1.43 G). An A-ColViT graph's ``If`` nodes are counted
per branch, so a case's MACs follow the sub-layers its gates actually ran: :func:`executed_macs`.
A static export (gated-off sub-layers removed) is counted as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class MacCount:
    base: int  # outside any If
    branches: list[int] = field(default_factory=list)  # then-branch MACs of each top-level If, in graph order

    def executed(self, kept: list[bool] | None = None) -> int:
        """MACs when the If nodes whose flag in ``kept`` is True run their then-branch (all when None)."""
        if kept is None:
            return self.base + sum(self.branches)
        if len(kept) != len(self.branches):
            raise ValueError(f"{len(kept)} gate decisions for {len(self.branches)} If nodes")
        return self.base + sum(b for b, k in zip(self.branches, kept) if k)


def _dims(vi) -> list[int] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    # an unknown (batch) dimension counts as 1
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in t.shape.dim]


def _walk(graph, outer: dict[str, list[int]]) -> tuple[int, list[int]]:
    shapes = dict(outer)
    for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
        d = _dims(vi)
        if d is not None:
            shapes[vi.name] = d
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    total, branches = 0, []
    for n in graph.node:
        if n.op_type in ("MatMul", "Gemm"):
            a, o = shapes.get(n.input[0]), shapes.get(n.output[0])
            if a and o:
                k = a[-1] if not (n.op_type == "Gemm" and any(at.name == "transA" and at.i for at in n.attribute)) \
                    else a[0]
                total += int(np.prod(o)) * int(k)
        elif n.op_type == "Conv":
            w, o = shapes.get(n.input[1]), shapes.get(n.output[0])
            if w and o:
                total += int(np.prod(o)) * int(np.prod(w[1:]))
        elif n.op_type == "If":
            sub = {a.name: _walk(a.g, shapes)[0] for a in n.attribute if a.name in ("then_branch", "else_branch")}
            branches.append(sub.get("then_branch", 0))
            total += sub.get("else_branch", 0)
    return total, branches


def count_macs(path: str | Path) -> MacCount:
    import onnx
    from onnx import shape_inference

    m = onnx.load(str(path))
    m = shape_inference.infer_shapes(m, data_prop=True)
    base, branches = _walk(m.graph, {})
    return MacCount(base, branches)
