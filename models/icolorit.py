"""iColoriT (Yun et al. 2022), compatible with the official ``modeling.py`` state_dicts.

A plain pre-norm ViT over 16x16 patches of the 4-channel input ``[L_n, a_n*m, b_n*m, m]``:
fixed 1-D sinusoid positions, attention with separate q/v biases and a per-block relative
position bias, and the "local stabilizing layer" head: a 3x3 reflect-padded conv from the token
grid to 2*P*P channels, tanh, then a pixel shuffle in the official order
``b (h w) (p1 p2 c) -> b c (h p1) (w p2)`` (ONNX DepthToSpace, DCR mode).

One forward contract for every model in tinct: ``x`` float32 ``[N, 4, 224, 224]`` ->
normalized ab ``[N, 2, 224, 224]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class IColoriTConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 4
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    use_rpb: bool = True
    mask_cent: bool = False  # official option: subtract 0.5 from the mask channel
    avg_hint: bool = True  # hint colour = cell mean (official default); recorded for metadata

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    def to_dict(self) -> dict:
        return asdict(self)


def sinusoid_table(n_position: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sinusoid table [1, n_position, dim]: angle pos / 10000^(2*(j//2)/dim),
    sin on even j, cos on odd j (computed in float64 as the official numpy code)."""
    pos = np.arange(n_position, dtype=np.float64)[:, None]
    j = np.arange(dim)
    angle = pos / np.power(10000, 2 * (j // 2) / dim)
    table = np.where(j % 2 == 0, np.sin(angle), np.cos(angle))
    return torch.from_numpy(table).float().unsqueeze(0)


def relative_position_index(window: int) -> torch.Tensor:
    """[window^2, window^2] int64 index into a [(2*window-1)^2, heads] bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, use_rpb: bool, window: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.use_rpb = use_rpb
        if use_rpb:
            self.window = window
            self.rpb_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
            nn.init.trunc_normal_(self.rpb_table, std=0.02, a=-0.02, b=0.02)
            self.register_buffer("relative_position_index", relative_position_index(window))
        self.proj = nn.Linear(dim, dim)

    def position_bias(self, n_tokens: int) -> torch.Tensor:
        """[heads, N, N]; extra leading tokens (A-ColViT's policy token) get no bias."""
        p = self.window * self.window
        bias = self.rpb_table[self.relative_position_index.view(-1)].view(p, p, -1).permute(2, 0, 1)
        extra = n_tokens - p
        return F.pad(bias, (extra, 0, extra, 0)) if extra else bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.use_rpb:
            attn = attn + self.position_bias(n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: IColoriTConfig):
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, cfg.num_heads, cfg.use_rpb, cfg.grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: IColoriTConfig):
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class CnnHead(nn.Module):
    """The local stabilizing layer: tokens -> [B, D, g, g] -> 3x3 reflect conv -> [B, 2P^2, g, g]."""

    def __init__(self, cfg: IColoriTConfig):
        super().__init__()
        self.grid = cfg.grid
        self.head = nn.Conv2d(cfg.embed_dim, 2 * cfg.patch_size ** 2, kernel_size=3, padding=1,
                              padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, d = x.shape
        return self.head(x.transpose(1, 2).reshape(b, d, self.grid, self.grid))


def pixel_shuffle_dcr(y: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, P*P*2, g, g] with channels ordered (p1 p2 c) -> [B, 2, g*P, g*P] (DepthToSpace DCR)."""
    b, _, g, _ = y.shape
    y = y.reshape(b, patch, patch, 2, g, g).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(b, 2, g * patch, g * patch)


class IColoriT(nn.Module):
    arch = "icolorit"

    def __init__(self, cfg: IColoriTConfig | None = None, **overrides):
        super().__init__()
        cfg = cfg or IColoriTConfig(**overrides)
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.register_buffer("pos_embed", sinusoid_table(self.num_tokens, cfg.embed_dim), persistent=False)
        self.blocks = nn.ModuleList([self.make_block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.head = CnnHead(cfg)
        self.apply(_init_weights)

    @property
    def num_tokens(self) -> int:
        return self.cfg.grid ** 2

    def make_block(self, cfg: IColoriTConfig) -> nn.Module:
        return Block(cfg)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.mask_cent:
            x = torch.cat((x[:, :3], x[:, 3:] - 0.5), dim=1)
        return self.patch_embed(x) + self.pos_embed

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle_dcr(torch.tanh(self.head(self.norm(tokens))), self.cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x)
        for blk in self.blocks:
            t = blk(t)
        return self.decode(t)


def _init_weights(m: nn.Module) -> None:
    # As the official code: xavier-uniform Linear weights, zero biases, unit LayerNorms.
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
