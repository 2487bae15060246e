"""A-ColViT gate patterns: the one function that turns "0.5" into a mask for every tool."""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------- gate patterns

def _spread(n_keep: int, n: int) -> list[bool]:
    """n_keep of n positions evenly spread (Bresenham), the last position always among them."""
    return [((i + 1) * n_keep) // n > (i * n_keep) // n for i in range(n)]


def gate_pattern(spec: str, depth: int) -> list[list[bool]] | None:
    """``own`` -> None (the model decides); ``all``; a ratio in (0, 1]; or 2*depth characters of 0/1."""
    s = str(spec).strip()
    if s == "own":
        return None
    if s == "all":
        return [[True, True] for _ in range(depth)]
    if len(s) == 2 * depth and set(s) <= {"0", "1"}:
        return [[s[2 * i] == "1", s[2 * i + 1] == "1"] for i in range(depth)]
    try:
        r = float(s)
    except ValueError:
        raise ValueError(f"gate pattern {spec!r}: use own, all, a kept ratio in (0, 1] or "
                         f"{2 * depth} characters of 0/1") from None
    if not 0 < r <= 1:
        raise ValueError(f"gate pattern {spec!r}: a kept ratio must be in (0, 1]")
    n_keep = round(r * 2 * depth)
    n_attn = round(n_keep / 2)
    attn, mlp = _spread(n_attn, depth), _spread(n_keep - n_attn, depth)
    return [[a, m] for a, m in zip(attn, mlp)]


def gate_bits(gates: list[list[bool]]) -> str:
    return "".join(f"{int(a)}{int(m)}" for a, m in gates)


def kept_fraction(gates) -> float:
    g = np.asarray(gates, dtype=bool)
    return float(g.mean())
