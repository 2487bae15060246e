"""The evaluation protocol of iColoriT (official ``evaluation/evaluate.py``), torch-free.

For each image and hint count k: the model sees the ground truth's L and k hints (cell-mean ab of
the ground truth on the fixed hint cells); the prediction (input L + predicted ab) is converted
to RGB and rounded to uint8; PSNR is computed per image on RGB in [0, 1] with the MSE floored at
1e-5, then averaged over images. This module is the one home of that protocol: the trainer's
validation, the model cards, the export/quantization guards and ``tinct bench`` all call it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from tinct.runtime.color import lab_n_to_rgb, rgb_to_lab_n, to_uint8
from tinct.runtime.hints import encode_from_lab, mask_from_coords

MSE_FLOOR = 1e-5


def psnr(pred: np.ndarray, gt: np.ndarray, eps: float = MSE_FLOOR) -> np.ndarray:
    """Per-image PSNR of uint8 (or [0,1] float) RGB images ``[..., H, W, 3]``; returns ``[...]``."""
    p = pred.astype(np.float64) / 255.0 if pred.dtype == np.uint8 else pred.astype(np.float64)
    g = gt.astype(np.float64) / 255.0 if gt.dtype == np.uint8 else gt.astype(np.float64)
    mse = np.maximum(((p - g) ** 2).mean(axis=(-3, -2, -1)), eps)
    return 20.0 * np.log10(1.0 / np.sqrt(mse))


def compose_rgb(l_n: np.ndarray, ab_n: np.ndarray) -> np.ndarray:
    """Input L ``[N, H, W]`` + predicted ab ``[N, 2, H, W]`` -> uint8 RGB ``[N, H, W, 3]``."""
    lab_n = np.concatenate([l_n[..., None], np.moveaxis(ab_n, 1, -1)], axis=-1)
    return to_uint8(lab_n_to_rgb(lab_n))


Predictor = Callable[[np.ndarray], np.ndarray]  # x [N,4,224,224] -> ab [N,2,224,224]


def predict_rgb(predict: Predictor, images_u8: np.ndarray, masks: np.ndarray,
                batch: int = 16) -> np.ndarray:
    """Colorize ground-truth images ``[N,224,224,3]`` with hint cell masks ``[N,112,112]``."""
    out = np.empty_like(images_u8)
    for s in range(0, len(images_u8), batch):
        lab_n = rgb_to_lab_n(images_u8[s:s + batch])
        x = encode_from_lab(lab_n, masks[s:s + batch])
        ab = np.asarray(predict(x), dtype=np.float32)
        out[s:s + batch] = compose_rgb(lab_n[..., 0], ab)
    return out


def psnr_at_k(predict: Predictor, images_u8: np.ndarray, hint_coords: dict[int, Sequence[np.ndarray]],
              counts: Iterable[int], batch: int = 16) -> dict[int, float]:
    """Mean PSNR for each hint count. ``hint_coords[k][i]``: (x_row, y_col) coords for image i."""
    result = {}
    for k in counts:
        masks = np.stack([mask_from_coords(c) for c in hint_coords[k]])
        pred = predict_rgb(predict, images_u8, masks, batch)
        result[k] = float(psnr(pred, images_u8).mean())
    return result


def gray_baseline_psnr(images_u8: np.ndarray) -> float:
    """PSNR of the ab = 0 prediction (the image's own L, no colour)."""
    lab_n = rgb_to_lab_n(images_u8)
    zeros = np.zeros((len(images_u8), 2) + images_u8.shape[1:3], dtype=np.float32)
    return float(psnr(compose_rgb(lab_n[..., 0], zeros), images_u8).mean())
