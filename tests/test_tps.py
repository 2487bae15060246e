"""data/tps.py: the thin-plate-spline warp behind Color2Embed's self-supervised references."""

from __future__ import annotations

import numpy as np
import pytest

from tinct.data import tps


def _image(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((h, w, 3)) * 255).astype(np.uint8)


def test_identity_warp_is_identity():
    img = _image()
    rng = np.random.default_rng(1)
    pts = rng.uniform(-1, 1, size=(6, 2))
    out = tps.warp(img, pts, pts)
    assert out.shape == img.shape and out.dtype == np.float32
    assert np.abs(out - img).max() < 1e-3
    g = tps.identity_grid(5, 7)
    assert np.allclose(tps.apply(g, pts, tps.fit(pts, pts)), g, atol=1e-9)


def test_control_points_map_where_asked():
    rng = np.random.default_rng(2)
    src, dst = tps.random_control_points(rng, 6, 0.25)
    params = tps.fit(dst, src)
    assert np.allclose(tps.apply(dst, dst, params), src, atol=1e-8)  # f(dst_i) = src_i


def test_warped_image_content_moves_from_src_to_dst():
    h, w = 41, 61  # pixel (x, y) <-> normalized 2x/(w-1)-1: integer pixels are exact grid points
    img = _image(h, w, seed=3)
    src_px = np.array([[10, 8], [50, 30], [30, 20], [5, 35], [55, 5], [20, 30]], float)
    dst_px = src_px + np.array([[4, 2], [-6, 3], [2, -2], [3, -4], [-5, 6], [1, 1]], float)
    to_n = lambda p: np.stack([2 * p[:, 0] / (w - 1) - 1, 2 * p[:, 1] / (h - 1) - 1], 1)  # noqa: E731
    out = tps.warp(img, to_n(src_px), to_n(dst_px))
    for (sx, sy), (dx, dy) in zip(src_px.astype(int), dst_px.astype(int)):
        assert np.abs(out[dy, dx] - img[sy, sx]).max() < 1e-2


def test_displacement_bound_and_fit_validation():
    rng = np.random.default_rng(4)
    src, dst = tps.random_control_points(rng, 6, 0.25)
    assert src.shape == dst.shape == (6, 2)
    assert np.abs(dst - src).max() <= 0.5 + 1e-12  # 0.25 of the size = 0.5 in [-1, 1] units
    with pytest.raises(ValueError):
        tps.fit(np.zeros((2, 2)), np.zeros((2, 2)))


def test_random_reference_range_and_determinism():
    img = _image(32, 32, seed=5)
    a = tps.random_reference(np.random.default_rng(7), img)
    b = tps.random_reference(np.random.default_rng(7), img)
    assert a.shape == (32, 32, 3) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert np.array_equal(a, b)
    c = tps.random_reference(np.random.default_rng(8), img, noise=0.0, max_rotation=0.0, flip=False,
                             max_displacement=0.0)
    assert np.abs(c * 255 - img).max() < 1e-2  # no displacement, rotation, flip or noise: the image
