"""Checkpoint I/O: official ``.pth`` pickles (safely), and tinct's safetensors + JSON model card.

``load_model(source)`` accepts
- a registry name with shipped weights (``weights/<name>.safetensors`` + ``weights/<name>.json``);
- one of our checkpoints (``.safetensors`` with a ``.json`` card beside it);
- an official checkpoint (``.pth``: a dict with ``model`` (a state_dict) and ``args`` (an
  argparse Namespace naming the architecture)). Official pickles are read with
  ``torch.load(weights_only=True)`` and an allow-list of one extra class (argparse.Namespace);
  anything else inside is refused, never executed.

The model comes back in eval mode. Architecture mismatches are clear one-line errors.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import torch

from tinct.models.errors import CheckpointError
from tinct.models.icolorit import IColoriTConfig
from tinct.models.registry import ARCHITECTURES, OFFICIAL_NAMES, REGISTRY, WEIGHTS_DIR, config_for
from tinct.runtime.artifact import sha256_file

SAFE_GLOBALS = [argparse.Namespace]




# ----------------------------------------------------------------------------- official pickles

def read_official(path: str | Path) -> dict:
    """Unpickle an official checkpoint without executing code. Returns the top-level dict."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        hint = ""
        for line in msg.splitlines():
            if "Unsupported global" in line or "GLOBAL" in line:
                hint = line.strip().split("Unsupported global:")[-1].strip()
                break
        if not hint:  # not an allow-list refusal: the file is not a valid pickle at all
            raise CheckpointError(f"cannot read checkpoint {path}: {_not_a_checkpoint(exc)}") from None
        raise CheckpointError(
            f"refusing to load {path}: the pickle contains an object that is not allow-listed"
            + (f" ({hint})" if hint else "") + "; tinct only reads tensors, plain containers and "
            "argparse.Namespace from official checkpoints") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        raise CheckpointError(f"cannot read checkpoint {path}: "
                              f"{lines[0] if lines else _not_a_checkpoint(exc)}") from None
    except (KeyError, IndexError, TypeError, AttributeError) as exc:  # garbage bytes in the unpickler
        raise CheckpointError(f"cannot read checkpoint {path}: {_not_a_checkpoint(exc)}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj


def _not_a_checkpoint(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "Unsupported" in ln), lines[-1] if lines else "")
    return f"not a PyTorch checkpoint, or corrupt ({type(exc).__name__}{': ' + detail if detail else ''})"


def infer_official_arch(state: dict, args) -> tuple[str, IColoriTConfig]:
    """Architecture from ``args.model`` when present, cross-checked against the tensor shapes."""
    if "patch_embed.proj.weight" not in state:
        raise CheckpointError("not an iColoriT/A-ColViT state_dict: no 'patch_embed.proj.weight'")
    w = state["patch_embed.proj.weight"]
    dim, in_chans, patch = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    is_acolvit = "policy_token" in state
    use_rpb = any(k.endswith("attn.rpb_table") for k in state)
    heads = None
    if use_rpb:
        heads = int(state["blocks.0.attn.rpb_table"].shape[1])
    name = getattr(args, "model", None) if args is not None else None
    if name is not None:
        if name not in OFFICIAL_NAMES:
            raise CheckpointError(f"unknown official architecture {name!r}; known: {', '.join(OFFICIAL_NAMES)}")
        arch, cfg = config_for(OFFICIAL_NAMES[name])
        if (arch == "acolvit") != is_acolvit:
            raise CheckpointError(f"args.model is {name!r} but the weights are "
                                  f"{'A-ColViT' if is_acolvit else 'iColoriT'}")
        heads = cfg.num_heads
    else:
        arch = "acolvit" if is_acolvit else "icolorit"
        heads = heads or {192: 3, 384: 6, 768: 12}.get(dim)
        if heads is None:
            raise CheckpointError(f"cannot tell the number of heads for embed_dim {dim}; the checkpoint has no args")
    head_mode = getattr(args, "head_mode", "cnn") if args is not None else "cnn"
    if head_mode != "cnn":
        raise CheckpointError(f"head_mode {head_mode!r} is not supported (tinct implements the 'cnn' head)")
    cfg = IColoriTConfig(
        img_size=int(getattr(args, "input_size", 224) or 224), patch_size=patch, in_chans=in_chans,
        embed_dim=dim, depth=depth, num_heads=heads, use_rpb=use_rpb,
        mask_cent=bool(getattr(args, "mask_cent", False)), avg_hint=bool(getattr(args, "avg_hint", True)))
    return arch, cfg


# ----------------------------------------------------------------------------- strict loading

def load_state_strict(model: torch.nn.Module, state: dict, source: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) e.g. {unexpected[:3]}")
        raise CheckpointError(f"{source}: state_dict does not match the {model.arch} architecture: "
                              + "; ".join(parts))
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{source}: shape mismatch for {k}: checkpoint {tuple(v.shape)}, "
                                  f"model {tuple(own[k].shape)}")
    state = {k: (v.to(own[k].dtype) if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(state, strict=True)


# ----------------------------------------------------------------------------- tinct format

def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_model(model: torch.nn.Module, path: str | Path, card: dict | None = None,
               dtype: torch.dtype = torch.float32) -> Path:
    """Write ``path`` (.safetensors) and its JSON card. Floating tensors are stored as ``dtype``."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous()
             for k, v in model.state_dict().items()}
    meta = {"architecture": model.arch, "config": json.dumps(model.cfg.to_dict())}
    tmp = path.with_suffix(".safetensors.tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    full_card = {"architecture": model.arch, "config": model.cfg.to_dict(),
                 "weights_dtype": str(dtype).replace("torch.", ""), "weights_sha256": sha256_file(path),
                 **(card or {})}
    tmp_card = card_path(path).with_suffix(".json.tmp")
    tmp_card.write_text(json.dumps(full_card, indent=2) + "\n")
    tmp_card.replace(card_path(path))
    return path


def read_tinct(path: Path) -> tuple[str, IColoriTConfig, dict, dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card_file = card_path(path)
    card = json.loads(card_file.read_text()) if card_file.is_file() else {}
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    arch = meta.get("architecture") or card.get("architecture")
    config = json.loads(meta["config"]) if "config" in meta else card.get("config")
    if arch not in ARCHITECTURES or config is None:
        raise CheckpointError(f"{path}: no architecture/config metadata (expected a tinct checkpoint)")
    from tinct.models.registry import CONFIG_CLASSES  # Color2Embed has its own config class

    return arch, CONFIG_CLASSES.get(arch, IColoriTConfig)(**config), state, card


# ----------------------------------------------------------------------------- entry point

def resolve_source(source: str | Path) -> Path | None:
    """A registry name with shipped weights -> its safetensors path; a path -> itself."""
    s = str(source)
    if s in REGISTRY:
        p = WEIGHTS_DIR / f"{s}.safetensors"
        return p if p.is_file() else None
    return Path(s)


def load_model(source: str | Path, with_card: bool = False):
    """Load a model in eval mode (see the module docstring). ``with_card`` -> (model, card)."""
    s = str(source)
    path = resolve_source(s)
    if path is None:
        raise CheckpointError(f"model {s!r} has no shipped weights in {WEIGHTS_DIR}; pass a checkpoint "
                              "path (an official .pth or a tinct .safetensors)")
    if not path.is_file():
        raise CheckpointError(f"no such model or checkpoint: {s!r} (registry names: {', '.join(sorted(REGISTRY))})")
    if path.suffix == ".safetensors":
        arch, cfg, state, card = read_tinct(path)
    elif path.suffix in (".pth", ".pt", ".ckpt", ".bin"):
        obj = read_official(path)
        from tinct.models import color2embed_keys  # Color2Embed layouts (official, Kwentar)

        if color2embed_keys.detect(obj):
            arch = "color2embed"
            cfg, state, card = color2embed_keys.convert(obj, str(path))
        else:
            state = obj.get("model", obj.get("state_dict"))
            if not isinstance(state, dict):
                raise CheckpointError(f"{path}: no 'model' state_dict in the checkpoint")
            arch, cfg = infer_official_arch(state, obj.get("args"))
            card = {"source": "official", "args": vars(obj["args"]) if obj.get("args") is not None else None}
    else:
        raise CheckpointError(f"{path}: unsupported checkpoint type {path.suffix!r} (.safetensors or .pth)")
    model = ARCHITECTURES[arch](cfg)
    load_state_strict(model, state, str(path))
    model.eval()
    card = {**card, "source_path": str(path), "source_sha256": sha256_file(path)}
    model.card = card
    return (model, card) if with_card else model
