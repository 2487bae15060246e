"""sRGB <-> CIE Lab, exactly as the official iColoriT code computes it, in vectorized numpy float32.

This is the one home of the colour space for tinct: training, export checks, the runtime and the
benchmarks all call these functions. Arrays are channel-last: ``(..., 3)`` with any leading shape
(an image ``(H, W, 3)`` or a batch ``(N, H, W, 3)``). RGB is float in [0, 1].

Constants (official ``utils.py``): sRGB linearization threshold 0.04045, the sRGB->XYZ matrix
below, D65 white (0.95047, 1, 1.08883), f(t) = cbrt(t) above 0.008856 else 7.787 t + 16/116.
Model normalization: L_n = (L - 50) / 100, ab_n = ab / 110.
"""

from __future__ import annotations

import numpy as np

L_CENT = 50.0
L_NORM = 100.0
AB_NORM = 110.0

RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423],
     [0.212671, 0.715160, 0.072169],
     [0.019334, 0.119193, 0.950227]], dtype=np.float32)
# The official inverse (rounded as published, not np.linalg.inv of the matrix above).
XYZ_TO_RGB = np.array(
    [[3.24048134, -1.53715152, -0.49853633],
     [-0.96925495, 1.87599, 0.04155593],
     [0.05564664, -0.20404134, 1.05731107]], dtype=np.float32)
WHITE_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)

# Lab is linear in f(X/Xn), f(Y/Yn), f(Z/Zn): fold white point and the L/a/b weights into matrices.
_F_TO_LAB = np.array([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]], dtype=np.float32)
_LAB_OFFSET = np.array([-16.0, 0.0, 0.0], dtype=np.float32)


def _as_float32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.shape[-1:] != (3,):
        raise ValueError(f"expected a channel-last array with 3 channels, got shape {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1.0 / 255.0)
    return x.astype(np.float32, copy=False)


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    rgb = _as_float32(rgb)
    return np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92).astype(np.float32)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.maximum(lin, 0.0)  # as official: tiny negatives would give NaN
    return np.where(lin > 0.0031308, 1.055 * lin ** (1.0 / 2.4) - 0.055, 12.92 * lin).astype(np.float32)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (float) or uint8 -> Lab (L in [0, 100]), float32, channel-last."""
    xyz = srgb_to_linear(rgb) @ (RGB_TO_XYZ / WHITE_D65[:, None]).T
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0).astype(np.float32)
    return (f @ _F_TO_LAB.T + _LAB_OFFSET).astype(np.float32)


def lab_to_rgb(lab: np.ndarray, clip: bool = True) -> np.ndarray:
    """Lab -> sRGB float32 (clipped to [0, 1] unless clip=False), as the official lab2rgb."""
    rgb = linear_to_srgb(_lab_to_linear(lab, clamp_z=True))
    return np.clip(rgb, 0.0, 1.0) if clip else rgb


def _lab_to_linear(lab: np.ndarray, clamp_z: bool) -> np.ndarray:
    """Lab -> linear RGB (unclipped); ``clamp_z``: f(Z) clamped at 0 as the official lab2rgb does."""
    lab = _as_float32(lab)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = lab[..., 1] / 500.0 + fy
    fz = fy - lab[..., 2] / 200.0
    f = np.stack([fx, fy, np.maximum(fz, 0.0) if clamp_z else fz], axis=-1)
    xyz = np.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / 7.787) * WHITE_D65
    return xyz.astype(np.float32) @ XYZ_TO_RGB.T


def normalize_lab(lab: np.ndarray) -> np.ndarray:
    """Lab -> model units: L_n = (L - 50) / 100, ab_n = ab / 110 (channel-last)."""
    out = np.empty_like(lab, dtype=np.float32)
    out[..., 0] = (lab[..., 0] - L_CENT) / L_NORM
    out[..., 1:] = lab[..., 1:] / AB_NORM
    return out


def denormalize_lab(lab_n: np.ndarray) -> np.ndarray:
    out = np.empty_like(lab_n, dtype=np.float32)
    out[..., 0] = lab_n[..., 0] * L_NORM + L_CENT
    out[..., 1:] = lab_n[..., 1:] * AB_NORM
    return out


def rgb_to_lab_n(rgb: np.ndarray) -> np.ndarray:
    """sRGB -> normalized Lab (the model's units), channel-last."""
    return normalize_lab(rgb_to_lab(rgb))


def lab_n_to_rgb(lab_n: np.ndarray, clip: bool = True) -> np.ndarray:
    return lab_to_rgb(denormalize_lab(lab_n), clip=clip)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 with rounding (the evaluation protocol's quantization)."""
    return np.clip(np.rint(np.asarray(rgb, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def is_grayscale(rgb: np.ndarray, tol: float = 2.0) -> bool:
    """True when an image carries no colour: every pixel's chroma (|a|, |b|) is below ``tol``."""
    lab = rgb_to_lab(rgb)
    return bool(np.abs(lab[..., 1:]).max() < tol)


# ----------------------------------------------------------------------------- the sRGB gamut at a lightness
# In Lab colorization a hint gives only ab: the lightness is the photo's. A colour picked in RGB therefore
# becomes (L of the photo, ab of the pick), which may lie outside sRGB at that L and is then clipped on display.
# These functions say which ab exist at an L and bring a pick into them, keeping its hue.

GAMUT_TOL = 1e-4  # sRGB channels within [-tol, 1 + tol] count as in gamut (float32 round-off of the matrices)


def in_gamut(lab: np.ndarray) -> np.ndarray:
    """bool ``[...]``: whether each Lab colour ``[..., 3]`` is an sRGB colour (its linear RGB, before any clamp
    or gamma, in [0, 1])."""
    lin = _lab_to_linear(lab, clamp_z=False)
    return np.all((lin >= -GAMUT_TOL) & (lin <= 1.0 + GAMUT_TOL), axis=-1)


def _lab(l_value: np.ndarray, ab: np.ndarray) -> np.ndarray:
    return np.concatenate([np.broadcast_to(l_value[..., None], ab.shape[:-1] + (1,)), ab], axis=-1)


def snap_ab(l_value, ab, iterations: int = 24) -> np.ndarray:
    """The ab a colour with lightness ``l_value`` can have nearest to ``ab`` at the same hue: ``ab`` itself when
    ``(l_value, ab)`` is in sRGB, else the largest ``t * ab`` (0 <= t < 1) that is (bisection on the chroma; gray
    is in gamut at every L in [0, 100]). Broadcasts ``l_value [...]`` with ``ab [..., 2]``; float32 ab units."""
    ab = np.asarray(ab, dtype=np.float32)
    l_value = np.broadcast_to(np.clip(np.asarray(l_value, dtype=np.float32), 0.0, 100.0), ab.shape[:-1])
    lo = in_gamut(_lab(l_value, ab)).astype(np.float32)  # 1 where the pick is already in gamut
    hi = np.ones_like(lo)
    todo = lo < 1.0
    for _ in range(iterations if todo.any() else 0):
        mid = (lo + hi) / 2
        ok = in_gamut(_lab(l_value, ab * mid[..., None]))
        lo = np.where(todo & ok, mid, lo)
        hi = np.where(todo & ~ok, mid, hi)
    return (ab * lo[..., None]).astype(np.float32)


def snap_rgb(l_value, rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB ``[..., 3]``: the colour a pick ``rgb`` (uint8) becomes at lightness ``l_value``, its ab snapped
    into gamut at that L (:func:`snap_ab`): what a hint of that colour shows at a point of that lightness."""
    ab = rgb_to_lab(np.asarray(rgb, dtype=np.uint8))[..., 1:]
    snapped = snap_ab(l_value, ab)
    l_value = np.broadcast_to(np.clip(np.asarray(l_value, dtype=np.float32), 0.0, 100.0), snapped.shape[:-1])
    return to_uint8(lab_to_rgb(_lab(l_value, snapped)))


def gamut_ab(l_value: float, step: float = 4.0, limit: float = 110.0) -> np.ndarray:
    """The ab grid points (``step`` apart, |a|, |b| <= ``limit``) that exist in sRGB at lightness ``l_value``:
    float32 ``[n, 2]``, what a gamut panel draws."""
    axis = np.arange(-limit, limit + step / 2, step, dtype=np.float32)
    a, b = np.meshgrid(axis, axis, indexing="xy")
    ab = np.stack([a.ravel(), b.ravel()], axis=-1)
    keep = in_gamut(_lab(np.full(len(ab), np.clip(l_value, 0.0, 100.0), np.float32), ab))
    return ab[keep]
