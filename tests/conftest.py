"""Shared fixtures."""

from __future__ import annotations

import pytest


def _randomize_weights(model, seed: int = 0):
    """Give every parameter a non-trivial random value (the default init leaves biases at zero,
    LayerNorms at identity and q/v biases at zero, which would hide wiring mistakes)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("rpb_table"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif ".norm" in name or name.startswith("norm"):
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + torch.randn(p.shape, generator=g) * 0.1)
            elif name.endswith("bias") or name == "policy_token":
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "layer_select" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 2.0 / p.shape[-1] ** 0.5)
            else:  # matrices and conv kernels: fan-in scaled
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
    return model


@pytest.fixture(scope="session")
def randomize_weights():
    """``randomize_weights(model, seed=0)`` -> the model, every parameter re-drawn (in place)."""
    return _randomize_weights
