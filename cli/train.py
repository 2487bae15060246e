"""`tinct train`: train iColoriT or fine-tune A-ColViT (stdlib imports only at module level)."""

from __future__ import annotations

import argparse

from tinct.runtime.errors import bounded, thread_count

NAME = "train"
EXTRA = "train"  # the extra that installs what this command needs

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train iColoriT / fine-tune A-ColViT on the offline corpus (needs the 'train' extra)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a colorization model on the photo corpus fetched by 'tinct data fetch'. "
        "Resumes from OUT/last.pt when present; writes OUT/model.safetensors + OUT/model.json (model card).")
    p.add_argument("--model", default="icolorit-tiny", help="registry name of the architecture to train")
    p.add_argument("-o", "--out", default=None, help="run directory (checkpoints, log.jsonl, final model); required unless --speed")
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
    p.add_argument("--perceptual-weight", type=float, default=None,
                   help="Color2Embed: weight of the VGG16 relu5_2 perceptual loss (default 0: SmoothL1 only)")
    p.add_argument("--speed", action="store_true",
                   help="measure training speed instead of training: images/s of the recipe's optimizer step in "
                   "FP32 and with bf16 autocast, interleaved round-robin in one process (iColoriT / A-ColViT)")
    p.add_argument("--speed-rounds", type=bounded(1, 1000), default=8, help="--speed: timed steps per precision (1-1000)")
    p.add_argument("--json", default=None, help="--speed: also write the result as JSON here")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinct.runtime.errors import TinctError

    if args.speed:
        return run_speed(args)
    if args.out is None:
        raise TinctError("-o/--out is required (the run directory)")
    if args.model.startswith("color2embed"):
        return run_color2embed(args)
    if args.size is not None or args.val_limit is not None or args.perceptual_weight is not None:
        from tinct.runtime.errors import TinctError

        raise TinctError("--size / --val-limit / --perceptual-weight apply to Color2Embed models only")
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

    if args.beta is not None or args.compile:
        raise TinctError("--beta / --compile do not apply to Color2Embed training")
    cfg = C2ETrainConfig(model=args.model, out=args.out, steps=args.steps, batch=args.batch, lr=args.lr,
                         warmup_steps=args.warmup_steps, device=args.device, bf16=args.bf16, threads=args.threads,
                         seed=args.seed, val_every=args.val_every, save_every=args.save_every, cache=args.cache,
                         size=args.size or C2ETrainConfig.size, val_limit=args.val_limit, init=args.init,
                         perceptual_weight=args.perceptual_weight or 0.0)
    train_color2embed(cfg, progress=args.progress)
    return 0


def run_speed(args) -> int:
    """``tinct train --speed``: the recipe's step timed in FP32 and bf16 autocast, round-robin (the latency
    scheduler), on this CPU; a table, and JSON with the CPU record."""
    import json

    import torch

    from tinct.runtime.cpu import cpu_record, describe_cpu, has_native_bf16
    from tinct.runtime.errors import TinctError
    from tinct.runtime.timing import Case, Timed, run_cases
    from tinct.training.train import TrainConfig, speed_step

    if args.model.startswith("color2embed"):
        raise TinctError("--speed measures the iColoriT / A-ColViT recipe; not Color2Embed")
    if args.batch < 1 or args.batch > 1024:
        raise TinctError(f"--batch {args.batch} is outside 1..1024")
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    cfg = TrainConfig(model=args.model, batch=args.batch, beta=args.beta, max_hints=args.max_hints)
    cases = [Case(model=f"{args.model} train step b{args.batch}", backend="pytorch", precision=p, threads=threads,
                  setup=(lambda p=p: Timed(call=speed_step(cfg, bf16=(p == "bf16")))))
             for p in ("fp32", "bf16")]
    res = run_cases(cases, rounds=args.speed_rounds, warmup=2, order="rotate", progress=args.progress)
    if res.skipped:
        raise TinctError("; ".join(f"{s['precision']}: {s['reason']}" for s in res.skipped))
    cpu = cpu_record()
    out = {"model": args.model, "batch": args.batch, "threads": threads, "rounds": args.speed_rounds,
           "native_bf16": has_native_bf16(), "cpu": cpu, "torch": torch.__version__, "cases": []}
    print(f"CPU: {describe_cpu(cpu)}; torch {torch.__version__}; {threads} thread(s); batch {args.batch}")
    print(f"{'precision':<10} {'img/s (median)':>15} {'step ms':>9} {'IQR ms':>8} {'min ms':>8}")
    for r in res.results:
        img_s = args.batch * 1e3 / r["median_ms"]
        out["cases"].append({"precision": r["precision"], "img_s": round(img_s, 2),
                             **{k: round(r[k], 2) for k in ("median_ms", "iqr_ms", "min_ms", "p90_ms")}, "runs": r["runs"]})
        print(f"{r['precision']:<10} {img_s:>15.2f} {r['median_ms']:>9.1f} {r['iqr_ms']:>8.1f} {r['min_ms']:>8.1f}")
    by = {c["precision"]: c for c in out["cases"]}
    if "fp32" in by and "bf16" in by:
        out["bf16_over_fp32"] = round(by["bf16"]["img_s"] / by["fp32"]["img_s"], 3)
        note = "" if out["native_bf16"] else " (this CPU has no native bf16: the trainer keeps FP32 here)"
        print(f"bf16 autocast / FP32: {out['bf16_over_fp32']:.2f}x{note}")
    if args.json:
        from pathlib import Path

        from tinct.runtime.artifact import atomic_path

        with atomic_path(Path(args.json)) as tmp:
            tmp.write_text(json.dumps(out, indent=2) + "\n")
    return 0
