"""PyTorch reference models -> ONNX, with tinct metadata and a parity check.

Route: ``torch.onnx.export(dynamo=True)`` (torch.export + the ONNX translator, opset 18 by default,
``external_data=False``). It gives a clean graph with a symbolic batch ``N`` and static spatial dims,
and it turns ``torch.cond`` into an ONNX ``If`` with both branches as subgraphs. The TorchScript
exporter would need scripting the whole model (the reference modules are not scriptable as they
are) and leaves many Shape/Gather/Constant nodes; splicing pieces by hand duplicates the model.

Graphs (input ``x`` float32 [N,4,224,224], output ``ab`` float32 [N,2,224,224]):

- iColoriT (``gating="none"``): the model as it is.
- A-ColViT, ``gating="dynamic"``: :class:`DynamicGatedAColViT`. Every block's attention and MLP
  sub-layer is an ``If`` (2 x depth of them). Its condition is computed in the graph from the policy
  token entering the block, exactly the reference's rule ``sigmoid(mlp_head(token)) > 0.5``.
  Batches: the condition is "some sample of the batch keeps the sub-layer"; the then-branch computes
  the sub-layer for the whole batch and selects per sample with ``Where``, so every sample gets
  exactly its own decision's output (the cost is that of the most demanding sample); the
  else-branch passes the tokens through. A second output ``gates`` (bool [N, depth, 2], True = the
  sub-layer ran for that sample) exposes the decisions; runtimes may ignore it.
- A-ColViT, ``gating="static"``: :class:`StaticGatedAColViT`. A fixed mask ([depth][2] bools);
  gated-off sub-layers are not in the graph at all, no ``If``, no gate Linears; for hardware where
  conditionals are slow (TensorRT). Without ``static_gates`` the mask is the majority of the
  reference's own decisions on the calibration (parity) inputs, per sub-layer (ties keep it).

Every export is written to a temporary file next to the destination, checked against the PyTorch
reference with ONNX Runtime (:mod:`tinct.verify.parity`) and renamed only when parity holds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from tinct.export.reference import torch_reference
from tinct.export.torch_onnx import DEFAULT_OPSET, EXAMPLE_BATCH, ExportError, export_graph, write_checked
from tinct.models.registry import REGISTRY
from tinct.runtime.artifact import ArtifactMeta, count_ops, read_onnx_meta, set_onnx_props
from tinct.verify import parity
from tinct.verify.predictors import ArtifactPredictor
from tinct.verify.probes import HINT_COUNTS, parity_inputs

GATINGS = ("dynamic", "static", "none")
BATCH_SEMANTICS = ("per-sample: If condition = any sample of the batch keeps the sub-layer; the then-branch "
                   "computes it for the batch and selects per sample with Where (each sample gets exactly "
                   "its own decision's output); the else-branch is identity")
GATES_OUTPUT = "gates: bool [N, depth, 2] (attention, MLP), True = the sub-layer ran; auxiliary, may be ignored"


# ----------------------------------------------------------------------------- export-only wrappers

class SkippableResidual(nn.Module):
    """``t + fn(norm(t))`` for the samples that keep the sub-layer, ``t`` for the others; exported
    as one ONNX ``If`` on ``any(keep)`` (then: compute + per-sample Where; else: identity)."""

    def __init__(self, norm: nn.Module, fn: nn.Module):
        super().__init__()
        self.norm, self.fn = norm, fn

    def run(self, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return torch.where(keep[:, None, None], t + self.fn(self.norm(t)), t)

    @staticmethod
    def skip(t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return t.clone()

    def forward(self, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return torch.cond(keep.any(), self.run, self.skip, (t, keep))


class DynamicGatedAColViT(nn.Module):
    """Export-only view of an :class:`models.acolvit.AColViT` in eval mode: x -> (ab, gates).
    Shares the model's parameters; the model itself is not changed."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.attn = nn.ModuleList(SkippableResidual(b.norm1, b.attn) for b in model.blocks)
        self.mlp = nn.ModuleList(SkippableResidual(b.norm2, b.mlp) for b in model.blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.model.embed(x)
        gates = []
        for blk, attn, mlp in zip(self.model.blocks, self.attn, self.mlp):
            g = blk.decide(t)  # [N, 2] bool, on the policy token entering the block
            t = mlp(attn(t, g[:, 0]), g[:, 1])
            gates.append(g)
        return self.model.decode(t[:, 1:]), torch.stack(gates, dim=1)


class StaticGatedAColViT(nn.Module):
    """Export-only view of an A-ColViT with a fixed mask: gated-off sub-layers are left out."""

    def __init__(self, model: nn.Module, gates: list[list[bool]]):
        super().__init__()
        self.model = model
        self.gates = [(bool(a), bool(m)) for a, m in gates]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.model.embed(x)
        for blk, (keep_attn, keep_mlp) in zip(self.model.blocks, self.gates):
            if keep_attn:
                t = t + blk.attn(blk.norm1(t))
            if keep_mlp:
                t = t + blk.mlp(blk.norm2(t))
        return self.model.decode(t[:, 1:])


# ----------------------------------------------------------------------------- helpers

def state_dict_sha256(model: nn.Module) -> str:
    """sha256 over (name, dtype, shape, bytes) of every state_dict entry in name order."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        v = v.detach().cpu().contiguous()
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}\n".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def resolve_model(model_or_source, model_name: str | None = None) -> tuple[nn.Module, str, str, str]:
    """-> (model, name, source_sha256, what the sha256 is of: "file" or "state_dict")."""
    if isinstance(model_or_source, nn.Module):
        model = model_or_source
        card = getattr(model, "card", None) or {}
        src = card.get("source_path")
        name = model_name or card.get("model") or (Path(src).stem if src else model.arch)
        if card.get("source_sha256"):
            return model, name, card["source_sha256"], "file"
        return model, name, state_dict_sha256(model), "state_dict"
    from tinct.models.checkpoint import load_model

    s = str(model_or_source)
    model, card = load_model(s, with_card=True)
    name = model_name or (s if s in REGISTRY else Path(s).stem)
    return model, name, card["source_sha256"], "file"


def parse_gates(spec, depth: int) -> list[list[bool]]:
    """[depth][2] bools from a nested list/array or a string of 2*depth '0'/'1' (attn, mlp per block)."""
    if isinstance(spec, str):
        s = spec.strip().replace(",", "").replace(" ", "")
        if len(s) != 2 * depth or set(s) - {"0", "1"}:
            raise ExportError(f"static gates {spec!r}: expected {2 * depth} characters of 0/1 "
                              f"(attention, MLP for each of {depth} blocks)")
        return [[s[2 * i] == "1", s[2 * i + 1] == "1"] for i in range(depth)]
    arr = np.asarray(spec)
    if arr.shape != (depth, 2):
        raise ExportError(f"static gates must have shape [{depth}][2], got {list(arr.shape)}")
    return [[bool(a), bool(m)] for a, m in arr.tolist()]


def majority_gates(decisions: np.ndarray) -> list[list[bool]]:
    """[K, depth, 2] bool decisions -> [depth][2]: keep where at least half the inputs keep it."""
    keep = np.asarray(decisions, dtype=np.float64).mean(axis=0) >= 0.5
    return [[bool(a), bool(m)] for a, m in keep.tolist()]


def to_onnx_proto(module: nn.Module, output_names: list[str], opset: int) -> onnx.ModelProto:
    """The export of a hint model: input ``x`` [N,4,224,224] with a symbolic batch ``N``."""
    cfg = module.model.cfg if hasattr(module, "model") else module.cfg
    example = torch.zeros(EXAMPLE_BATCH, cfg.in_chans, cfg.img_size, cfg.img_size)
    return export_graph(module, (example,), ["x"], output_names, {"x": {0: torch.export.Dim("N", min=1, max=4096)}},
                        opset)


# ----------------------------------------------------------------------------- entry point

def export_onnx(model_or_source, out_path, *, gating: str | None = None, static_gates=None,
                opset: int = DEFAULT_OPSET, check: bool = True, images=None, tol: float = parity.DEFAULT_TOL,
                model_name: str | None = None) -> Path:
    """Export a model to ONNX at ``out_path`` and return the path (see the module docstring).

    model_or_source: a registry name with shipped weights, a checkpoint path, or an nn.Module.
    gating: "dynamic" (If nodes) or "static" for A-ColViT, "none" for iColoriT; None picks
    "dynamic" for A-ColViT and "none" for iColoriT.
    static_gates: [depth][2] bools or a "1101..." string (static only); default: majority of the
    reference's decisions on the calibration photos.
    check: compare with the PyTorch reference on real photos with 0/10/50 hints (ONNX Runtime,
    batch 2); fail (TinctError, no file written) when max |d ab_n| > tol or a gate decision differs.
    images: the photos for parity/calibration (see :func:`tinct.verify.probes.parity_images`).
    """
    model, name, source_sha, sha_of = resolve_model(model_or_source, model_name)
    is_gated = hasattr(model, "forward_with_gates")
    gating = gating or ("dynamic" if is_gated else "none")
    if gating not in GATINGS:
        raise ExportError(f"unknown gating {gating!r}; choose one of {', '.join(GATINGS)}")
    if is_gated == (gating == "none"):
        raise ExportError(f"gating {gating!r} does not apply to {model.arch}: use "
                          + ("'dynamic' or 'static'" if is_gated else "'none'"))
    if static_gates is not None and gating != "static":
        raise ExportError("static gates are only used with gating 'static'")
    out = Path(out_path)
    was_training = model.training
    model.eval()
    try:
        return _export(model, out, name=name, source_sha=source_sha, sha_of=sha_of, gating=gating,
                       static_gates=static_gates, opset=opset, check=check, images=images, tol=tol)
    finally:
        model.train(was_training)


def _export(model, out: Path, *, name, source_sha, sha_of, gating, static_gates, opset, check, images,
            tol) -> Path:
    depth = model.cfg.depth
    x = parity_inputs(images) if (check or (gating == "static" and static_gates is None)) else None
    extra = {"exporter": "torch.onnx.export(dynamo=True)" + (" + torch.cond" if gating == "dynamic" else ""),
             "opset": opset, "source_sha256_of": sha_of, "outputs": ["ab"]}
    forced = None
    if gating == "none":
        module, outputs = model, ["ab"]
    elif gating == "dynamic":
        module, outputs = DynamicGatedAColViT(model), ["ab", "gates"]
        extra.update(outputs=outputs, gates_output=GATES_OUTPUT, batch_semantics=BATCH_SEMANTICS)
    else:
        decisions = torch_reference(model)(x)[1] if x is not None else None
        if static_gates is None:
            forced = majority_gates(decisions)
            extra["static_gates_from"] = (f"majority of the reference's decisions on {len(x)} calibration "
                                          "inputs per sub-layer (ties keep)")
        else:
            forced = parse_gates(static_gates, depth)
            extra["static_gates_from"] = "given"
        if decisions is not None:
            extra["static_gates_agreement"] = round(float((decisions == np.asarray(forced)).mean()), 4)
        extra["kept_sublayers"] = f"{sum(map(sum, forced))}/{2 * depth}"
        module, outputs = StaticGatedAColViT(model, forced), ["ab"]

    proto = to_onnx_proto(module, outputs, opset)
    n_if = count_ops(proto.graph, "If", recursive=False)
    if gating == "dynamic" and n_if != 2 * depth:
        raise ExportError(f"expected {2 * depth} If nodes, the exporter produced {n_if}")
    if gating != "dynamic" and count_ops(proto.graph, "If", recursive=True):
        raise ExportError("the exported graph has If nodes where none were expected")

    def stamp() -> None:
        meta = ArtifactMeta(model=name, architecture=model.arch, config=model.cfg.to_dict(), precision="fp32",
                            gating=gating, static_gates=forced, source_sha256=source_sha, extra=extra)
        set_onnx_props(proto, meta.to_props())

    def verify_and_stamp(tmp_path: str) -> None:
        if not check:
            extra.update(parity_max_abs=None, parity="skipped (--no-check)")
            return stamp()
        candidate = ArtifactPredictor.open(tmp_path, threads=0, backend="onnxruntime")  # as the runtime opens it
        try:
            report = parity.check_parity(candidate, torch_reference(model, forced), x=x, tol=tol,
                                         what=f"{name} ({gating} gating)")
        finally:
            candidate.close()
        extra.update(parity_max_abs=report.max_abs, parity_mean_abs=report.mean_abs, parity_tol=tol,
                     parity_inputs=f"{report.n_inputs} (photos x hints {list(HINT_COUNTS)}), "
                                   f"batch {report.batch}, onnxruntime CPU vs torch eager fp32",
                     parity_gate_mismatches=report.gate_mismatches if report.gates_compared else None)
        stamp()

    stamp()  # provisional metadata: the runtime reads the graph it checks like any artifact
    write_checked(proto, out, verify_and_stamp)
    return out


def read_meta(path: str | Path) -> ArtifactMeta:
    """The tinct metadata of an exported ONNX file (:func:`tinct.runtime.artifact.read_onnx_meta`)."""
    return read_onnx_meta(path)
