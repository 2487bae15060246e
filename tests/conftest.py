"""Shared fixtures."""

from __future__ import annotations

import pytest


def _randomize_weights(model, seed: int = 0):
    """Give every parameter a non-trivial random value (the default init leaves biases at zero,
    LayerNorms at identity and q/v biases at zero, which would hide wiring mistakes)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("rpb_table"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif ".norm" in name or name.startswith("norm"):
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + torch.randn(p.shape, generator=g) * 0.1)
            elif name.endswith("bias") or name == "policy_token":
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "layer_select" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 2.0 / p.shape[-1] ** 0.5)
            else:  # matrices and conv kernels: fan-in scaled
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
    return model


@pytest.fixture(scope="session")
def randomize_weights():
    """``randomize_weights(model, seed=0)`` -> the model, every parameter re-drawn (in place)."""
    return _randomize_weights


class TinyModels:
    """The small artifacts the suite shares: depth-2 iColoriT-T and A-ColViT-T (dynamic ``If`` gating) with
    random weights, exported once per test run by the product's own exporter (``export_onnx`` with its parity
    check), on first use. Read-only: a test that writes next to an artifact copies it first."""

    def __init__(self, root, randomize):
        self.root, self._randomize, self._made = root, randomize, {}

    def _make(self, name: str):
        if name not in self._made:
            import torch

            from tinct.export.onnx_export import export_onnx
            from tinct.models.registry import create_model

            torch.manual_seed(0)
            model = self._randomize(create_model(name, depth=2).eval(), seed=0)
            path = export_onnx(model, self.root / f"{name}-d2.onnx", model_name=name)
            self._made[name] = (path, model)
        return self._made[name]

    @property
    def icolorit(self):
        """(path, torch model) of the depth-2 iColoriT-T export."""
        return self._make("icolorit-tiny")

    @property
    def acolvit(self):
        """(path, torch model) of the depth-2 A-ColViT-T export (24 -> 4 If nodes)."""
        return self._make("acolvit-tiny")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, randomize_weights):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    return TinyModels(tmp_path_factory.mktemp("tiny-models"), randomize_weights)


@pytest.fixture(scope="session")
def icolorit_onnx(tiny_models):
    return tiny_models.icolorit[0]


@pytest.fixture(scope="session")
def acolvit_onnx(tiny_models):
    return tiny_models.acolvit[0]


@pytest.fixture(scope="session")
def runtime_wheel(tmp_path_factory):
    """tinct's wheel (``pip wheel --no-deps .``), built once per test process. Builds in the checkout take a lock:
    setuptools writes build/ there, and two test workers may build at once."""
    import fcntl
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    out = tmp_path_factory.mktemp("wheel")
    with open(Path(tempfile.gettempdir()) / "tinct-wheel-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build_existed = (repo / "build").exists()
        try:
            r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(repo)],
                               capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, r.stderr[-2000:]
        finally:
            if not build_existed:  # setuptools' build/ in the checkout (git-ignored): leave the tree as it was
                shutil.rmtree(repo / "build", ignore_errors=True)
    return next(out.glob("tinct-*.whl"))
