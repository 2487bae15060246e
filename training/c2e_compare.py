"""Compare Color2Embed checkpoints on the validation split: ``python -m tinct.training.c2e_compare A B ...``.

For each checkpoint, at ``--size`` (default 256): the own-reference PSNR (reference = the photo's own
TPS-warped version, the validator of :mod:`training.color2embed_train`) and how saturated the results are:
the mean |a|, |b| of the colorized photos in CIE Lab next to the photos' own (a muted model stays well below
it). This is the "looks less muted" check of issue 17 as a number.
"""

from __future__ import annotations

import argparse

import numpy as np

from tinct.runtime.color import rgb_to_lab
from tinct.runtime.evaluation import compose_rgb, psnr


def mean_chroma(rgb: np.ndarray) -> float:
    """Mean |a| and |b| (CIE Lab units) over every pixel of uint8 RGB images."""

    return float(np.abs(rgb_to_lab(rgb)[..., 1:]).mean())


def compare(paths, size: int = 256, limit: int | None = None, batch: int = 12) -> dict:
    import torch

    from tinct.models.checkpoint import load_model
    from tinct.training.color2embed_train import C2EValidator

    v = C2EValidator(size, None, limit)
    out = {"size": size, "images": len(v.names), "truth_mean_abs_ab": round(mean_chroma(v.images), 3), "models": {}}
    for path in paths:
        model = load_model(path).eval()
        preds = []
        for s in range(0, len(v.names), batch):
            ref = torch.from_numpy(np.ascontiguousarray(np.moveaxis(v.refs["tps"][s:s + batch], -1, 1))).float()
            with torch.no_grad():
                ab = model(torch.from_numpy(v.l_n[s:s + batch]), ref).float().numpy()
            preds.append(compose_rgb(v.l_n[s:s + batch, 0], ab))
        rgb = np.concatenate(preds)
        out["models"][str(path)] = {"own_ref_psnr": round(float(psnr(rgb, v.images).mean()), 4),
                                    "mean_abs_ab": round(mean_chroma(rgb), 3)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="Color2Embed checkpoints (.safetensors)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--limit", type=int, default=None, help="the first N validation photos (default: all)")
    args = ap.parse_args(argv)
    res = compare(args.models, args.size, args.limit)
    print(f"{res['images']} validation photos at {res['size']}x{res['size']}; their own mean |ab| "
          f"{res['truth_mean_abs_ab']:.2f}")
    for path, r in res["models"].items():
        print(f"{path}: own-ref. PSNR {r['own_ref_psnr']:.2f} dB, mean |ab| {r['mean_abs_ab']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
