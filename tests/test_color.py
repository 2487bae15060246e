"""sRGB <-> Lab (runtime/color.py) against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.color

from tinct.runtime import color


def _rgb_grid(steps: int) -> np.ndarray:
    g = np.linspace(0.0, 1.0, steps)
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)


EDGE_COLOURS = np.array(
    [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1],
     [0.5, 0.5, 0.5], [0.04045, 0.04045, 0.04045], [0.04, 0.05, 0.0], [1e-4, 0.0, 0.999]],
    dtype=np.float64)


# ----------------------------------------------------------------------------- independent reference

def _official_rgb_to_lab_f64(rgb: np.ndarray) -> np.ndarray:
    """The official utils.py formulas re-stated literally, per channel, in float64."""
    rgb = np.asarray(rgb, dtype=np.float64)
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    r, g, b = lin[..., 0], lin[..., 1], lin[..., 2]
    x = 0.412453 * r + 0.357580 * g + 0.180423 * b
    y = 0.212671 * r + 0.715160 * g + 0.072169 * b
    z = 0.019334 * r + 0.119193 * g + 0.950227 * b
    x, y, z = x / 0.95047, y / 1.0, z / 1.08883

    def f(t):
        return np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16.0 / 116.0)

    fx, fy, fz = f(x), f(y), f(z)
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def test_matches_literal_official_formulas():
    rng = np.random.default_rng(0)
    rgb = np.concatenate([_rgb_grid(33), rng.random((5000, 3)), EDGE_COLOURS])
    got = color.rgb_to_lab(rgb)
    assert got.dtype == np.float32
    ref = _official_rgb_to_lab_f64(rgb)
    err = np.abs(got - ref).max(axis=0)
    # In the model's units (L_n, ab_n) the float32 implementation agrees to far better than 1e-4.
    assert np.abs(color.normalize_lab(got) - color.normalize_lab(ref)).max() <= 1e-5
    assert err[0] <= 1e-4
    # a = 500 (fx - fy) amplifies float32 rounding of f ~ 1 (ulp 6e-8) by 500: measured max
    # |da| 1.1e-4, |db| 4.3e-5 (float32 arithmetic, as the official torch code), so 2e-4 in raw units.
    assert err[1] <= 2e-4 and err[2] <= 2e-4


def test_golden_values():
    lab = color.rgb_to_lab(np.array([[0.0, 0, 0], [1.0, 1, 1], [1.0, 0, 0]]))
    np.testing.assert_allclose(lab[0], [0, 0, 0], atol=1e-4)
    # White: L=100; a, b are not exactly 0 because the matrix rows sum to 0.950456 / 1.0 /
    # 1.088754, not exactly the white (0.95047, 1, 1.08883); float64 gives a=-0.002455, b=0.004653.
    np.testing.assert_allclose(lab[1], [100, -0.002455, 0.004653], atol=2e-4)
    # sRGB red with these constants (well-known value ~ 53.24, 80.09, 67.20).
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.02)


def test_against_skimage_dense_grid():
    # skimage uses the same D65 white and sRGB matrix, but computes in float64 and inverts the
    # matrix itself (the official code ships a rounded inverse) and uses slightly different
    # threshold handling; tinct computes in float32. Measured on a 65^3 grid (skimage 0.26):
    # max |dL| 2.3e-5, |da| 1.25e-4, |db| 5.5e-5 for rgb->lab and 1.3e-5 for lab->rgb. The bounds
    # below leave margin for other skimage versions while staying far below perceptible (0.1).
    rgb = _rgb_grid(65)
    ours = color.rgb_to_lab(rgb)
    ref = skimage.color.rgb2lab(rgb[:, None, :])[:, 0, :]
    assert np.abs(ours - ref).max() <= 1e-3
    back_ours = color.lab_to_rgb(ref)
    back_ref = skimage.color.lab2rgb(ref[:, None, :])[:, 0, :]
    assert np.abs(back_ours - back_ref).max() <= 1e-4


def test_round_trip_random_and_edges():
    rng = np.random.default_rng(1)
    rgb = np.concatenate([rng.random((20000, 3)), EDGE_COLOURS, _rgb_grid(17)]).astype(np.float32)
    back = color.lab_to_rgb(color.rgb_to_lab(rgb))
    assert back.dtype == np.float32
    assert np.abs(back - rgb).max() <= 1e-4


def test_uint8_input_equals_float_input():
    u8 = np.arange(256, dtype=np.uint8)
    rgb8 = np.stack([u8, u8[::-1], np.roll(u8, 77)], axis=-1)
    np.testing.assert_allclose(color.rgb_to_lab(rgb8), color.rgb_to_lab(rgb8.astype(np.float64) / 255.0),
                               atol=1e-4)
    assert np.abs(color.rgb_to_lab(rgb8) - _official_rgb_to_lab_f64(rgb8 / 255.0)).max() <= 1e-4


@pytest.mark.parametrize("shape", [(5, 7, 3), (2, 5, 7, 3), (3,)])
def test_batch_shapes(shape):
    rng = np.random.default_rng(2)
    rgb = rng.random(shape).astype(np.float32)
    lab = color.rgb_to_lab(rgb)
    assert lab.shape == shape and lab.dtype == np.float32
    # per-pixel: the result does not depend on the leading shape
    flat = color.rgb_to_lab(rgb.reshape(-1, 3)).reshape(shape)
    np.testing.assert_array_equal(lab, flat)
    assert color.lab_to_rgb(lab).shape == shape
    assert color.rgb_to_lab_n(rgb).shape == shape
    assert color.lab_n_to_rgb(color.rgb_to_lab_n(rgb)).shape == shape


def test_rejects_wrong_channel_count():
    with pytest.raises(ValueError):
        color.rgb_to_lab(np.zeros((4, 4, 4)))


def test_normalization_constants():
    assert (color.L_CENT, color.L_NORM, color.AB_NORM) == (50.0, 100.0, 110.0)
    lab = np.array([[0.0, 0, 0], [50, 110, -110], [100, -55, 22]], dtype=np.float32)
    n = color.normalize_lab(lab)
    np.testing.assert_allclose(n, [[-0.5, 0, 0], [0, 1, -1], [0.5, -0.5, 0.2]], atol=1e-7)
    np.testing.assert_allclose(color.denormalize_lab(n), lab, atol=1e-5)
    rgb = np.random.default_rng(3).random((4, 6, 3))
    lab = color.rgb_to_lab(rgb)
    ln = color.rgb_to_lab_n(rgb)
    np.testing.assert_allclose(ln[..., 0], (lab[..., 0] - 50) / 100, atol=1e-6)
    np.testing.assert_allclose(ln[..., 1:], lab[..., 1:] / 110, atol=1e-6)
    np.testing.assert_allclose(color.lab_n_to_rgb(ln), rgb, atol=1e-4)


def test_to_uint8_rounds_and_clips():
    out = color.to_uint8(np.array([-0.1, 0.0, 0.5 / 255, 1.5 / 255, 0.999, 1.2]))
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 0, 2, 255, 255]  # rint: half to even


def test_is_grayscale():
    g = np.full((4, 4, 3), 0.3)
    assert color.is_grayscale(g)
    g[0, 0] = [1, 0, 0]
    assert not color.is_grayscale(g)


# ----------------------------------------------------------------------------- the gamut at a lightness

def _skimage_in_gamut(lab: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """sRGB membership by skimage's own Lab->XYZ and XYZ->linear-RGB matrix (linear RGB in [0, 1] iff sRGB is)."""
    from skimage.color.colorconv import rgb_from_xyz

    xyz = skimage.color.lab2xyz(np.asarray(lab, np.float64).reshape(-1, 1, 3))[:, 0, :]
    lin = xyz @ rgb_from_xyz.T
    return np.all((lin >= -tol) & (lin <= 1 + tol), axis=-1)


def test_in_gamut_agrees_with_skimage_away_from_the_boundary():
    rng = np.random.default_rng(0)
    lab = np.stack([rng.uniform(0, 100, 20000), rng.uniform(-110, 110, 20000), rng.uniform(-110, 110, 20000)], -1)
    ours = color.in_gamut(lab)
    loose, strict = _skimage_in_gamut(lab, 1e-2), _skimage_in_gamut(lab, -1e-2)
    assert np.all(ours[strict]) and not np.any(ours[~loose])  # the two differ only within 1 % of the boundary
    assert 0.1 < ours.mean() < 0.5  # the sample holds both


def test_snap_ab_keeps_in_gamut_picks_and_puts_others_on_the_boundary_at_their_hue():
    rng = np.random.default_rng(1)
    l_value = rng.uniform(1, 99, 5000).astype(np.float32)
    ab = rng.uniform(-110, 110, (5000, 2)).astype(np.float32)
    snapped = color.snap_ab(l_value, ab)
    lab_in = np.concatenate([l_value[:, None], ab], axis=1)
    was_in = color.in_gamut(lab_in)
    np.testing.assert_array_equal(snapped[was_in], ab[was_in])
    assert np.all(color.in_gamut(np.concatenate([l_value[:, None], snapped], axis=1)))
    out = ~was_in
    beyond = np.concatenate([l_value[out, None], snapped[out] * 1.01 + np.sign(snapped[out]) * 0.05], axis=1)
    assert not np.any(_skimage_in_gamut(beyond, -1e-3))  # 1 % more chroma leaves sRGB: on the boundary
    hue = np.arctan2(ab[out, 1], ab[out, 0]) - np.arctan2(snapped[out, 1], snapped[out, 0])
    keep = np.hypot(*snapped[out].T) > 1.0  # hue of (almost) gray is undefined
    assert np.abs(np.angle(np.exp(1j * hue[keep]))).max() < 1e-4
    assert np.all(color.snap_ab(np.float32(50), np.zeros(2, np.float32)) == 0)  # gray exists at every L


def test_snap_rgb_golden_values():
    # sRGB red has L 53.24: at that L it is its own colour; at L 90 (a sky) it cannot exist and becomes a pale red
    # of the same hue; skimage says the result is in sRGB and has L 90
    red = np.array([255, 0, 0], np.uint8)
    assert np.array_equal(color.snap_rgb(53.2408, red), red)
    pale = color.snap_rgb(90.0, red)
    lab = skimage.color.rgb2lab(pale[None, None].astype(np.float64) / 255)[0, 0]
    assert abs(lab[0] - 90.0) < 0.6 and lab[1] > 5 and abs(np.degrees(np.arctan2(lab[2], lab[1])) - 40.0) < 3
    assert color.gamut_ab(50.0).shape[1] == 2 and len(color.gamut_ab(99.5)) < len(color.gamut_ab(60.0))
