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
    lab = _as_float32(lab)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = lab[..., 1] / 500.0 + fy
    fz = np.maximum(fy - lab[..., 2] / 200.0, 0.0)
    f = np.stack([fx, fy, fz], axis=-1)
    xyz = np.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / 7.787) * WHITE_D65
    rgb = linear_to_srgb(xyz.astype(np.float32) @ XYZ_TO_RGB.T)
    return np.clip(rgb, 0.0, 1.0) if clip else rgb


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
