"""Shared by the Color2Embed model tests: small configs, inputs, BatchNorm statistics."""

from __future__ import annotations

import pytest
import torch

from tinct.models.color2embed import Color2EmbedConfig

SMALL = {"emb_dim": 32, "width": 8, "enc_width": 8}


def small_config(**kw) -> Color2EmbedConfig:
    return Color2EmbedConfig(**{**SMALL, **kw})


def perturb_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(1 + torch.randn(m.weight.shape, generator=g) * 0.1)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def inputs(n=2, h=64, w=64, rh=64, rw=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, h, w, generator=g) - 0.5, torch.rand(n, 3, rh, rw, generator=g)


@pytest.fixture(autouse=True)
def one_thread():
    """Small convs gain nothing from threads; on a busy machine extra threads only contend (autouse in the
    modules that import it)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
