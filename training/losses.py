"""Losses as the official code computes them."""

from __future__ import annotations

import torch


def huber_loss(pred: torch.Tensor, target: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    """Official iColoriT HuberLoss on normalized ab ``[N, 2, H, W]``: per element
    0.5*d^2/delta if d < delta else d - 0.5*delta; summed over the ab channels, averaged over the rest."""
    d = (pred - target).abs()
    loss = torch.where(d < delta, 0.5 * d * d / delta, d - 0.5 * delta)
    return loss.sum(dim=1).mean()


def sparsity_loss(gates: torch.Tensor, beta: float) -> torch.Tensor:
    """A-ColViT: (mean gate - beta)^2 over the batch, blocks and both sub-layers."""
    return (gates.mean() - beta) ** 2
