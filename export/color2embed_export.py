"""Color2Embed -> two ONNX graphs with tinct metadata, checked for parity on real photos.

Graphs (opset 18, ``torch.onnx.export(dynamo=True)`` as :mod:`export.onnx_export`; batch ``N``,
height and width dynamic, H and W multiples of 16):

- the colour encoder (architecture ``color2embed-encoder``): ``ref`` float32 [N,3,H,W] sRGB in
  [0, 1] -> ``emb`` float32 [N,E]; the reference preprocessing (ImageNet mean/std or BGR) is inside;
- the colorizer (``color2embed-colorizer``): ``l_n`` float32 [N,1,H,W] = (L-50)/100 and ``emb``
  [N,E] -> ``ab`` float32 [N,2,H,W] = ab/110.

The modulated convolutions are exported through :class:`FoldedModulatedConv`: ``W * scale`` and
``sum_{kh,kw} (W * scale)^2`` are computed once in PyTorch and stored as buffers, so they are
initializers in the graph, not runtime ops (the exporter's own constant folding gives up on large
tensors: measured, the 9216-element weight of a width-8 model's first up block stayed a Mul/Pow/
ReduceSum chain). :func:`foldable_nodes` checks that no node with only constant inputs is left.

Output naming: ``-o OUT`` (or ``OUT.onnx``) writes ``OUT-encoder.onnx`` and ``OUT-colorizer.onnx``;
``-o DIR/`` (an existing directory, or a path ending in a separator) writes
``DIR/<model>-encoder.onnx`` and ``DIR/<model>-colorizer.onnx``. The colorizer's metadata names its
encoder (``extra.encoder`` file name and ``extra.encoder_sha256``), which the runtime uses to find it.

Parity (before anything is renamed into place): ONNX Runtime vs PyTorch eager on the sample photos
(else the validation images; never noise) at :data:`PARITY_SIZES`, batch 2, every photo colorized
with the next photo as reference: max |d emb| and max |d ab_n| (the colorizer fed with PyTorch's
embedding, and end to end through both graphs) must be <= ``tol`` (1e-4).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from tinct.export.onnx_export import resolve_model
from tinct.export.torch_onnx import DEFAULT_OPSET, EXAMPLE_BATCH, ExportError, export_graph, write_checked
from tinct.models.color2embed import ModulatedConv2d
from tinct.models.registry import REGISTRY
from tinct.runtime.artifact import (
    C2E_COLORIZER,
    C2E_ENCODER,
    C2E_PROTOCOLS,
    ArtifactMeta,
    set_onnx_props,
    sha256_file,
)
from tinct.runtime.color import rgb_to_lab_n
from tinct.runtime.errors import TinctError
from tinct.verify.compare import OutputDiff
from tinct.verify.parity import DEFAULT_TOL, ParityError
from tinct.verify.predictors import ColorizerPredictor, EncoderPredictor
from tinct.verify.probes import IMAGE_SUFFIXES, MAX_IMAGES, find_parity_photos, load_photo

PARITY_SIZES = (256, 192)
MULTIPLE = 16
MAX_SIDE = 4096


def is_color2embed(source) -> bool:
    """A registry name, checkpoint or module of the Color2Embed architecture."""
    if isinstance(source, nn.Module):
        return getattr(source, "arch", "") == "color2embed"
    s = str(source)
    if s in REGISTRY:
        return REGISTRY[s][0] == "color2embed"
    p = Path(s)
    if p.suffix == ".safetensors" and p.is_file():

        card = p.with_suffix(".json")
        if card.is_file():
            try:
                return json.loads(card.read_text()).get("architecture") == "color2embed"
            except (OSError, ValueError):
                return False
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(p), "pt") as f:
                return (f.metadata() or {}).get("architecture") == "color2embed"
        except (SafetensorError, OSError):
            return False  # not readable: the checkpoint loader says so in one line
    if p.suffix in (".pth", ".pt", ".ckpt", ".bin") and p.is_file():
        from tinct.models import color2embed_keys
        from tinct.models.checkpoint import read_official

        return bool(color2embed_keys.detect(read_official(p)))
    return False


def output_paths(out, model_name: str) -> tuple[Path, Path]:
    """(encoder path, colorizer path) for ``-o OUT`` (see the module docstring)."""
    s = str(out)
    p = Path(s)
    if p.is_dir() or s.endswith(("/", os.sep)):
        stem = Path(model_name).stem if Path(model_name).suffix else model_name
        base = p / stem
    else:
        base = p.with_suffix("") if p.suffix.lower() == ".onnx" else p
    return base.with_name(base.name + "-encoder.onnx"), base.with_name(base.name + "-colorizer.onnx")


# ----------------------------------------------------------------------------- export-only views

class FoldedModulatedConv(nn.Module):
    """:class:`models.color2embed.ModulatedConv2d` with ``W * scale`` and its per-(out, in) squared
    sums precomputed as buffers (same arithmetic as the reference forward)."""

    def __init__(self, mod: ModulatedConv2d):
        super().__init__()
        self.affine, self.kernel = mod.affine, mod.kernel
        with torch.no_grad():
            w = mod.weight * mod.scale
            self.register_buffer("w", w.detach().clone())
            self.register_buffer("wsq", w.pow(2).sum(dim=(2, 3)).detach().clone())

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        s = self.affine(emb)
        d = torch.rsqrt(torch.nn.functional.linear(s * s, self.wsq) + 1e-8)
        y = torch.nn.functional.conv2d(x * s[:, :, None, None], self.w, padding=self.kernel // 2)
        return y * d[:, :, None, None]


def folded_copy(model: nn.Module) -> nn.Module:
    """A deep copy of the model (eval) whose modulated convs are :class:`FoldedModulatedConv`."""
    m = copy.deepcopy(model).eval()
    for name, mod in list(m.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, ModulatedConv2d):
                setattr(mod, child_name, FoldedModulatedConv(child))
    return m


class EncoderGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ref: torch.Tensor) -> torch.Tensor:
        return self.model.encode_reference(ref)


class ColorizerGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, l_n: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.model.colorize(l_n, emb)


def to_onnx_protos(model: nn.Module, opset: int = DEFAULT_OPSET):
    """(encoder proto, colorizer proto) of a Color2Embed model (see the module docstring)."""
    folded = folded_copy(model)
    n = torch.export.Dim("N", min=1, max=MAX_SIDE)
    hw = {2: MULTIPLE * torch.export.Dim("h16", min=1, max=MAX_SIDE // MULTIPLE),
          3: MULTIPLE * torch.export.Dim("w16", min=1, max=MAX_SIDE // MULTIPLE)}
    e = model.cfg.emb_dim
    ex_h, ex_w = 4 * MULTIPLE, 6 * MULTIPLE  # non-square example: keeps H and W distinct symbols
    enc = export_graph(EncoderGraph(folded), (torch.rand(EXAMPLE_BATCH, 3, ex_h, ex_w),), ["ref"], ["emb"],
                       {"ref": {0: n, **hw}}, opset)
    col = export_graph(ColorizerGraph(folded), (torch.rand(EXAMPLE_BATCH, 1, ex_h, ex_w) - 0.5,
                                                torch.randn(EXAMPLE_BATCH, e)),
                       ["l_n", "emb"], ["ab"], {"l_n": {0: n, **hw}, "emb": {0: n}}, opset)
    return enc, col


def foldable_nodes(proto) -> list[str]:
    """Nodes (other than Constant) whose inputs are all initializers or constants: work a constant
    folder should have done at export time. Empty for a correctly exported colorizer."""
    g = proto.graph
    const = {i.name for i in g.initializer} | {o for nd in g.node if nd.op_type == "Constant" for o in nd.output}
    return [f"{nd.op_type}:{nd.name}" for nd in g.node
            if nd.op_type != "Constant" and nd.input and all(i in const for i in nd.input if i)]


# ----------------------------------------------------------------------------- parity inputs

def parity_batch(size: int, images=None) -> tuple[np.ndarray, np.ndarray]:
    """(l_n [K,1,s,s], ref [K,3,s,s]) from real photos; photo i's reference is photo i+1."""
    if images is None:
        paths = find_parity_photos()
    elif isinstance(images, (str, Path)) and Path(images).is_dir():
        paths = sorted(p for p in Path(images).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:MAX_IMAGES]
    else:
        paths = [Path(p) for p in ([images] if isinstance(images, (str, Path)) else images)]
    if len(paths) < 2:
        raise TinctError("the Color2Embed parity check needs at least 2 photos (one is the other's reference)")
    rgb = np.stack([load_photo(p, size) for p in paths])
    l_n = rgb_to_lab_n(rgb)[..., 0][:, None]
    ref = np.moveaxis(rgb.astype(np.float32) / 255.0, -1, 1)
    return np.ascontiguousarray(l_n, np.float32), np.ascontiguousarray(np.roll(ref, -1, axis=0), np.float32)


def check_parity(model: nn.Module, enc_path, col_path, *, sizes=PARITY_SIZES, images=None,
                 tol: float = DEFAULT_TOL, batch: int = 2) -> dict:
    """Both graphs as the runtime opens them vs PyTorch eager; raises :class:`tinct.verify.parity.ParityError`."""
    enc, col = EncoderPredictor(enc_path, threads=0), ColorizerPredictor(col_path, threads=0)
    model.eval()
    diffs = {"emb": OutputDiff(), "ab": OutputDiff(), "ab_end_to_end": OutputDiff()}
    n = 0
    for size in sizes:
        if size % MULTIPLE:
            raise TinctError(f"parity size {size} is not a multiple of {MULTIPLE}")
        l_n, ref = parity_batch(size, images)
        for s in range(0, len(l_n), batch):
            lb, rb = l_n[s:s + batch], ref[s:s + batch]
            with torch.no_grad():
                emb_t = model.encode_reference(torch.from_numpy(rb))
                ab_t = model.colorize(torch.from_numpy(lb), emb_t).numpy()
            emb_t = emb_t.numpy()
            emb_o = enc(np.moveaxis(rb, 1, -1))
            diffs["emb"].add(emb_t, emb_o)
            diffs["ab"].add(ab_t, col(lb, emb_t))
            diffs["ab_end_to_end"].add(ab_t, col(lb, emb_o))
            n += len(lb)
    err = {k: d.max_abs for k, d in diffs.items()}
    report = {f"parity_max_abs_{k}": v for k, v in err.items()}
    report.update(parity_max_abs=max(err.values()), parity_tol=tol,
                  parity_inputs=f"{n} (photos x sizes {list(sizes)}, reference = next photo), batch {batch}, "
                                "onnxruntime CPU vs torch eager fp32")
    if not report["parity_max_abs"] <= tol:
        worst = ", ".join(f"{k} {v:.3g}" for k, v in err.items())
        raise ParityError(f"parity check failed for the Color2Embed graphs: max |d| {worst} (tol {tol:g})")
    return report


# ----------------------------------------------------------------------------- entry point

def export_color2embed(model_or_source, out, *, opset: int = DEFAULT_OPSET, check: bool = True, images=None,
                       sizes=PARITY_SIZES, tol: float = DEFAULT_TOL,
                       model_name: str | None = None) -> tuple[Path, Path]:
    """Export the two graphs (see the module docstring); returns (encoder path, colorizer path).
    Both files are written only when parity holds (each through a temporary file and a rename)."""
    model, name, source_sha, sha_of = resolve_model(model_or_source, model_name)
    if getattr(model, "arch", "") != "color2embed":
        raise ExportError(f"{name} is a {getattr(model, 'arch', '?')} model, not Color2Embed")
    enc_out, col_out = output_paths(out, name)
    was_training = model.training
    model.eval()
    try:
        enc, col = to_onnx_protos(model, opset)
        left = foldable_nodes(col) + foldable_nodes(enc)
        if left:
            raise ExportError(f"constant subgraphs left unfolded in the exported graphs: {', '.join(left[:5])}")
        base = {"exporter": "torch.onnx.export(dynamo=True)", "opset": opset, "source_sha256_of": sha_of,
                "dynamic_axes": "N, H, W (H, W multiples of 16)",
                "folded": "modulated conv W*scale and sum(W^2) precomputed (initializers)"}

        def stamp(proto, arch, extra):
            meta = ArtifactMeta(model=name, architecture=arch, config=model.cfg.to_dict(), precision="fp32",
                                source_sha256=source_sha, hint_protocol=dict(C2E_PROTOCOLS[arch]), extra=extra)
            set_onnx_props(proto, meta.to_props())

        def check_enc(tmp_enc):
            def check_col(tmp_col):
                rep = check_parity(model, tmp_enc, tmp_col, sizes=sizes, images=images, tol=tol) if check \
                    else {"parity_max_abs": None, "parity": "skipped (--no-check)"}
                stamp(enc, C2E_ENCODER, {**base, **rep, "outputs": ["emb"], "colorizer": col_out.name})
                onnx.save_model(enc, tmp_enc)
                stamp(col, C2E_COLORIZER, {**base, **rep, "outputs": ["ab"], "encoder": enc_out.name,
                                           "encoder_sha256": sha256_file(tmp_enc)})
            write_checked(col, col_out, check_col)

        # provisional metadata: the runtime reads the graphs it checks like any artifact
        stamp(enc, C2E_ENCODER, {**base, "outputs": ["emb"], "colorizer": col_out.name})
        stamp(col, C2E_COLORIZER, {**base, "outputs": ["ab"], "encoder": enc_out.name})
        write_checked(enc, enc_out, check_enc)
    finally:
        model.train(was_training)
    return enc_out, col_out
