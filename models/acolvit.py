"""A-ColViT (Lee et al., AAAI 2023): iColoriT with per-input skipping of attention and MLP
sub-layers, compatible with the official ``pruned_model.py`` state_dicts.

A learnable policy token is prepended to the patch tokens (the sinusoid table covers 197
positions). Each block reads the policy token as it enters the block and predicts two logits with
``layer_select.mlp_head = Linear(D, 2)``: gate 0 for the attention residual, gate 1 for the MLP
residual.

- Training: Gumbel-sigmoid with temperature 5, hard threshold 0.5, straight-through gradients;
  residuals are multiplied by the gates (as official).
- Eval: gate = sigmoid(logit) > 0.5, and a gated-off sub-layer is not computed at all (samples of
  a batch whose gate is off are left out of the sub-layer). ``forward_with_gates`` returns which
  sub-layers ran; ``forced_gates`` overrides the decisions (tests, static exports).

The official A-ColViT is trained without relative position bias (``--no_use_rpb``); with RPB,
the policy token's row and column of the bias are zero.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tinct.models.icolorit import Block, IColoriT, IColoriTConfig

GUMBEL_TAU = 5.0
GATE_THRESHOLD = 0.5


def gumbel_sigmoid(logits: torch.Tensor, tau: float = GUMBEL_TAU, threshold: float = GATE_THRESHOLD,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Hard Gumbel-sigmoid with straight-through gradients (difference of two Gumbels)."""
    u1 = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    u2 = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    eps = 1e-10
    g1 = -torch.log(-torch.log(u1 + eps) + eps)
    g2 = -torch.log(-torch.log(u2 + eps) + eps)
    soft = torch.sigmoid((logits + g1 - g2) / tau)
    hard = (soft > threshold).to(soft.dtype)
    return hard - soft.detach() + soft


class LayerSelect(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.mlp_head = nn.Linear(dim, 2)

    def forward(self, policy: torch.Tensor) -> torch.Tensor:
        return self.mlp_head(policy)


class GatedBlock(Block):
    def __init__(self, cfg: IColoriTConfig):
        super().__init__(cfg)
        self.layer_select = LayerSelect(cfg.embed_dim)

    def decide(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode decisions [B, 2] bool: sigmoid(logit) > 0.5 on the incoming policy token."""
        return torch.sigmoid(self.layer_select(x[:, 0])) > GATE_THRESHOLD

    def forward_train(self, x: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
        g = gumbel_sigmoid(self.layer_select(x[:, 0]), tau)
        x = x + g[:, 0, None, None] * self.attn(self.norm1(x))
        x = x + g[:, 1, None, None] * self.mlp(self.norm2(x))
        return x, g

    def forward_eval(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Run only the sub-layers whose gate is on, only for the samples that keep them."""
        x = _gated_residual(x, keep[:, 0], lambda t: self.attn(self.norm1(t)))
        return _gated_residual(x, keep[:, 1], lambda t: self.mlp(self.norm2(t)))


def _gated_residual(x: torch.Tensor, keep: torch.Tensor, fn) -> torch.Tensor:
    if bool(keep.all()):
        return x + fn(x)
    if not bool(keep.any()):
        return x
    idx = keep.nonzero().squeeze(1)
    return x.index_add(0, idx, fn(x.index_select(0, idx)))


class AColViT(IColoriT):
    arch = "acolvit"

    def __init__(self, cfg: IColoriTConfig | None = None, **overrides):
        cfg = cfg or IColoriTConfig(**{"use_rpb": False, **overrides})
        super().__init__(cfg)
        self.policy_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        nn.init.trunc_normal_(self.policy_token, std=0.02, a=-0.02, b=0.02)
        self.tau = GUMBEL_TAU
        self.forced_gates: torch.Tensor | None = None  # [depth, 2] bool, overrides decisions in eval

    @property
    def num_tokens(self) -> int:
        return self.cfg.grid ** 2 + 1

    def make_block(self, cfg: IColoriTConfig) -> nn.Module:
        return GatedBlock(cfg)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.mask_cent:
            x = torch.cat((x[:, :3], x[:, 3:] - 0.5), dim=1)
        t = self.patch_embed(x)
        t = torch.cat((self.policy_token.expand(t.shape[0], -1, -1), t), dim=1)
        return t + self.pos_embed

    def forward_with_gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (ab [N,2,H,W], gates [N, depth, 2]): in training the straight-through Gumbel gates
        (float), in eval the decisions taken (bool: True = the sub-layer ran)."""
        t = self.embed(x)
        gates = []
        for i, blk in enumerate(self.blocks):
            if self.training:
                t, g = blk.forward_train(t, self.tau)
            else:
                g = blk.decide(t)
                if self.forced_gates is not None:
                    g = self.forced_gates[i].to(torch.bool).expand_as(g)
                t = blk.forward_eval(t, g)
            gates.append(g)
        return self.decode(t[:, 1:]), torch.stack(gates, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_gates(x)[0]
