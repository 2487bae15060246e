"""`tinct train`: train iColoriT or fine-tune A-ColViT (stdlib imports only at module level)."""

from __future__ import annotations

from tinct.runtime.errors import thread_count

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train iColoriT / fine-tune A-ColViT on the offline corpus (needs the 'train' extra)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a colorization model on the photo corpus fetched by 'tinct data fetch'. "
        "Resumes from OUT/last.pt when present; writes OUT/model.safetensors + OUT/model.json (model card).")
    p.add_argument("--model", default="icolorit-tiny", help="registry name of the architecture to train")
    p.add_argument("-o", "--out", required=True, help="run directory (checkpoints, log.jsonl, final model)")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    p.add_argument("--batch", type=int, default=32, help="images per step")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (AdamW)")
    p.add_argument("--warmup-steps", type=int, default=100, help="linear warm-up steps before the cosine decay")
    p.add_argument("--init", default=None, help="checkpoint to start from (A-ColViT: an iColoriT-T checkpoint)")
    p.add_argument("--beta", type=float, default=None, help="A-ColViT sparsity target (kept ratio of sub-layers)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="disable bf16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=thread_count, default=None, help="torch intra-op threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-every", type=int, default=500, help="validation PSNR@{1,10} every N steps")
    p.add_argument("--save-every", type=int, default=100, help="write OUT/last.pt every N steps")
    p.add_argument("--max-hints", type=int, default=128, help="hint count is uniform in 0..MAX")
    p.add_argument("--cache", default=None, help="data cache (default: $TINCT_DATA or ~/.cache/tinct/data)")
    p.add_argument("--size", type=int, default=None,
                   help="Color2Embed: training resolution, a multiple of 16 (default 256; 128-160 on a small CPU)")
    p.add_argument("--val-limit", type=int, default=None, help="Color2Embed: validate on the first N images")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.model.startswith("color2embed"):
        return run_color2embed(args)
    if args.size is not None or args.val_limit is not None:
        from tinct.runtime.errors import TinctError

        raise TinctError("--size / --val-limit apply to Color2Embed models only")
    from tinct.training.train import TrainConfig, train

    cfg = TrainConfig(model=args.model, out=args.out, steps=args.steps, batch=args.batch, lr=args.lr,
                      warmup_steps=args.warmup_steps, init=args.init, beta=args.beta, device=args.device,
                      bf16=args.bf16, compile=args.compile, threads=args.threads, seed=args.seed,
                      val_every=args.val_every, save_every=args.save_every, max_hints=args.max_hints,
                      cache=args.cache)
    train(cfg, progress=args.progress)
    return 0


def run_color2embed(args) -> int:
    """Color2Embed: the self-supervised recipe of training/color2embed_train.py."""
    from tinct.runtime.errors import TinctError
    from tinct.training.color2embed_train import C2ETrainConfig, train_color2embed

    if args.init or args.beta is not None or args.compile:
        raise TinctError("--init / --beta / --compile do not apply to Color2Embed training")
    cfg = C2ETrainConfig(model=args.model, out=args.out, steps=args.steps, batch=args.batch, lr=args.lr,
                         warmup_steps=args.warmup_steps, device=args.device, bf16=args.bf16, threads=args.threads,
                         seed=args.seed, val_every=args.val_every, save_every=args.save_every, cache=args.cache,
                         size=args.size or C2ETrainConfig.size, val_limit=args.val_limit)
    train_color2embed(cfg, progress=args.progress)
    return 0
