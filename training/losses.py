"""Losses as the official code computes them."""

from __future__ import annotations

import torch

from tinct.data.pretrained import NETS, load_weights
from tinct.runtime.color import AB_NORM, L_CENT, L_NORM, WHITE_D65, XYZ_TO_RGB


def huber_loss(pred: torch.Tensor, target: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    """Official iColoriT HuberLoss on normalized ab ``[N, 2, H, W]``: per element
    0.5*d^2/delta if d < delta else d - 0.5*delta; summed over the ab channels, averaged over the rest."""
    d = (pred - target).abs()
    loss = torch.where(d < delta, 0.5 * d * d / delta, d - 0.5 * delta)
    return loss.sum(dim=1).mean()


def sparsity_loss(gates: torch.Tensor, beta: float) -> torch.Tensor:
    """A-ColViT: (mean gate - beta)^2 over the batch, blocks and both sub-layers."""
    return (gates.mean() - beta) ** 2


def lab_n_to_rgb(lab_n: torch.Tensor) -> torch.Tensor:
    """Normalized Lab ``[N, 3, H, W]`` (L_n, ab_n) -> sRGB in [0, 1], differentiable: the official
    lab2rgb of :func:`runtime.color.lab_n_to_rgb` (same constants, imported from there) in torch, for
    losses on RGB. The sRGB gamma's power is taken of a clamped argument so its gradient stays finite
    at black; the result is clamped to [0, 1] like the numpy one."""

    lab_n = lab_n.float()
    L = lab_n[:, 0] * L_NORM + L_CENT
    fy = (L + 16.0) / 116.0
    fx = lab_n[:, 1] * (AB_NORM / 500.0) + fy
    fz = torch.clamp(fy - lab_n[:, 2] * (AB_NORM / 200.0), min=0.0)
    f = torch.stack([fx, fy, fz], dim=1)
    white = torch.as_tensor(WHITE_D65, device=f.device).view(1, 3, 1, 1)
    xyz = torch.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / 7.787) * white
    lin = torch.einsum("rc,nchw->nrhw", torch.as_tensor(XYZ_TO_RGB, device=f.device), xyz).clamp(min=0.0)
    srgb = torch.where(lin > 0.0031308, 1.055 * lin.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055, 12.92 * lin)
    return srgb.clamp(0.0, 1.0)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_LAYERS = {"relu3_3": 6, "relu4_3": 9, "relu5_2": 11, "relu5_3": 12}  # conv index (data.pretrained.NETS)


class PerceptualLoss(torch.nn.Module):
    """Mean squared difference of frozen ImageNet VGG16 features of two sRGB batches in [0, 1]
    (``[N, 3, H, W]``, ImageNet mean/std applied here). Default layer relu5_2: the layer of the
    Color2Embed re-implementations' VGG19 perceptual loss, taken from VGG16 here (the ImageNet conv
    weights that can be fetched offline: :mod:`data.pretrained`)."""

    def __init__(self, layer: str = "relu5_2", weights: dict | None = None):
        super().__init__()
        from tinct.models.features import ConvStack

        if layer not in VGG16_LAYERS:
            raise ValueError(f"perceptual layer {layer!r}: choose from {', '.join(VGG16_LAYERS)}")
        self.layer, self.tap = layer, VGG16_LAYERS[layer]
        self.stack = ConvStack(NETS["vgg"][2], load_weights("vgg") if weights is None else weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.stack((rgb - self.mean) / self.std, taps=(self.tap,))[0]

    def forward(self, pred_rgb: torch.Tensor, target_rgb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.features(target_rgb)
        return (self.features(pred_rgb).float() - target.float()).pow(2).mean()
