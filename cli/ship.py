"""`tinct ship`: turn a finished training run into shipped weights (stdlib imports only here)."""

from __future__ import annotations

import argparse

NAME = "ship"
EXTRA = "train"  # the extra that installs what this command needs

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ship", help="write weights/NAME.safetensors (+ model card) from a finished run (needs 'train' extra)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Evaluate RUN/model.safetensors on the validation split in FP32 and FP16, keep FP16 "
        "only if PSNR@k moves by at most --max-drop-db, and write weights/NAME.safetensors + NAME.json.")
    p.add_argument("run_dir", metavar="RUN", nargs="?", default=None,
                   help="training run directory (holds model.safetensors); omit with --onnx-only")
    p.add_argument("--name", required=True, help="shipped model name, e.g. icolorit-tiny")
    p.add_argument("--out-dir", default=None, help="default: the repository's weights/ folder")
    p.add_argument("--max-drop-db", type=float, default=0.01, help="FP16 acceptance threshold")
    p.add_argument("--onnx-only", action="store_true",
                   help="only (re)write the ready-to-run ONNX of the already shipped model NAME (weights/NAME.onnx; "
                        "Color2Embed: NAME-encoder/-colorizer.onnx), which a runtime-only install runs")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from tinct.export.prebuilt import ship_onnx
    from tinct.models.registry import WEIGHTS_DIR
    from tinct.runtime.errors import TinctError
    from tinct.training.ship import ship

    if args.onnx_only:
        if args.run_dir:
            raise TinctError("--onnx-only writes the ONNX of an already shipped model: give --name only, no RUN")
    elif not args.run_dir:
        raise TinctError("give the training run directory RUN (or --onnx-only)")
    else:
        out_dir = Path(args.out_dir or WEIGHTS_DIR)
        ship(args.run_dir, args.name, out_dir, args.max_drop_db)
        if out_dir.resolve() != Path(WEIGHTS_DIR).resolve():
            # the ONNX is exported from the shipped weights in weights/: writing it here would re-export the
            # model that was there before, under the new model's name
            print(f"no ready-to-run ONNX for a model shipped into {out_dir}: it is written for weights/ only "
                  f"(copy the model there, then 'tinct ship --onnx-only --name {args.name}')")
            return 0
    ship_onnx(args.name)  # parity-checked export of what is now in weights/, bit-identical FP16 storage
    return 0
