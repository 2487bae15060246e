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
- **LPIPS** (VGG, lpips 0.1.4 semantics) — optional: :class:`LPIPS` needs torch and local weight
  files (a torchvision-layout VGG16 state dict for the backbone and the lpips ``v0.1/vgg.pth``
  linear layers); they cannot be downloaded here. As the official script calls it, the images go
  in as RGB in [0, 1] *without* rescaling to [-1, 1] (``normalize=False``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinct.runtime.errors import TinctError
from tinct.runtime.evaluation import MSE_FLOOR, psnr

PATCH = 16
METRICS = ("psnr", "bpsnr", "pev", "ssim", "ciede2000")  # always computed
HIGHER_IS_BETTER = {"psnr": True, "bpsnr": True, "pev": False, "ssim": True, "ciede2000": False,
                    "lpips": False}


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

    from tinct.runtime.color import rgb_to_lab

    pred, gt = _check_pair(pred, gt)
    de = deltaE_ciede2000(rgb_to_lab(gt).astype(np.float64), rgb_to_lab(pred).astype(np.float64), channel_axis=-1)
    return de.mean(axis=(-2, -1))


def compute_all(pred: np.ndarray, gt: np.ndarray, lpips: LPIPS | None = None) -> dict[str, np.ndarray]:
    """Every metric per image for a batch ``[N, H, W, 3]``: ``{name: [N]}``."""
    pred, gt = _check_pair(pred, gt)
    out = {
        "psnr": psnr(pred, gt),
        "bpsnr": boundary_psnr(pred, gt),
        "pev": patch_error_variance(pred, gt),
        "ssim": ssim(pred, gt),
        "ciede2000": ciede2000(pred, gt),
    }
    if lpips is not None:
        out["lpips"] = lpips(pred, gt)
    return out


# ----------------------------------------------------------------------------- LPIPS (optional)

# lpips 0.1.4 ScalingLayer constants (applied to inputs the network expects in [-1, 1]).
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
# VGG16 ``features`` layout: channels per conv, "M" = max-pool. LPIPS taps relu1_2, relu2_2,
# relu3_3, relu4_3 and relu5_3, i.e. after features[3], [8], [15], [22], [29].
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_TAPS = (3, 8, 15, 22, 29)
_TAP_CHANNELS = (64, 128, 256, 512, 512)


def resolve_lpips_weights(spec: str) -> tuple[Path, Path]:
    """``BACKBONE.pth,LINEAR.pth`` or a directory holding ``vgg16*.pth`` and ``vgg.pth``."""
    parts = [p for p in spec.split(",") if p]
    if len(parts) == 2:
        paths = [Path(p) for p in parts]
    elif len(parts) == 1 and Path(parts[0]).is_dir():
        d = Path(parts[0])
        backbone = sorted(d.glob("vgg16*.pth"))
        paths = [backbone[0] if backbone else d / "vgg16.pth", d / "vgg.pth"]
    else:
        raise TinctError(f"--lpips-weights {spec!r}: give 'BACKBONE.pth,LINEAR.pth' (a torchvision VGG16 "
                         "state dict and lpips v0.1 vgg.pth) or a directory holding vgg16*.pth and vgg.pth")
    for p in paths:
        if not p.is_file():
            raise TinctError(f"LPIPS weight file not found: {p}")
    return paths[0], paths[1]


class LPIPS:
    """LPIPS-VGG (lpips 0.1.4, ``net='vgg'``, ``version='0.1'``, ``lpips=True``) from local weights.

    d(x, y) = sum over the 5 taps l of mean_{h,w} ( w_l . (unit(f_l(x)) - unit(f_l(y)))^2 ), where f_l
    are the VGG16 activations of the scaled inputs, unit() normalizes each pixel's feature vector
    to unit L2 norm (eps 1e-10) and w_l are the non-negative 1x1 linear weights.
    """

    def __init__(self, backbone: str | Path, linear: str | Path, device: str = "cpu", batch: int = 8):
        try:
            import torch
        except ModuleNotFoundError:
            from tinct.runtime.errors import MissingExtraError
            raise MissingExtraError("bench accuracy --lpips-weights", "torch", "export") from None
        self.torch, self.device, self.batch = torch, device, batch
        feats = self._load(backbone)
        lin = self._load(linear)
        self.convs = []
        i = 0
        for item in _VGG16:
            if item == "M":
                i += 1
                continue
            w, b = feats.get(f"features.{i}.weight", feats.get(f"{i}.weight")), feats.get(
                f"features.{i}.bias", feats.get(f"{i}.bias"))
            if w is None or b is None or w.shape[0] != item:
                raise TinctError(f"{backbone}: not a torchvision VGG16 state dict (layer features.{i})")
            self.convs.append((i, w.float().to(device), b.float().to(device)))
            i += 2  # conv + relu
        self.lins = []
        for t, ch in enumerate(_TAP_CHANNELS):
            keys = [k for k in lin if k.startswith(f"lin{t}.") and k.endswith("weight")]
            if len(keys) != 1 or tuple(lin[keys[0]].shape) != (1, ch, 1, 1):
                raise TinctError(f"{linear}: not an lpips v0.1 vgg.pth (lin{t} with shape [1, {ch}, 1, 1])")
            self.lins.append(lin[keys[0]].float().to(device))
        self.shift = torch.tensor(_LPIPS_SHIFT, device=device).view(1, 3, 1, 1)
        self.scale = torch.tensor(_LPIPS_SCALE, device=device).view(1, 3, 1, 1)

    def _load(self, path) -> dict:
        try:
            obj = self.torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
            raise TinctError(f"cannot read LPIPS weights {path}: {exc}") from None
        if isinstance(obj, dict) and "state_dict" in obj:
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise TinctError(f"{path}: expected a state dict")
        return obj

    def _features(self, x):
        F = self.torch.nn.functional
        taps = []
        convs = iter(self.convs)
        for item in _VGG16:
            if item == "M":
                x = F.max_pool2d(x, 2, 2)
                continue
            i, w, b = next(convs)
            x = F.relu(F.conv2d(x, w, b, padding=1))
            if i + 1 in _TAPS:  # index of this conv's ReLU in ``features``
                taps.append(x)
        return taps

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        torch = self.torch
        pred, gt = _check_pair(pred, gt)
        lead = pred.shape[:-3]
        p = pred.reshape((-1,) + pred.shape[-3:])
        g = gt.reshape((-1,) + gt.shape[-3:])
        out = []
        with torch.no_grad():
            for s in range(0, len(p), self.batch):
                # Official call: RGB in [0, 1], not rescaled to [-1, 1].
                a = torch.from_numpy(p[s:s + self.batch]).to(self.device).permute(0, 3, 1, 2).float() / 255.0
                b = torch.from_numpy(g[s:s + self.batch]).to(self.device).permute(0, 3, 1, 2).float() / 255.0
                fa = self._features((a - self.shift) / self.scale)
                fb = self._features((b - self.shift) / self.scale)
                d = 0.0
                for x, y, w in zip(fa, fb, self.lins):
                    x = x / (torch.sqrt((x ** 2).sum(1, keepdim=True)) + 1e-10)
                    y = y / (torch.sqrt((y ** 2).sum(1, keepdim=True)) + 1e-10)
                    d = d + torch.nn.functional.conv2d((x - y) ** 2, w).mean(dim=(2, 3))
                out.append(d.view(-1).cpu().numpy().astype(np.float64))
        return np.concatenate(out).reshape(lead)
