"""benchmarks.metrics and benchmarks.compare, checked against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinct.benchmarks import metrics
from tinct.benchmarks.gate import Threshold, compare, format_table, parse_threshold
from tinct.runtime.errors import TinctError
from tinct.runtime.evaluation import psnr

skimage = pytest.importorskip("skimage")


def _pair(seed=0, n=2, size=224, noise=20):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    d = rng.integers(-noise, noise + 1, gt.shape)
    pred = np.clip(gt.astype(np.int64) + d, 0, 255).astype(np.uint8)
    return pred, gt


# ----------------------------------------------------------------------------- PSNR / SSIM

def test_psnr_matches_skimage():
    from skimage.metrics import peak_signal_noise_ratio

    pred, gt = _pair()
    ours = psnr(pred, gt)
    ref = [peak_signal_noise_ratio(g, p, data_range=255) for p, g in zip(pred, gt)]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


def test_psnr_floor_on_identical_images():
    # skimage gives inf; the official protocol floors the MSE at 1e-5 -> exactly 50 dB.
    _, gt = _pair(n=1)
    assert psnr(gt, gt)[0] == pytest.approx(50.0)


def test_ssim_matches_direct_skimage_call():
    from skimage.metrics import structural_similarity

    pred, gt = _pair(seed=1, size=64)
    ours = metrics.ssim(pred, gt)
    ref = [structural_similarity(p, g, channel_axis=-1, data_range=255) for p, g in zip(pred, gt)]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert metrics.ssim(gt[:1], gt[:1])[0] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- B-PSNR

def _bpsnr_loop(pred, gt, patch=16, eps=1e-5):
    """Independent: enumerate boundary pixels one by one."""
    h, w, _ = gt.shape
    lines = set()
    for k in range(1, h // patch):
        lines.update({patch * k - 1, patch * k})
    total, count = 0.0, 0
    for r in range(h):
        for c in range(w):
            if r in lines or c in lines:
                e = (pred[r, c].astype(float) / 255 - gt[r, c].astype(float) / 255) ** 2
                total += e.mean()
                count += 1
    mse = max(total / count, eps)
    return 10 * math.log10(1 / mse)


def test_boundary_mask_rows_and_columns():
    m = metrics.boundary_mask(224, 224)
    lines = sorted({16 * k - 1 for k in range(1, 14)} | {16 * k for k in range(1, 14)})
    assert sorted(np.flatnonzero(m.all(axis=1))) == lines
    assert sorted(np.flatnonzero(m.all(axis=0))) == lines
    assert m.sum() == 26 * 224 * 2 - 26 * 26


def test_bpsnr_matches_loop():
    pred, gt = _pair(seed=2, n=1, size=64, noise=40)
    # make the boundary differ from the interior so a wrong mask would show
    pred[0, 15:17] = 0
    ours = metrics.boundary_psnr(pred, gt)[0]
    assert ours == pytest.approx(_bpsnr_loop(pred[0], gt[0]), abs=1e-9)
    assert ours != pytest.approx(psnr(pred, gt)[0], abs=0.1)


# ----------------------------------------------------------------------------- PEV

def test_pev_matches_independent_computation():
    pred, gt = _pair(seed=3, n=2, size=224, noise=30)
    pred[0, :16, :16] = 255 - gt[0, :16, :16]  # one very bad patch
    ours = metrics.patch_error_variance(pred, gt)
    for i in range(2):
        rmses = []
        for pr in range(14):
            for pc in range(14):
                a = pred[i, pr * 16:(pr + 1) * 16, pc * 16:(pc + 1) * 16].astype(float)
                b = gt[i, pr * 16:(pr + 1) * 16, pc * 16:(pc + 1) * 16].astype(float)
                rmses.append(math.sqrt(((a - b) ** 2).mean()))
        assert len(rmses) == 196
        mean = sum(rmses) / len(rmses)
        var = sum((r - mean) ** 2 for r in rmses) / (len(rmses) - 1)  # unbiased
        assert ours[i] == pytest.approx(var, rel=1e-10)
    assert ours[0] > 10 * ours[1]


# ----------------------------------------------------------------------------- CIEDE2000

# Sharma, Wu, Dalal, "The CIEDE2000 color-difference formula: implementation notes, supplementary
# test data, and mathematical observations", Color Res. Appl. 30(1), 2005, Table 1 (pairs 1, 7, 17, 25).
SHARMA = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
]


@pytest.mark.parametrize("lab1,lab2,expected", SHARMA)
def test_ciede2000_sharma_pairs(lab1, lab2, expected):
    from skimage.color import deltaE_ciede2000

    assert deltaE_ciede2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)


def test_ciede2000_metric_on_images():
    from skimage.color import deltaE_ciede2000

    from tinct.runtime.color import rgb_to_lab

    pred, gt = _pair(seed=4, n=2, size=32)
    ours = metrics.ciede2000(pred, gt)
    for i in range(2):
        ref = deltaE_ciede2000(rgb_to_lab(gt[i]).astype(np.float64), rgb_to_lab(pred[i]).astype(np.float64)).mean()
        assert ours[i] == pytest.approx(ref)
    assert metrics.ciede2000(gt, gt) == pytest.approx([0.0, 0.0])


def test_compute_all_keys_and_shapes():
    pred, gt = _pair(seed=5, n=3, size=224)
    out = metrics.compute_all(pred, gt)
    assert set(out) == set(metrics.METRICS)
    assert all(v.shape == (3,) for v in out.values())


def test_metrics_reject_bad_inputs():
    pred, gt = _pair(n=1, size=32)
    with pytest.raises(ValueError):
        metrics.boundary_psnr(pred.astype(np.float32), gt)
    with pytest.raises(ValueError):
        metrics.patch_error_variance(pred[:, :20, :20], gt[:, :20, :20])


# ----------------------------------------------------------------------------- compare

def _acc(psnr_by_k):
    return {"kind": "accuracy", "psnr": {str(k): v for k, v in psnr_by_k.items()}}


def test_compare_accuracy_gate():
    base = _acc({0: 24.0, 10: 28.0})
    assert all(c.ok for c in compare(base, _acc({0: 23.96, 10: 28.1}), 0.05))
    checks = compare(base, _acc({0: 23.9, 10: 28.0}), 0.05)
    assert [c.ok for c in checks] == [False, True]
    assert "REGRESSED" in format_table(checks)
    missing = compare(base, _acc({0: 24.0}), 0.05)
    assert not missing[1].ok


def _lat(ms):
    return {"kind": "latency", "results": [{"model": "m", "backend": "ort", "precision": "fp32", "threads": 1,
                                             "median_ms": ms, "iqr_ms": 0.1}]}


def test_compare_latency_gate():
    assert compare(_lat(30.0), _lat(32.9), max_latency_increase=parse_threshold("10%"))[0].ok
    assert not compare(_lat(30.0), _lat(33.1), max_latency_increase=parse_threshold("10%"))[0].ok
    assert compare(_lat(30.0), _lat(31.9), max_latency_increase=parse_threshold("2ms"))[0].ok
    assert not compare(_lat(30.0), _lat(32.5), max_latency_increase=parse_threshold("2 ms"))[0].ok
    assert compare(_lat(30.0), _lat(20.0), max_latency_increase=parse_threshold("0%"))[0].ok
    with pytest.raises(TinctError):
        compare(_lat(30.0), _acc({0: 1.0}), max_latency_increase=parse_threshold("1%"))


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.sampled_from(["%", "ms", "MS", " ms", "%"]))
@settings(max_examples=60, deadline=None)
def test_parse_threshold_roundtrip(value, unit):
    text = f"{value:f}{unit}"
    t = parse_threshold(text)
    assert t.unit == unit.strip().lower()
    assert t.value == pytest.approx(float(f"{value:f}"))
    # 'x%' of a 100 ms baseline and 'x ms' both allow x ms
    assert t.limit_ms(100.0) == pytest.approx(t.value)


@given(st.text(max_size=12))
@settings(max_examples=150, deadline=None)
def test_parse_threshold_rejects_garbage(text):
    import re

    if re.fullmatch(r"\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*(%|[mM][sS])\s*", text):
        assert isinstance(parse_threshold(text), Threshold)
    else:
        with pytest.raises(TinctError):
            parse_threshold(text)


@pytest.mark.parametrize("bad", ["10", "-5%", "abc", "5 s", "%", "ms", "1e3%", "nan%", "inf ms", ""])
def test_parse_threshold_rejects(bad):
    with pytest.raises(TinctError):
        parse_threshold(bad)
