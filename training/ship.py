"""Ship a trained run as ``weights/<name>.safetensors`` + ``weights/<name>.json``.

Weights are stored in FP16 when that costs nothing measurable: the FP16-rounded model is evaluated
on the validation split with the shared protocol, and FP16 is kept only if every PSNR@k moves by at
most ``max_drop_db`` (default 0.01 dB) against the FP32 run and, for A-ColViT, no gate decision
changes (rounding a gate Linear can flip a skip decision); otherwise FP32 is shipped. The card
records both evaluations, so the regression test can check the shipped file against it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tinct.models.checkpoint import load_model, save_model
from tinct.models.registry import WEIGHTS_DIR
from tinct.runtime.errors import TinctError
from tinct.runtime.evaluation import gray_baseline_psnr
from tinct.training.train import CARD_HINT_COUNTS, Validator


def _fp16_rounded(src: Path):
    """The model at ``src`` with every parameter rounded through FP16 (what FP16 storage would give)."""
    rounded = load_model(src)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.half().float())
    return rounded


def _strip_run_fields(card: dict, name: str) -> None:
    """Drop what save_model re-derives for the shipped file, and name the card."""
    for k in ("source_path", "source_sha256", "weights_sha256", "weights_dtype", "architecture", "config"):
        card.pop(k, None)
    card["name"] = name


def ship(run_dir: str | Path, name: str, out_dir: str | Path = WEIGHTS_DIR, max_drop_db: float = 0.01,
         cache=None) -> Path:
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    src = run_dir / "model.safetensors"
    if not src.is_file():
        raise TinctError(f"{src} does not exist: train first ('tinct train -o {run_dir} ...')")
    model, card = load_model(src, with_card=True)
    if getattr(model, "arch", "") == "color2embed":
        return _ship_color2embed(model, card, src, name, out_dir, max_drop_db, cache)
    validator = Validator(cache)
    fp32 = validator.evaluate(model, CARD_HINT_COUNTS, torch.device("cpu"))
    fp16 = validator.evaluate(_fp16_rounded(src), CARD_HINT_COUNTS, torch.device("cpu"))
    drops = {k: fp32["psnr"][k] - fp16["psnr"][k] for k in fp32["psnr"]}
    use_fp16 = max(abs(d) for d in drops.values()) <= max_drop_db
    if fp32["gates"] and fp16["gates"]:
        use_fp16 = use_fp16 and fp32["gates"]["kept_ratio"] == fp16["gates"]["kept_ratio"]
    shipped = fp16 if use_fp16 else fp32
    _strip_run_fields(card, name)
    card["metrics"]["val_psnr"] = shipped["psnr"]
    if shipped["gates"]:
        card["metrics"]["gates"] = shipped["gates"]
    card["shipping"] = {
        "dtype": "float16" if use_fp16 else "float32",
        "fp32_val_psnr": fp32["psnr"], "fp16_val_psnr": fp16["psnr"],
        "fp16_max_abs_psnr_change_db": round(max(abs(d) for d in drops.values()), 4),
        "rule": f"fp16 when every PSNR@k changes by <= {max_drop_db} dB"
                + (" and every gate decision is unchanged (same kept ratio)" if fp32["gates"] else ""),
        **({"fp16_kept_ratio": fp16["gates"]["kept_ratio"], "fp32_kept_ratio": fp32["gates"]["kept_ratio"]}
           if fp32["gates"] else {}),
        "date": time.strftime("%Y-%m-%d"),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = save_model(model, out_dir / f"{name}.safetensors", card,
                      dtype=torch.float16 if use_fp16 else torch.float32)
    print(json.dumps({"shipped": str(path), **card["shipping"]}, indent=2))
    return path


C2E_EVAL_SIZES = (256,)  # the latency target's size; the training resolution is evaluated as well


def _ship_color2embed(model, card: dict, src: Path, name: str, out_dir: Path, max_drop_db: float, cache) -> Path:
    """Color2Embed: the whole validation split at the training resolution and at 256², with both
    references (own TPS-warped / another photo); FP16 only if every PSNR moves by <= max_drop_db."""
    from tinct.training.color2embed_train import C2EValidator

    train_size = int(card["training"]["resolution"])
    sizes = sorted({train_size, *C2E_EVAL_SIZES})
    rounded = _fp16_rounded(src)

    fp32, fp16, gray = {}, {}, {}
    for size in sizes:
        v = C2EValidator(size, cache)
        fp32[str(size)] = v.evaluate(model, torch.device("cpu"))
        fp16[str(size)] = v.evaluate(rounded, torch.device("cpu"))
        gray[str(size)] = round(gray_baseline_psnr(v.images), 4)
    drops = [fp32[s]["psnr"][r] - fp16[s]["psnr"][r] for s in fp32 for r in fp32[s]["psnr"]]
    worst = max(abs(d) for d in drops)
    use_fp16 = worst <= max_drop_db
    shipped = fp16 if use_fp16 else fp32
    _strip_run_fields(card, name)
    card["metrics"] = {
        **card["metrics"],
        "training_run_val": {"val_psnr": card["metrics"].get("val_psnr"), "embedding_cosine": card["metrics"].get("embedding_cosine"),
                             "note": "the run's own final validation (its --val-limit images)"},
        "val_psnr": shipped[str(train_size)]["psnr"], "embedding_cosine": shipped[str(train_size)]["cosine"],
        "gray_baseline_psnr": gray[str(train_size)],
        "by_size": {s: {**shipped[s], "gray_baseline_psnr": gray[s]} for s in shipped},
        "protocol": card["metrics"].get("protocol", "").replace(f"at {train_size}x{train_size}",
                                                                f"all images, at {', '.join(map(str, sizes))} px"),
    }
    card["shipping"] = {
        "dtype": "float16" if use_fp16 else "float32", "fp32": fp32, "fp16": fp16,
        "fp16_max_abs_psnr_change_db": round(worst, 4),
        "rule": f"fp16 when every PSNR (each size, each reference) changes by <= {max_drop_db} dB",
        "date": time.strftime("%Y-%m-%d"),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = save_model(model, out_dir / f"{name}.safetensors", card,
                      dtype=torch.float16 if use_fp16 else torch.float32)
    print(json.dumps({"shipped": str(path), "dtype": card["shipping"]["dtype"], "by_size": card["metrics"]["by_size"],
                      "fp16_max_abs_psnr_change_db": card["shipping"]["fp16_max_abs_psnr_change_db"]}, indent=2))
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinct.training.ship", description=__doc__)
    p.add_argument("run_dir")
    p.add_argument("--name", required=True)
    p.add_argument("--out-dir", default=str(WEIGHTS_DIR))
    p.add_argument("--max-drop-db", type=float, default=0.01)
    a = p.parse_args(argv)
    ship(a.run_dir, a.name, a.out_dir, a.max_drop_db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
