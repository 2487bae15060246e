"""Color2Embed checkpoint layouts (models/color2embed_keys.py): the official and Kwentar layouts loaded from
synthetic checkpoints and checked against forwards re-stated here from the published code's facts, their
errors, safe unpickling. Small widths."""

from __future__ import annotations

import argparse
import math

import pytest
import torch
import torch.nn.functional as F
from color2embed_common import SMALL, inputs, one_thread, perturb_bn, small_config  # noqa: F401 - fixtures too

from tinct.models import load_model
from tinct.models.checkpoint import CheckpointError
from tinct.models.color2embed import Color2EmbedConfig

# ----------------------------------------------------------------------------- official layout
# Restated from zhaohengyuan1/Color2Embed models.py / vgg_model.py (not via the key map).

VGG_CONVS = [(0, 1), (2, 1), (5, 2), (7, 2), (10, 4), (12, 4), (14, 4), (16, 4),
             (19, 8), (21, 8), (23, 8), (25, 8), (28, 8), (30, 8), (32, 8), (34, 8)]  # (index, x64)
VGG_POOLS = (4, 9, 18, 27)


def _bn(sd, p, c, g):
    sd[p + ".weight"] = 1 + 0.1 * torch.randn(c, generator=g)
    sd[p + ".bias"] = 0.1 * torch.randn(c, generator=g)
    sd[p + ".running_mean"] = 0.1 * torch.randn(c, generator=g)
    sd[p + ".running_var"] = 0.5 + torch.rand(c, generator=g)
    sd[p + ".num_batches_tracked"] = torch.tensor(7)


def _conv(sd, p, shape, g, bias=True, expand=False):
    if expand:  # exact shape, one stored element (stride 0): full-size layouts without the memory
        sd[p + ".weight"] = torch.randn(1).expand(*shape)
        if bias:
            sd[p + ".bias"] = torch.randn(1).expand(shape[0])
        return
    fan_in = math.prod(shape[1:])
    sd[p + ".weight"] = torch.randn(*shape, generator=g) / math.sqrt(fan_in)
    if bias:
        sd[p + ".bias"] = 0.1 * torch.randn(shape[0], generator=g)


def official_state(b=8, e=32, v=8, kernels=(3, 3, 5, 5), seed=0, expand=False):
    """(colorEncoder sd, colorUNet sd) with the official key names and shapes."""
    g = torch.Generator().manual_seed(seed)
    enc, unet = {}, {}
    cin = 3
    for idx, mult in VGG_CONVS:
        _conv(enc, f"vgg.vgg_model.features.{idx}", (mult * v, cin, 3, 3), g, expand=expand)
        cin = mult * v
    for k in [k for k in enc if k.startswith("vgg.vgg_model.features.")]:
        enc["vgg.vgg_feature." + k[len("vgg.vgg_model.features."):]] = enc[k]
    for idx, shape in ((0, (4096, 8 * v * 49)), (3, (4096, 4096)), (6, (1000, 4096))):
        _conv(enc, f"vgg.vgg_model.classifier.{idx}", shape, g, expand=True)
    for idx, shape in ((0, (e, 8 * v, 4, 4)), (2, (e, e, 3, 3)), (4, (e, e, 4, 4)), (6, (e, e, 3, 3)),
                       (9, (e // 2, e, 1, 1)), (11, (e // 2, e // 2, 1, 1)), (13, (e, e // 2, 1, 1))):
        _conv(enc, f"feature2vector.{idx}", shape, g, expand=expand)
    _conv(unet, "inc.double_conv.0", (b, 1, 3, 3), g, expand=expand)
    _bn(unet, "inc.double_conv.1", b, g)
    _conv(unet, "inc.double_conv.3", (b, b, 3, 3), g, expand=expand)
    _bn(unet, "inc.double_conv.4", b, g)
    for i, (ci, co) in enumerate([(b, 2 * b), (2 * b, 4 * b), (4 * b, 8 * b), (8 * b, 8 * b)], 1):
        _conv(unet, f"down{i}.main.0", (ci, ci, 4, 4), g, expand=expand)
        _conv(unet, f"down{i}.main.2.bottle_conv", (co, ci, 1, 1), g, expand=expand)
        _conv(unet, f"down{i}.main.2.double_conv.0", (co, co, 3, 3), g, expand=expand)
        _bn(unet, f"down{i}.main.2.double_conv.1", co, g)
        _conv(unet, f"down{i}.main.2.double_conv.3", (co, co, 3, 3), g, expand=expand)
    for i, (c_in, co) in enumerate([(16 * b, 4 * b), (8 * b, 2 * b), (4 * b, b), (2 * b, b)], 1):
        k = kernels[i - 1]
        _conv(unet, f"up{i}.conv_cat.0", (co, c_in // 2 + c_in // 8, 1, 1), g, expand=expand)
        _conv(unet, f"up{i}.conv_cat.2", (co, co, 3, 3), g, expand=expand)
        _conv(unet, f"up{i}.conv_s", (co, c_in // 2, 1, 1), g, expand=expand)
        _conv(unet, f"up{i}.SDFT.modulation", (co, e, 1, 1), g, expand=expand)
        unet[f"up{i}.SDFT.weight"] = (torch.randn(1).expand(1, co, co, k, k) if expand
                                      else torch.randn(1, co, co, k, k, generator=g))
    _conv(unet, "outc.0", (b, b, 3, 3), g, expand=expand)
    _conv(unet, "outc.2", (2, b, 3, 3), g, expand=expand)
    return enc, unet


def _bn_eval(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                        sd[p + ".bias"], False, 0.0, 1e-5)


def _c(x, sd, p, **kw):
    return F.conv2d(x, sd[p + ".weight"], sd.get(p + ".bias"), **kw)


def official_forward(enc, unet, l_n, ref, kernels):
    """The official ColorEncoder + ColorUNet in eval mode, input L = (L-50)/50, ref in [0, 1]."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (ref - mean) / std
    for idx in range(32):  # up to relu5_2
        if idx in VGG_POOLS:
            x = F.max_pool2d(x, 2, 2)
        elif f"vgg.vgg_model.features.{idx}.weight" in enc:
            x = F.relu(_c(x, enc, f"vgg.vgg_model.features.{idx}", padding=1))
    for idx, stride, pad in ((0, 2, 2), (2, 1, 1), (4, 2, 2), (6, 1, 1)):
        x = F.leaky_relu(_c(x, enc, f"feature2vector.{idx}", stride=stride, padding=pad), 0.2)
    x = F.adaptive_avg_pool2d(x, 1)
    x = F.leaky_relu(_c(x, enc, "feature2vector.9"), 0.2)
    x = F.leaky_relu(_c(x, enc, "feature2vector.11"), 0.2)
    color = _c(x, enc, "feature2vector.13")  # [B, e, 1, 1]

    def dconv(x, p, slope):
        x = F.leaky_relu(_bn_eval(_c(x, unet, p + ".0", padding=1), unet, p + ".1"), slope)
        return F.leaky_relu(_bn_eval(_c(x, unet, p + ".3", padding=1), unet, p + ".4"), slope)

    def down(x, p):
        x = F.leaky_relu(_c(x, unet, p + ".main.0", stride=2, padding=1), 0.1)
        x = _c(x, unet, p + ".main.2.bottle_conv")
        h = _c(x, unet, p + ".main.2.double_conv.0", padding=1)
        h = F.leaky_relu(_bn_eval(h, unet, p + ".main.2.double_conv.1"), 0.2)
        h = _c(h, unet, p + ".main.2.double_conv.3", padding=1)
        return (h + x) / math.sqrt(2)

    def sdft(x, p, k):
        bsz, c, h, w = x.shape
        style = _c(color, unet, p + ".modulation").view(bsz, 1, c, 1, 1)
        wt = unet[p + ".weight"] / math.sqrt(c * k * k) * style
        wt = wt * torch.rsqrt(wt.pow(2).sum([2, 3, 4]) + 1e-8).view(bsz, c, 1, 1, 1)
        out = F.conv2d(x.reshape(1, bsz * c, h, w), wt.view(bsz * c, c, k, k), padding=k // 2, groups=bsz)
        return out.view(bsz, c, h, w)

    def up(x1, x2, p, k):
        x1 = F.interpolate(x1, scale_factor=2, mode="bilinear", align_corners=False)
        s = _c(x1, unet, p + ".conv_s")
        x = torch.cat([x1, x2[:, ::4]], 1)
        x = F.leaky_relu(_c(x, unet, p + ".conv_cat.0"), 0.2)
        x = F.leaky_relu(_c(x, unet, p + ".conv_cat.2", padding=1), 0.2)
        return sdft(x, p + ".SDFT", k) + s

    x1 = dconv(l_n * 2.0, "inc.double_conv", 0.1)
    x2 = down(x1, "down1")
    x3 = down(x2, "down2")
    x4 = down(x3, "down3")
    x5 = down(x4, "down4")
    x = up(x5, x4, "up1", kernels[0])
    x = up(x, x3, "up2", kernels[1])
    x = up(x, x2, "up3", kernels[2])
    x = up(x, x1, "up4", kernels[3])
    x = F.leaky_relu(_c(x, unet, "outc.0", padding=1), 0.2)
    return torch.tanh(_c(x, unet, "outc.2", padding=1))


def _official_ckpt(enc, unet):
    args = argparse.Namespace(datasets="train_datasets/ImageNet_train_lmdb", iter=100000, batch=16,
                              size=256, ckpt=None, lr=1e-4, experiment_name="Color2Embed_1",
                              wandb=False, local_rank=0, distributed=False, start_iter=0)
    optim = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(4)}},
             "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.99), "params": [0]}]}
    return {"colorEncoder": enc, "colorUNet": unet, "g_optim": optim, "args": args}


def test_official_layout_loads_and_matches_official_forward(tmp_path):
    kernels = (3, 5, 3, 5)
    enc, unet = official_state(b=8, e=32, v=4, kernels=kernels)
    path = tmp_path / "045000.pt"
    torch.save(_official_ckpt(enc, unet), path)
    model, card = load_model(path, with_card=True)
    assert model.cfg == Color2EmbedConfig(encoder="vgg19", decoder="official", emb_dim=32, width=8,
                                          enc_width=4, kernels=kernels, ref_preprocess="imagenet")
    assert card["layout"] == "official" and card["args"]["experiment_name"] == "Color2Embed_1"
    l_n, ref = inputs(n=2, h=64, w=96, rh=64, rw=64, seed=1)
    with torch.no_grad():
        ours = model(l_n, ref)
        theirs = official_forward(enc, unet, l_n, ref, kernels)
        emb = model.encode_reference(ref)
    assert emb.shape == (2, 32)
    assert (ours - theirs).abs().max() <= 1e-5
    assert ours.abs().max() > 1e-3  # not a trivially zero comparison


def test_official_layout_full_size_shapes(tmp_path):
    """Official widths (VGG19 classifier and all), stride-0 tensors so the file stays tiny."""
    enc, unet = official_state(b=64, e=512, v=64, expand=True)
    path = tmp_path / "official_full.pt"
    torch.save(_official_ckpt(enc, unet), path)
    assert path.stat().st_size < 5_000_000
    model = load_model(path)
    assert model.cfg == Color2EmbedConfig(encoder="vgg19", decoder="official")
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    n_dec = sum(p.numel() for p in model.decoder.parameters())
    assert (n_enc, n_dec) == (28_742_720, 19_413_954)


def test_official_layout_errors(tmp_path):
    enc, unet = official_state()
    bad = dict(unet)
    bad["up1.extra.weight"] = torch.zeros(1)
    torch.save(_official_ckpt(enc, bad), tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match="not in the Color2Embed layout"):
        load_model(tmp_path / "extra.pt")
    missing = {k: v for k, v in unet.items() if not k.startswith("outc.2")}
    torch.save(_official_ckpt(enc, missing), tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="missing"):
        load_model(tmp_path / "missing.pt")
    alias = dict(enc)
    alias["vgg.vgg_feature.0.bias"] = alias["vgg.vgg_feature.0.bias"] + 1
    torch.save(_official_ckpt(alias, unet), tmp_path / "alias.pt")
    with pytest.raises(CheckpointError, match="vgg_feature"):
        load_model(tmp_path / "alias.pt")


_SIDE_EFFECTS: list = []


def _mark():
    _SIDE_EFFECTS.append("executed")
    return {}


class _Payload:
    def __reduce__(self):
        return (_mark, ())


def test_unsafe_pickle_refused(tmp_path):
    enc, unet = official_state()
    ckpt = _official_ckpt(enc, unet)
    ckpt["args"].hook = _Payload()
    torch.save(ckpt, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not allow-listed"):
        load_model(tmp_path / "evil.pt")
    assert _SIDE_EFFECTS == []


# ----------------------------------------------------------------------------- Kwentar layout
# Restated from Kwentar/Color2Embed_pytorch color2embed/models.py (torchvision resnet18 + UNet).

def kwentar_state(b=8, e=32, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    _conv(sd, "color_encoder.conv1", (w, 3, 7, 7), g, bias=False)
    _bn(sd, "color_encoder.bn1", w, g)
    cin = w
    for layer, c in enumerate([w, 2 * w, 4 * w, 8 * w], 1):
        for blk in range(2):
            p = f"color_encoder.layer{layer}.{blk}"
            _conv(sd, p + ".conv1", (c, cin if blk == 0 else c, 3, 3), g, bias=False)
            _bn(sd, p + ".bn1", c, g)
            _conv(sd, p + ".conv2", (c, c, 3, 3), g, bias=False)
            _bn(sd, p + ".bn2", c, g)
            if blk == 0 and layer > 1:
                _conv(sd, p + ".downsample.0", (c, cin, 1, 1), g, bias=False)
                _bn(sd, p + ".downsample.1", c, g)
        cin = c
    _conv(sd, "color_encoder.fc", (e, 8 * w), g)
    u = "content_encoder_plus_PFFN."

    def dconv(p, ci, co, mid=None):
        mid = mid or co
        _conv(sd, p + ".double_conv.0", (mid, ci, 3, 3), g)
        _bn(sd, p + ".double_conv.1", mid, g)
        _conv(sd, p + ".double_conv.3", (co, mid, 3, 3), g)
        _bn(sd, p + ".double_conv.4", co, g)

    dconv(u + "inc", 1, b)
    for i, (ci, co) in enumerate([(b, 2 * b), (2 * b, 4 * b), (4 * b, 8 * b), (8 * b, 8 * b)], 1):
        dconv(f"{u}down{i}.maxpool_conv.1", ci, co)
    for i, (ci, co) in enumerate([(16 * b, 4 * b), (8 * b, 2 * b), (4 * b, b), (2 * b, b)]):
        dconv(f"{u}G{i}.conv", ci, co, ci // 2)
        sd[f"{u}F{i}.weight"] = torch.randn(1, co, co, 3, 3, generator=g)
        sd[f"{u}F{i}.weight_linear"] = torch.randn(co, e, generator=g)
        sd[f"{u}F{i}.bias_linear"] = 1 + 0.1 * torch.randn(co, generator=g)
    _conv(sd, u + "outc.conv", (2, b, 1, 1), g)
    return sd


def kwentar_forward(sd, l01, bgr01):
    """Kwentar Color2Embed in eval mode: L / 100 and a BGR [0, 1] reference -> (ab + 128) / 255."""
    e = "color_encoder."
    x = F.relu(_bn_eval(_c(bgr01, sd, e + "conv1", stride=2, padding=3), sd, e + "bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for layer in range(1, 5):
        for blk in range(2):
            p = f"{e}layer{layer}.{blk}"
            s = 2 if (layer > 1 and blk == 0) else 1
            idt = x
            if p + ".downsample.0.weight" in sd:
                idt = _bn_eval(_c(x, sd, p + ".downsample.0", stride=s), sd, p + ".downsample.1")
            h = F.relu(_bn_eval(_c(x, sd, p + ".conv1", stride=s, padding=1), sd, p + ".bn1"))
            x = F.relu(_bn_eval(_c(h, sd, p + ".conv2", padding=1), sd, p + ".bn2") + idt)
    z = F.linear(x.mean((2, 3)), sd[e + "fc.weight"], sd[e + "fc.bias"])
    u = "content_encoder_plus_PFFN."

    def dconv(x, p):
        x = F.relu(_bn_eval(_c(x, sd, p + ".double_conv.0", padding=1), sd, p + ".double_conv.1"))
        return F.relu(_bn_eval(_c(x, sd, p + ".double_conv.3", padding=1), sd, p + ".double_conv.4"))

    def modconv(x, p):
        bsz, c, h, w = x.shape
        scale = 1 / math.sqrt(c * 9)
        style = F.linear(z, sd[p + ".weight_linear"] * scale, sd[p + ".bias_linear"])
        wt = scale * sd[p + ".weight"] * style.view(bsz, 1, c, 1, 1)
        wt = wt * torch.rsqrt(wt.pow(2).sum([2, 3, 4]) + 1e-8).view(bsz, c, 1, 1, 1)
        out = F.conv2d(x.reshape(1, bsz * c, h, w), wt.view(bsz * c, c, 3, 3), padding=1, groups=bsz)
        return out.view(bsz, c, h, w)

    x1 = dconv(l01, u + "inc")
    xs = [x1]
    for i in range(1, 5):
        xs.append(dconv(F.max_pool2d(xs[-1], 2), f"{u}down{i}.maxpool_conv.1"))
    x = xs[4]
    for i, skip in enumerate([xs[3], xs[2], xs[1], xs[0]]):
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        x = modconv(dconv(torch.cat([skip, x], 1), f"{u}G{i}.conv"), f"{u}F{i}")
    return _c(x, sd, u + "outc.conv")


def test_kwentar_layout_loads_and_matches_kwentar_forward(tmp_path):
    sd = kwentar_state()
    path = tmp_path / "weights_9.pth"
    torch.save(sd, path)
    model = load_model(path)
    assert model.cfg == Color2EmbedConfig(encoder="resnet18", decoder="kwentar", emb_dim=32, width=8,
                                          enc_width=8, kernels=(3, 3, 3, 3), ref_preprocess="bgr")
    l_n, ref = inputs(n=2, h=64, w=96, rh=64, rw=64, seed=2)
    with torch.no_grad():
        ours = model(l_n, ref)
        ab8 = kwentar_forward(sd, l_n + 0.5, ref.flip(1))
    theirs = ((ab8 * 255 - 128) / 110).clamp(-1, 1)
    assert (ours - theirs).abs().max() <= 1e-5
    assert ours.abs().max() > 1e-3


def test_kwentar_layout_errors(tmp_path):
    sd = kwentar_state()
    sd["color_encoder.layer1.0.conv3.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="not in the Color2Embed layout"):
        load_model(tmp_path / "extra.pth")


