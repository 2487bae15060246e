"""`tinct ship`: turn a finished training run into shipped weights (stdlib imports only here)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ship", help="write weights/NAME.safetensors (+ model card) from a finished run (needs 'train' extra)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Evaluate RUN/model.safetensors on the validation split in FP32 and FP16, keep FP16 "
        "only if PSNR@k moves by at most --max-drop-db, and write weights/NAME.safetensors + NAME.json.")
    p.add_argument("run_dir", metavar="RUN", help="training run directory (holds model.safetensors)")
    p.add_argument("--name", required=True, help="shipped model name, e.g. icolorit-tiny")
    p.add_argument("--out-dir", default=None, help="default: the repository's weights/ folder")
    p.add_argument("--max-drop-db", type=float, default=0.01, help="FP16 acceptance threshold")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinct.models.registry import WEIGHTS_DIR
    from tinct.training.ship import ship

    ship(args.run_dir, args.name, args.out_dir or WEIGHTS_DIR, args.max_drop_db)
    return 0
