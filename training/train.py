"""Training recipes: iColoriT from scratch and A-ColViT fine-tuning, on CPU or CUDA.

Recipe (paper and official code): AdamW lr 5e-4, betas (0.9, 0.95), weight decay 0.05 (not on
biases, norms and other 1-D parameters), linear warm-up from 1e-6 then cosine to 1e-5; Huber loss
(delta 0.01) on normalized ab; hints from the shared simulator (count uniform 0..128, distinct
cells, 2x2 mean colours). A-ColViT: initialised from an iColoriT checkpoint, Gumbel-sigmoid gates
(temperature 5, straight-through), loss Huber + (mean gate - beta)^2.

Resumable: ``<out>/last.pt`` holds model, optimizer, step and RNG states (never shipped). The
final model is written as ``<out>/model.safetensors`` with its card (validation PSNR included).
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tinct.data.corpus import manifest_sha256
from tinct.data.photos import CropSampler, load_train_photos, load_val, val_dir
from tinct.models.checkpoint import load_model, resolve_source, save_model
from tinct.models.registry import create_model
from tinct.runtime.artifact import sha256_file
from tinct.runtime.color import rgb_to_lab_n
from tinct.runtime.cpu import cpu_name, has_native_bf16
from tinct.runtime.evaluation import gray_baseline_psnr, psnr_at_k
from tinct.runtime.hints import (
    HintError,
    encode_from_lab,
    find_hint_file,
    mask_from_coords,
    read_hint_file,
    sample_training_masks,
)
from tinct.training.losses import huber_loss, sparsity_loss

CARD_HINT_COUNTS = (0, 1, 2, 5, 10, 20, 50)


@dataclass
class TrainConfig:
    model: str = "icolorit-tiny"
    out: str = "runs/icolorit-tiny"
    steps: int = 2000
    batch: int = 32
    lr: float = 5e-4
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 0.05
    betas: tuple = (0.9, 0.95)
    max_hints: int = 128
    init: str | None = None  # iColoriT checkpoint to start from (A-ColViT fine-tuning)
    beta: float | None = None  # A-ColViT sparsity target
    device: str = "auto"
    bf16: bool = True  # autocast: bf16 on CUDA, and on CPUs with native bf16
    compile: bool = False
    threads: int | None = None
    seed: int = 0
    val_every: int = 500
    val_counts: tuple = (1, 10)
    save_every: int = 100
    cache: str | None = None
    model_overrides: dict = field(default_factory=dict)  # config overrides, e.g. {"depth": 2} for smoke runs


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * step / max(1, cfg.warmup_steps)
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_checkpoint(ckpt: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    device: torch.device) -> tuple[int, float]:
    """Resume from ``ckpt`` when it exists (model, optimizer, torch RNG); returns (step, wall seconds)."""
    if not ckpt.is_file():
        return 0, 0.0
    state = torch.load(ckpt, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    torch.set_rng_state(state["torch_rng"])
    print(f"resumed from {ckpt} at step {state['step']}")
    return state["step"], state.get("wall", 0.0)


def save_checkpoint(ckpt: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, wall: float,
                    cfg) -> None:
    """Atomically write the resumable state (never shipped: ``tinct ship`` writes the weights)."""
    tmp = ckpt.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "wall": wall,
                "torch_rng": torch.get_rng_state(), "cfg": asdict(cfg)}, tmp)
    tmp.replace(ckpt)


def load_parent(init: str):
    """The model a run starts from and its record for the new card (hashed now: the file may be
    replaced while the run trains): path, sha256, name, data manifest, images seen, its own parent."""
    base, base_card = load_model(init, with_card=True)
    trained = base_card.get("training", {})
    parent = {"path": str(init), "weights_sha256": sha256_file(resolve_source(str(init))),
              "name": base_card.get("name"), "data_manifest_sha256": base_card.get("data", {}).get("manifest_sha256"),
              "images_seen": trained.get("images_seen"), "wall_time_s": trained.get("wall_time_s"),
              **({"init": trained["init"]} if "init" in trained else {})}
    return base, parent


def training_batch(rgb: np.ndarray, rng, max_hints: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 crops ``[N, H, W, 3]`` -> (model input with simulated hints, target normalized ab ``[N, 2, H, W]``)."""
    lab_n = rgb_to_lab_n(rgb)
    x = encode_from_lab(lab_n, sample_training_masks(rng, len(rgb), max_hints))
    return x, np.ascontiguousarray(np.moveaxis(lab_n[..., 1:], -1, 1))


def training_loss(fwd, is_gated: bool, x, target, beta, use_bf16: bool, device_type: str):
    """The recipe's loss for one batch: Huber on normalized ab (+ A-ColViT's sparsity term), the forward
    under bf16 autocast when ``use_bf16``. Returns (loss, Huber part, gates or None)."""
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=use_bf16):
        if is_gated:
            pred, gates = fwd(x)
            loss_col = huber_loss(pred.float(), target)
            return loss_col + sparsity_loss(gates.float(), beta), loss_col, gates
        pred = fwd(x)
        loss_col = huber_loss(pred.float(), target)
        return loss_col, loss_col, None


def speed_step(cfg: TrainConfig, bf16: bool, seed: int = 0):
    """A callable that runs one optimizer step of ``cfg``'s recipe (model, AdamW, loss, autocast when
    ``bf16``) on one fixed batch of random crops with simulated hints, for timing: images/s does not
    depend on the pixels. Each call of :func:`speed_step` makes its own model (``step.model``), which the step
    trains."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = create_model(cfg.model, **cfg.model_overrides)
    is_gated = getattr(model, "arch", "") == "acolvit"
    size = model.cfg.img_size
    x, target = (torch.from_numpy(a) for a in training_batch(
        rng.integers(0, 256, (cfg.batch, size, size, 3), dtype=np.uint8), rng, cfg.max_hints))
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    fwd = model.forward_with_gates if is_gated else model
    beta = 0.5 if cfg.beta is None else cfg.beta
    model.train()

    def step():
        loss, _, _ = training_loss(fwd, is_gated, x, target, beta, bf16, "cpu")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"loss is {loss.item()}")

    step.model = model
    return step


class StepClock:
    """Training wall time, excluding paused spans (validation), and the images/s of the last step."""

    def __init__(self, wall: float = 0.0):
        self.wall = wall
        self._t = time.perf_counter()

    def step(self, images: int) -> float:
        now = time.perf_counter()
        dt, self._t = now - self._t, now
        self.wall += dt
        return images / max(1e-9, dt)

    @contextlib.contextmanager
    def paused(self):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._t += time.perf_counter() - t0


class Prefetcher:
    """Runs ``make()`` in a background thread, keeping up to ``depth`` results ready for ``get()``
    (numpy releases the GIL, so data preparation overlaps the training step)."""

    def __init__(self, make, depth: int = 3):
        self.make = make
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            item = self.make()
            while not self.stop:
                try:
                    self.q.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def get(self):
        return self.q.get()

    def close(self):
        self.stop = True


class BatchMaker(Prefetcher):
    """(x, target) numpy batches: crops -> Lab -> simulated hints, prepared in the background."""

    def __init__(self, photos, batch: int, seed: int, max_hints: int, prefetch: int = 3):
        self.sampler = CropSampler(photos, seed=seed)
        self.rng = np.random.default_rng(seed + 1)
        self.batch, self.max_hints = batch, max_hints
        super().__init__(self.make_batch, prefetch)

    def make_batch(self):
        return training_batch(self.sampler.batch(self.batch), self.rng, self.max_hints)


class Validator:
    """Fixed validation images and hint files (the official-compatible generator's output)."""

    def __init__(self, cache=None, limit: int | None = None):
        self.names, self.images = load_val(cache)
        if limit:
            self.names, self.images = self.names[:limit], self.images[:limit]
        hints = val_dir(cache) / "hints"
        self.coords = {}
        # The card's counts must exist (a missing file is an error); 100 and 200 are used when present.
        for k in CARD_HINT_COUNTS + (100, 200):
            try:
                self.coords[k] = [read_hint_file(find_hint_file(hints, k, n)) for n in self.names]
            except HintError:
                if k in CARD_HINT_COUNTS:
                    raise

    def evaluate(self, model: torch.nn.Module, counts, device) -> dict:
        model.eval()

        @torch.no_grad()
        def predict(x):
            return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

        res = {str(k): round(v, 4) for k, v in psnr_at_k(predict, self.images, self.coords, counts).items()}
        gates = None
        if getattr(model, "arch", "") == "acolvit":
            kept = []
            with torch.no_grad():
                for k in counts:

                    masks = np.stack([mask_from_coords(c) for c in self.coords[k]])
                    for s in range(0, len(masks), 16):
                        x = encode_from_lab(rgb_to_lab_n(self.images[s:s + 16]), masks[s:s + 16])
                        kept.append(model.forward_with_gates(torch.from_numpy(x).to(device))[1].float().cpu())
            g = torch.cat(kept)
            gates = {"kept_ratio": round(float(g.mean()), 4),
                     "kept_attn": round(float(g[..., 0].mean()), 4),
                     "kept_mlp": round(float(g[..., 1].mean()), 4),
                     "per_block": [[round(float(v), 3) for v in row] for row in g.mean(0).tolist()]}
        return {"psnr": res, "gates": gates}


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train (or resume) iColoriT / A-ColViT per ``cfg``; returns the run directory.

    Long on purpose: one loop that reads top to bottom (data, resume, step, log, validate, checkpoint)
    is easier to audit against the papers' recipes than the same steps spread over helpers."""

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)

    parent = None
    if cfg.init:
        base, parent = load_parent(cfg.init)
        # Same architecture as the base (incl. its relative position bias), plus the gates.
        model = create_model(cfg.model, **{**cfg.model_overrides, "use_rpb": base.cfg.use_rpb})
        own, theirs = set(model.state_dict()), set(base.state_dict())
        missing, unexpected = own - theirs, theirs - own
        if unexpected or not all(k.startswith("policy_token") or ".layer_select." in k for k in missing):
            raise ValueError(f"--init {cfg.init} does not fit {cfg.model}: missing {sorted(missing)[:4]}, "
                             f"unexpected {sorted(unexpected)[:4]}")
        model.load_state_dict(base.state_dict(), strict=False)
    else:
        model = create_model(cfg.model, **cfg.model_overrides)
    model.to(device)
    is_gated = getattr(model, "arch", "") == "acolvit"
    if is_gated and cfg.beta is None:
        raise ValueError("A-ColViT training needs --beta (sparsity target)")

    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    ckpt = out / "last.pt"
    step, wall = load_checkpoint(ckpt, model, opt, device)

    use_bf16 = cfg.bf16 and (device.type == "cuda" or has_native_bf16())
    fwd = model.forward_with_gates if is_gated else model
    if cfg.compile:
        fwd = torch.compile(fwd)

    photos = load_train_photos(cfg.cache)
    # Seed the data stream by step so a resumed run sees fresh, reproducible batches.
    batches = BatchMaker(photos, cfg.batch, seed=cfg.seed * 1_000_003 + step, max_hints=cfg.max_hints)
    validator = Validator(cfg.cache)
    log = open(out / "log.jsonl", "a")
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, dynamic_ncols=True, desc="train")
    clock = StepClock(wall)
    model.train()
    while step < cfg.steps:
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        x, target = batches.get()
        x, target = torch.from_numpy(x).to(device), torch.from_numpy(target).to(device)
        loss, loss_col, gates = training_loss(fwd, is_gated, x, target, cfg.beta, use_bf16, device.type)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"loss is {loss.item()} at step {step}")
        rate = clock.step(cfg.batch)
        rec = {"step": step, "loss": round(loss.item(), 5), "huber": round(loss_col.item(), 5), "lr": lr,
               "img_s": round(rate, 2)}
        if is_gated:
            rec["gate_mean"] = round(float(gates.detach().mean()), 4)
        bar.set_postfix(loss=f"{rec['loss']:.4f}", img_s=f"{rate:.1f}",
                        **({"gate": rec["gate_mean"]} if is_gated else {}))
        bar.update(1)
        if step % cfg.val_every == 0 or step == cfg.steps:
            with clock.paused():  # validation time is not training time
                v = validator.evaluate(model, cfg.val_counts, device)
            model.train()
            rec["val"] = v
            bar.write(f"step {step}: val PSNR {v['psnr']}" + (f" kept {v['gates']['kept_ratio']}" if v["gates"] else ""))
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if step % cfg.save_every == 0 or step == cfg.steps:
            save_checkpoint(ckpt, model, opt, step, clock.wall, cfg)
    bar.close()
    batches.close()

    # Final evaluation for the model card.
    model.eval()
    final = validator.evaluate(model, CARD_HINT_COUNTS, device)
    card = {
        "name": Path(cfg.out).name,
        "data": {"manifest_sha256": manifest_sha256(), "train_photos": len(photos),
                 "val_images": len(validator.names), "train_split": "tinct data fetch (data/manifest.json)"},
        "training": {"steps": step, "batch": cfg.batch, "images_seen": step * cfg.batch,
                     "recipe": {k: v for k, v in asdict(cfg).items() if k not in ("out", "cache")},
                     "hardware": {"device": device.type, "cpu": cpu_name(), "threads": torch.get_num_threads(),
                                  "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
                     "autocast_bf16": use_bf16, "wall_time_s": round(clock.wall, 1), "torch": torch.__version__,
                     **({"init": parent} if parent else {})},
        "metrics": {"val_psnr": final["psnr"], "gray_baseline_psnr": round(gray_baseline_psnr(validator.images), 4),
                    "protocol": "iColoriT evaluate.py: uint8 RGB, per-image PSNR, MSE floor 1e-5; hints: "
                                "make_mask.py-compatible, seed 1234, 2x2 cell means"},
    }
    if final["gates"]:
        card["metrics"]["gates"] = final["gates"]
        card["training"]["beta"] = cfg.beta
    model.cpu()
    path = save_model(model, out / "model.safetensors", card)
    print(f"wrote {path}")
    return path
