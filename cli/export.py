"""``tinct export``: a PyTorch checkpoint -> an ONNX artifact with tinct metadata, checked for parity.

Standard library only at module level; torch/onnx are imported when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export"
EXTRA = "export"  # the extra that installs what this command needs

DESCRIPTION = """\
Export an iColoriT / A-ColViT model to ONNX (fp32, opset >= 18).

  Input  x   float32 [N,4,224,224] = [L_n, a_n*m, b_n*m, m]
  Output ab  float32 [N,2,224,224] normalized ab
         gates bool  [N,depth,2]   (A-ColViT, dynamic gating only; auxiliary)

Every export is compared with the PyTorch reference in ONNX Runtime on real photos with 0, 10
and 50 hints; the file is written only when max |d ab_n| <= 1e-4 and every gate decision agrees.
"""

EPILOG = """\
examples:
  tinct export icolorit-tiny -o icolorit-tiny.onnx
  tinct export acolvit-tiny-0.5 -o acolvit.onnx                    # 24 If nodes for depth 12
  tinct export acolvit-tiny-0.5 -o acolvit-trt.onnx --gating static  # majority mask, no If
  tinct export ckpt/acolvit.pth -o a.onnx --gating static --static-gates 110111011101111011111110
  tinct export runs/c2e/model.safetensors -o c2e     # Color2Embed: c2e-encoder.onnx + c2e-colorizer.onnx
  tinct export color2embed-r18 -o engines            # existing dir: engines/color2embed-r18-{encoder,colorizer}.onnx

Color2Embed (color2embed-*) exports two graphs, checked against PyTorch on real photos at 256 and 192:
  encoder    ref float32 [N,3,H,W] sRGB in [0,1]                  -> emb [N,512]
  colorizer  l_n float32 [N,1,H,W] = (L-50)/100, emb [N,512]      -> ab  [N,2,H,W] normalized
(N, H, W dynamic; H, W multiples of 16). -o OUT (or OUT.onnx) writes OUT-encoder.onnx and
OUT-colorizer.onnx; -o DIR (an existing directory) writes DIR/<model>-encoder.onnx and -colorizer.onnx.
"""


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export", help="export a model to ONNX (with metadata and a parity check)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = p.add_argument_group("Model Options")
    model.add_argument("model", metavar="MODEL",
                       help="registry name with shipped weights (e.g. acolvit-tiny-0.5), a tinct "
                            ".safetensors or an official .pth checkpoint")
    model.add_argument("-o", "--output", metavar="OUT.onnx", required=True, type=Path,
                       help="ONNX file to write (written atomically, only when parity holds)")
    build = p.add_argument_group("Build Options")
    build.add_argument("--gating", choices=("dynamic", "static", "none"), default=None,
                       help="A-ColViT sub-layer skipping: 'dynamic' = one ONNX If per sub-layer, decided "
                            "per input (default for A-ColViT); 'static' = a fixed mask baked in, skipped "
                            "sub-layers removed, no If (for TensorRT); 'none' = iColoriT (its default)")
    build.add_argument("--static-gates", metavar="BITS", default=None,
                       help="with --gating static: 2*depth characters of 0/1, attention then MLP for "
                            "each block (e.g. 110101...); default: the majority of the model's own "
                            "decisions on the parity photos")
    build.add_argument("--opset", metavar="N", type=int, default=18, help="ONNX opset (>= 18, default 18)")
    check = p.add_argument_group("Verification Options")
    check.add_argument("--no-check", action="store_true",
                       help="skip the ONNX Runtime vs PyTorch parity check (not recommended)")
    check.add_argument("--images", metavar="DIR", default=None,
                       help="photos for the parity check and the static mask (default: "
                            "the sample photos shipped with tinct, else the validation images of 'tinct data fetch')")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from tinct.export.color2embed_export import is_color2embed

    if is_color2embed(args.model):
        return run_color2embed(args)
    from tinct.export.onnx_export import export_onnx, read_meta
    from tinct.runtime.artifact import count_ops

    if args.static_gates is not None and args.gating != "static":
        from tinct.runtime.errors import TinctError

        raise TinctError("--static-gates needs --gating static")
    out = export_onnx(args.model, args.output, gating=args.gating, static_gates=args.static_gates,
                      opset=args.opset, check=not args.no_check, images=args.images)
    meta = read_meta(out)
    import onnx

    n_if = count_ops(onnx.load(str(out)).graph, "If", recursive=False)
    err = meta.extra.get("parity_max_abs")
    parity = f"parity max |d ab_n| {err:.2e}" if err is not None else "parity not checked"
    print(f"wrote {out}: {meta.summary()}; {n_if} If node(s); {parity}")
    return 0


def run_color2embed(args: argparse.Namespace) -> int:
    """Color2Embed: two graphs (export/color2embed_export.py)."""
    from tinct.export.color2embed_export import export_color2embed
    from tinct.export.onnx_export import read_meta
    from tinct.runtime.errors import TinctError

    if args.gating not in (None, "none") or args.static_gates is not None:
        raise TinctError("--gating / --static-gates apply to A-ColViT, not Color2Embed")
    enc, col = export_color2embed(args.model, args.output, opset=args.opset, check=not args.no_check,
                                  images=args.images)
    meta = read_meta(col)
    err = meta.extra.get("parity_max_abs")
    parity = f"parity max |d| {err:.2e} (emb, ab)" if err is not None else "parity not checked"
    print(f"wrote {enc} and {col}: {meta.summary()}; {parity}")
    return 0
