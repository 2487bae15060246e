"""Model names -> architecture and config. One table; the official timm names map onto it."""

from __future__ import annotations

from pathlib import Path

from tinct.models.acolvit import AColViT
from tinct.models.color2embed import Color2Embed, Color2EmbedConfig
from tinct.models.icolorit import IColoriT, IColoriTConfig
from tinct.runtime.errors import TinctError

ARCHITECTURES = {"icolorit": IColoriT, "acolvit": AColViT}

_SIZES = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}

# registry name -> (architecture, config overrides)
REGISTRY: dict[str, tuple[str, dict]] = {}
for _size, (_dim, _heads) in _SIZES.items():
    REGISTRY[f"icolorit-{_size}"] = ("icolorit", {"embed_dim": _dim, "num_heads": _heads})
REGISTRY["icolorit-tiny-p8"] = ("icolorit", {"embed_dim": 192, "num_heads": 3, "patch_size": 8})
REGISTRY["icolorit-tiny-p32"] = ("icolorit", {"embed_dim": 192, "num_heads": 3, "patch_size": 32})
REGISTRY["acolvit-tiny"] = ("acolvit", {"embed_dim": 192, "num_heads": 3, "use_rpb": False})
# Shipped A-ColViT models (sparsity target beta in the name); same architecture as acolvit-tiny.
REGISTRY["acolvit-tiny-0.5"] = REGISTRY["acolvit-tiny"]
REGISTRY["acolvit-tiny-0.3"] = REGISTRY["acolvit-tiny"]

# Official timm model names (args.model in official checkpoints).
OFFICIAL_NAMES = {
    "icolorit_tiny_4ch_patch16_224": "icolorit-tiny",
    "icolorit_tiny_4ch_patch8_224": "icolorit-tiny-p8",
    "icolorit_tiny_4ch_patch32_224": "icolorit-tiny-p32",
    "icolorit_small_4ch_patch16_224": "icolorit-small",
    "icolorit_base_4ch_patch16_224": "icolorit-base",
    "block_icolorit_tiny_4ch_patch16_224": "acolvit-tiny",
    "block_icolorit_small_4ch_patch16_224": "acolvit-small",
    "block_icolorit_base_4ch_patch16_224": "acolvit-base",
}
REGISTRY["acolvit-small"] = ("acolvit", {"embed_dim": 384, "num_heads": 6, "use_rpb": False})
REGISTRY["acolvit-base"] = ("acolvit", {"embed_dim": 768, "num_heads": 12, "use_rpb": False})

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "icolorit-tiny"


def config_for(name: str, **overrides) -> tuple[str, IColoriTConfig]:
    if name not in REGISTRY:
        raise TinctError(f"unknown model {name!r}; known: {', '.join(sorted(REGISTRY))}")
    arch, cfg = REGISTRY[name]
    return arch, IColoriTConfig(**{**cfg, **overrides})


def create_model(name_or_arch: str, config: IColoriTConfig | dict | None = None, **overrides):
    """A randomly initialised model (for training): a registry name, or an architecture + config."""

    if name_or_arch in ARCHITECTURES:
        if config is None:
            raise TinctError(f"architecture {name_or_arch!r} needs a config")
        cfg = config if isinstance(config, IColoriTConfig) else IColoriTConfig(**config)
        return ARCHITECTURES[name_or_arch](cfg)
    arch, cfg = config_for(name_or_arch, **overrides)
    return ARCHITECTURES[arch](cfg)


# ----------------------------------------------------------------------------- Color2Embed
# Color2Embed (models/color2embed.py) has its own config class; the two functions below extend
# config_for / create_model above to it (ViT names keep going through the originals).

ARCHITECTURES["color2embed"] = Color2Embed
CONFIG_CLASSES = {"icolorit": IColoriTConfig, "acolvit": IColoriTConfig, "color2embed": Color2EmbedConfig}
# Reference model: ResNet-18 colour encoder (trained from scratch) + the official U-Net/PFFN decoder.
REGISTRY["color2embed-r18"] = ("color2embed", {"encoder": "resnet18", "decoder": "official"})
# The same decoder with an ImageNet-pretrained MobileNetV2 colour encoder (issue 17's option).
REGISTRY["color2embed-mnv2"] = ("color2embed", {"encoder": "mobilenetv2", "decoder": "official"})

_config_for_vit, _create_model_vit = config_for, create_model


def config_for(name: str, **overrides):
    if name in REGISTRY and REGISTRY[name][0] == "color2embed":
        arch, cfg = REGISTRY[name]
        return arch, Color2EmbedConfig(**{**cfg, **overrides})
    return _config_for_vit(name, **overrides)


def create_model(name_or_arch: str, config=None, **overrides):
    if name_or_arch == "color2embed":
        cfg = config if isinstance(config, Color2EmbedConfig) else Color2EmbedConfig(**(config or {}))
        return Color2Embed(cfg)
    if name_or_arch in REGISTRY and REGISTRY[name_or_arch][0] == "color2embed":
        return Color2Embed(config_for(name_or_arch, **overrides)[1])
    return _create_model_vit(name_or_arch, config, **overrides)
