"""Frozen ImageNet feature extractors (VGG16, AlexNet conv features) as one torch module.

The one place that runs such a stack: LPIPS (:mod:`benchmarks.lpips`) reads its five taps, the
Color2Embed perceptual loss (:mod:`training.losses`) reads one deep layer. The layer list and the
arrays come from :mod:`data.pretrained` (``NETS[net][2]`` and ``load_weights(net)``): each conv is
``(out channels, kernel, stride, padding, tap)``, each ``("M", kernel, stride)`` a max-pool, every
conv followed by a ReLU. Weights are non-trainable buffers (they move with ``.to()`` and are never
saved with a model that holds the stack).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ConvStack(nn.Module):
    def __init__(self, layers, weights: dict[str, np.ndarray]):
        super().__init__()
        self.layers = list(layers)
        n_conv = sum(1 for x in self.layers if x[0] != "M")
        for i in range(n_conv):
            w = torch.from_numpy(np.ascontiguousarray(weights[f"conv{i}.weight"], np.float32))
            b = torch.from_numpy(np.ascontiguousarray(weights[f"conv{i}.bias"], np.float32))
            self.register_buffer(f"w{i}", w, persistent=False)
            self.register_buffer(f"b{i}", b, persistent=False)
        self.n_conv = n_conv
        self.default_taps = tuple(i for i, x in enumerate(c for c in self.layers if c[0] != "M") if x[4])

    def forward(self, x: torch.Tensor, taps=None) -> list[torch.Tensor]:
        """The ReLU outputs after the convs numbered in ``taps`` (0-based, in order; default: the
        layer list's own taps); the stack stops after the last one asked for."""
        taps = sorted(self.default_taps if taps is None else taps)
        if not taps or taps[0] < 0 or taps[-1] >= self.n_conv:
            raise ValueError(f"taps {taps} outside 0..{self.n_conv - 1}")
        out, i = [], 0
        for layer in self.layers:
            if layer[0] == "M":
                x = F.max_pool2d(x, layer[1], layer[2])
                continue
            w, b = getattr(self, f"w{i}"), getattr(self, f"b{i}")
            x = F.relu(F.conv2d(x, w.to(x.dtype), b.to(x.dtype), stride=layer[2], padding=layer[3]))
            if i in taps:
                out.append(x)
                if i == taps[-1]:
                    break
            i += 1
        return out
