"""State-dict key maps from published Color2Embed checkpoints to ``models.color2embed.Color2Embed``.

Two layouts:

- ``official`` (zhaohengyuan1/Color2Embed, ``train.py``): a dict ``{"colorEncoder": sd,
  "colorUNet": sd, "g_optim": ..., "args": argparse.Namespace}``. ``colorEncoder`` is
  ``ColorEncoder``: ``vgg.vgg_model.*`` (a full torchvision VGG19, features + classifier; the same
  feature tensors appear again under ``vgg.vgg_feature.*``, an alias of ``vgg_model.features``) and
  ``feature2vector.{0,2,4,6,9,11,13}``. ``colorUNet`` is ``ColorUNet``: ``inc``, ``down1..4``,
  ``up1..4`` (``conv_cat``, ``conv_s``, ``SDFT.modulation`` (1x1 conv), ``SDFT.weight``
  ``[1, C, C, k, k]``) and ``outc``. Keys the forward never uses are dropped by name: the VGG
  classifier, conv5_3/conv5_4 (features 32, 34) and the ``vgg_feature`` alias (checked equal).
- ``kwentar`` (Kwentar/Color2Embed_pytorch, ``models.Color2Embed``): a bare state_dict with
  ``color_encoder.*`` (torchvision resnet18 with ``fc`` -> 512) and ``content_encoder_plus_PFFN.*``
  (``inc``, ``down{1..4}.maxpool_conv.1``, ``G{0..3}.conv``, ``F{0..3}`` modulated convs with
  ``weight_linear`` / ``bias_linear``, ``outc.conv``).

Each map is ``{source key: (tinct key, transform or None)}``; every source key must be mapped or
named as ignored, and the result is loaded strictly (``models.checkpoint.load_state_strict``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch

from tinct.models.color2embed import VGG19_RELU5_2, Color2EmbedConfig
from tinct.models.errors import CheckpointError

Transform = Callable[[torch.Tensor], torch.Tensor] | None
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
WB = ("weight", "bias")


def _err(msg: str):
    return CheckpointError(msg)


def _squeeze0(t: torch.Tensor) -> torch.Tensor:  # SDFT weight [1, C, C, k, k] -> [C, C, k, k]
    return t.reshape(t.shape[1:])


def _flat(t: torch.Tensor) -> torch.Tensor:  # 1x1 conv on a 1x1 map -> linear: [o, i, 1, 1] -> [o, i]
    return t.reshape(t.shape[0], -1)


def _add(m: dict, src: str, dst: str, names=WB, tf: Transform = None) -> None:
    for n in names:
        m[f"{src}.{n}"] = (f"{dst}.{n}", tf)


def _double_conv(m: dict, src: str, dst: str) -> None:
    """A (conv, BN, act, conv, BN, act) Sequential named ``double_conv`` -> DoubleConvBN."""
    _add(m, f"{src}.double_conv.0", f"{dst}.conv1")
    _add(m, f"{src}.double_conv.1", f"{dst}.bn1", BN)
    _add(m, f"{src}.double_conv.3", f"{dst}.conv2")
    _add(m, f"{src}.double_conv.4", f"{dst}.bn2", BN)


# ----------------------------------------------------------------------------- official layout

VGG19_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)  # torchvision features
N_USED_VGG_CONVS = sum(v != "M" for v in VGG19_RELU5_2)  # conv1_1 .. conv5_2
OFFICIAL_IGNORED = (
    re.compile(r"colorEncoder\.vgg\.vgg_model\.classifier\..*"),
    re.compile(r"colorEncoder\.vgg\.vgg_model\.features\.(32|34)\.(weight|bias)"),
    re.compile(r"colorEncoder\.vgg\.vgg_feature\..*"),  # alias of vgg_model.features
)


def official_key_map(cfg: Color2EmbedConfig) -> dict[str, tuple[str, Transform]]:
    """Keys are prefixed with the checkpoint's sub-dict: ``colorEncoder.`` / ``colorUNet.``."""
    m: dict[str, tuple[str, Transform]] = {}
    e, u = "colorEncoder.", "colorUNet."
    for j, idx in enumerate(VGG19_CONV_INDICES[:N_USED_VGG_CONVS]):
        _add(m, f"{e}vgg.vgg_model.features.{idx}", f"encoder.features.{j}")
    for j, idx in enumerate((0, 2, 4, 6)):
        _add(m, f"{e}feature2vector.{idx}", f"encoder.f2v.{j}")
    for j, idx in enumerate((9, 11, 13)):
        m[f"{e}feature2vector.{idx}.weight"] = (f"encoder.fc.{j}.weight", _flat)
        m[f"{e}feature2vector.{idx}.bias"] = (f"encoder.fc.{j}.bias", None)
    _double_conv(m, f"{u}inc", "decoder.inc")
    for i in range(4):
        s, d = f"{u}down{i + 1}.main", f"decoder.downs.{i}"
        _add(m, f"{s}.0", f"{d}.down")
        _add(m, f"{s}.2.bottle_conv", f"{d}.proj")
        _add(m, f"{s}.2.double_conv.0", f"{d}.conv1")
        _add(m, f"{s}.2.double_conv.1", f"{d}.bn", BN)
        _add(m, f"{s}.2.double_conv.3", f"{d}.conv2")
    for i in range(4):
        s, d = f"{u}up{i + 1}", f"decoder.ups.{i}"
        _add(m, f"{s}.conv_cat.0", f"{d}.fuse1")
        _add(m, f"{s}.conv_cat.2", f"{d}.fuse2")
        _add(m, f"{s}.conv_s", f"{d}.shortcut")
        m[f"{s}.SDFT.modulation.weight"] = (f"{d}.mod.affine.weight", _flat)
        m[f"{s}.SDFT.modulation.bias"] = (f"{d}.mod.affine.bias", None)
        m[f"{s}.SDFT.weight"] = (f"{d}.mod.weight", _squeeze0)
    _add(m, f"{u}outc.0", "decoder.head1")
    _add(m, f"{u}outc.2", "decoder.head2")
    return m


def official_config(enc: dict, unet: dict) -> Color2EmbedConfig:
    """Widths and kernel sizes read from the tensor shapes."""
    try:
        return Color2EmbedConfig(
            encoder="vgg19", decoder="official", ref_preprocess="imagenet",
            emb_dim=int(enc["feature2vector.13.weight"].shape[0]),
            width=int(unet["inc.double_conv.0.weight"].shape[0]),
            enc_width=int(enc["vgg.vgg_model.features.0.weight"].shape[0]),
            kernels=tuple(int(unet[f"up{i}.SDFT.weight"].shape[-1]) for i in range(1, 5)))
    except KeyError as exc:
        raise _err(f"not an official Color2Embed checkpoint: missing {exc.args[0]!r}") from None


# ----------------------------------------------------------------------------- Kwentar layout

def kwentar_key_map(cfg: Color2EmbedConfig) -> dict[str, tuple[str, Transform]]:
    m: dict[str, tuple[str, Transform]] = {}
    e, u = "color_encoder.", "content_encoder_plus_PFFN."
    _add(m, f"{e}conv1", "encoder.conv1", ("weight",))
    _add(m, f"{e}bn1", "encoder.bn1", BN)
    for layer in range(1, 5):
        for blk in range(2):
            s, d = f"{e}layer{layer}.{blk}", f"encoder.layer{layer}.{blk}"
            _add(m, f"{s}.conv1", f"{d}.conv1", ("weight",))
            _add(m, f"{s}.bn1", f"{d}.bn1", BN)
            _add(m, f"{s}.conv2", f"{d}.conv2", ("weight",))
            _add(m, f"{s}.bn2", f"{d}.bn2", BN)
            if layer > 1 and blk == 0:
                _add(m, f"{s}.downsample.0", f"{d}.downsample.0", ("weight",))
                _add(m, f"{s}.downsample.1", f"{d}.downsample.1", BN)
    _add(m, f"{e}fc", "encoder.fc")
    _double_conv(m, f"{u}inc", "decoder.inc")
    for i in range(4):
        _double_conv(m, f"{u}down{i + 1}.maxpool_conv.1", f"decoder.downs.{i}")
        _double_conv(m, f"{u}G{i}.conv", f"decoder.ups.{i}")
        # Kwentar's style: linear(emb, weight_linear * scale, bias_linear), scale = 1/sqrt(C k^2)
        c, k = _kwentar_mod_shape(cfg, i)
        scale = 1.0 / math.sqrt(c * k * k)
        m[f"{u}F{i}.weight_linear"] = (f"decoder.mods.{i}.affine.weight", lambda t, s=scale: t * s)
        m[f"{u}F{i}.bias_linear"] = (f"decoder.mods.{i}.affine.bias", None)
        m[f"{u}F{i}.weight"] = (f"decoder.mods.{i}.weight", _squeeze0)
    _add(m, f"{u}outc.conv", "decoder.head")
    return m


def _kwentar_mod_shape(cfg: Color2EmbedConfig, i: int) -> tuple[int, int]:
    return [4, 2, 1, 1][i] * cfg.width, cfg.kernels[i]


def kwentar_config(sd: dict) -> Color2EmbedConfig:
    u = "content_encoder_plus_PFFN."
    try:
        return Color2EmbedConfig(
            encoder="resnet18", decoder="kwentar", ref_preprocess="bgr",
            emb_dim=int(sd["color_encoder.fc.weight"].shape[0]),
            width=int(sd[f"{u}inc.double_conv.0.weight"].shape[0]),
            enc_width=int(sd["color_encoder.conv1.weight"].shape[0]),
            kernels=tuple(int(sd[f"{u}F{i}.weight"].shape[-1]) for i in range(4)))
    except KeyError as exc:
        raise _err(f"not a Kwentar Color2Embed state_dict: missing {exc.args[0]!r}") from None


# ----------------------------------------------------------------------------- detection + conversion

def detect(obj: dict) -> str | None:
    """'official', 'kwentar' or None (not a Color2Embed checkpoint)."""
    if isinstance(obj.get("colorEncoder"), dict) and isinstance(obj.get("colorUNet"), dict):
        return "official"
    sd = _kwentar_state(obj)
    if sd is not None:
        return "kwentar"
    return None


def _kwentar_state(obj: dict) -> dict | None:
    for cand in (obj, obj.get("model"), obj.get("state_dict")):
        if isinstance(cand, dict) and "color_encoder.fc.weight" in cand \
                and any(str(k).startswith("content_encoder_plus_PFFN.") for k in cand):
            return cand
    return None


def apply_key_map(src: dict, key_map: dict, ignored=(), source: str = "checkpoint") -> dict:
    """Rename (and reshape/rescale) ``src``; unknown source keys are an error, ignored ones dropped."""
    out, unknown = {}, []
    for k, v in src.items():
        if k in key_map:
            dst, tf = key_map[k]
            if not isinstance(v, torch.Tensor):
                raise _err(f"{source}: {k} is a {type(v).__name__}, expected a tensor")
            out[dst] = tf(v) if tf is not None else v
        elif not any(p.fullmatch(k) for p in ignored):
            unknown.append(k)
    if unknown:
        raise _err(f"{source}: {len(unknown)} key(s) not in the Color2Embed layout, e.g. {sorted(unknown)[:3]}")
    return out


def convert(obj: dict, source: str = "checkpoint") -> tuple[Color2EmbedConfig, dict, dict]:
    """(config, tinct state_dict, card) from an official or Kwentar checkpoint dict."""
    layout = detect(obj)
    if layout == "official":
        enc, unet = obj["colorEncoder"], obj["colorUNet"]
        for k, v in enc.items():  # the alias must hold the same tensors as vgg_model.features
            if k.startswith("vgg.vgg_feature."):
                twin = enc.get("vgg.vgg_model.features." + k[len("vgg.vgg_feature."):])
                if twin is None or not torch.equal(twin, v):
                    raise _err(f"{source}: colorEncoder.{k} differs from its vgg_model.features twin")
        cfg = official_config(enc, unet)
        flat = {**{"colorEncoder." + k: v for k, v in enc.items()}, **{"colorUNet." + k: v for k, v in unet.items()}}
        state = apply_key_map(flat, official_key_map(cfg), OFFICIAL_IGNORED, source)
        args = obj.get("args")
        card = {"source": "official-color2embed", "layout": "official",
                "args": vars(args) if args is not None and hasattr(args, "__dict__") else None}
        return cfg, state, card
    if layout == "kwentar":
        sd = _kwentar_state(obj)
        cfg = kwentar_config(sd)
        state = apply_key_map(sd, kwentar_key_map(cfg), (), source)
        return cfg, state, {"source": "kwentar-color2embed", "layout": "kwentar"}
    raise _err(f"{source}: not a Color2Embed checkpoint")
