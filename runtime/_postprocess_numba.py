"""The fused kernels of :mod:`runtime.postprocess` (numba). Imported only when numba is installed and
chosen; compiled once per machine and cached under ``$NUMBA_CACHE_DIR`` (default
``~/.cache/tinct/numba``, so a read-only install still caches)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "tinct" / "numba"))

import numba as nb
import numpy as np

_F_THRESH = np.float32(0.2068966)
_K0 = np.float32(16.0 / 116.0)
_K1 = np.float32(1.0 / 7.787)
_EPS = np.float32(0.008856)
_LOCK = threading.Lock()


@nb.njit(parallel=True, cache=True, fastmath=True, boundscheck=False)
def _prepare(rgb, lin_lut, yw, yn, l_out, fy_out, y_out):  # pragma: no cover - compiled
    h, w = l_out.shape
    for i in nb.prange(h):
        for j in range(w):
            lum = (lin_lut[rgb[i, j, 0]] * yw[0] + lin_lut[rgb[i, j, 1]] * yw[1]
                   + lin_lut[rgb[i, j, 2]] * yw[2])
            f = np.cbrt(lum) if lum > _EPS else np.float32(7.787) * lum + _K0
            ll = f * np.float32(116.0) - np.float32(16.0)
            fy = (ll + np.float32(16.0)) / np.float32(116.0)
            l_out[i, j] = ll
            fy_out[i, j] = fy
            y_out[i, j] = (fy * fy * fy if fy > _F_THRESH else (fy - _K0) * _K1) * yn


@nb.njit(parallel=True, cache=True, fastmath=True, boundscheck=False)
def _columns(ab, c0, c1, wc, ah, bh):  # pragma: no cover - compiled
    """The model's ab rows upsampled along x to the output width, pre-scaled to fx/fz offsets: [n, W] each."""
    n_in, w = ab.shape[1], c0.shape[0]
    sa, sb = np.float32(110.0 / 500.0), np.float32(-110.0 / 200.0)
    for k in nb.prange(n_in):
        for j in range(w):
            u = wc[j]
            ah[k, j] = (ab[0, k, c0[j]] * (np.float32(1.0) - u) + ab[0, k, c1[j]] * u) * sa
            bh[k, j] = (ab[1, k, c0[j]] * (np.float32(1.0) - u) + ab[1, k, c1[j]] * u) * sb


@nb.njit(cache=True, fastmath=True, boundscheck=False, inline="always")
def _row(i, ah, bh, r0, r1, wr, fy, yv, m, wxz, top, lut, out, i0, i1, i2):  # pragma: no cover - compiled
    """One output row: the two source rows blended along y (contiguous, vectorized), Lab -> XYZ -> linear RGB as
    gamma-table indices (``i0..i2``, the caller's scratch), then the table into the interleaved output."""
    zero, one = np.float32(0.0), np.float32(1.0)
    t = wr[i]
    ra, rb = r0[i], r1[i]
    for j in range(fy.shape[1]):
        f = fy[i, j]
        fx = f + ah[ra, j] * (one - t) + ah[rb, j] * t
        fz = max(f + bh[ra, j] * (one - t) + bh[rb, j] * t, zero)
        x = (fx * fx * fx if fx > _F_THRESH else (fx - _K0) * _K1) * wxz[0]
        z = (fz * fz * fz if fz > _F_THRESH else (fz - _K0) * _K1) * wxz[1]
        y = yv[i, j]
        i0[j] = np.int32(min(max(m[0, 0] * x + m[0, 1] * y + m[0, 2] * z, zero), top))
        i1[j] = np.int32(min(max(m[1, 0] * x + m[1, 1] * y + m[1, 2] * z, zero), top))
        i2[j] = np.int32(min(max(m[2, 0] * x + m[2, 1] * y + m[2, 2] * z, zero), top))
    for j in range(fy.shape[1]):  # the table lookups and the interleaved stores, apart from the vectorized math
        out[i, j, 0] = lut[i0[j]]
        out[i, j, 1] = lut[i1[j]]
        out[i, j, 2] = lut[i2[j]]


@nb.njit(parallel=True, cache=True, fastmath=True, boundscheck=False)
def _rows(ah, bh, r0, r1, wr, fy, yv, m, wxz, lut, out):  # pragma: no cover - compiled
    """Every output row, in up to 64 chunks split over the threads (a chunk allocates its scratch once)."""
    h, w = fy.shape
    top = np.float32(lut.shape[0] - 1)
    n_chunks = min(h, 64)
    for ci in nb.prange(n_chunks):
        i0, i1, i2 = np.empty(w, np.int32), np.empty(w, np.int32), np.empty(w, np.int32)
        for i in range(ci * h // n_chunks, (ci + 1) * h // n_chunks):
            _row(i, ah, bh, r0, r1, wr, fy, yv, m, wxz, top, lut, out, i0, i1, i2)


def _threads(n: int) -> int:
    return max(1, min(int(n or 1), nb.config.NUMBA_NUM_THREADS))


def prepare(rgb, lin_lut, yw, yn, l_out, fy_out, y_out, threads: int = 0) -> None:
    with _LOCK:  # compile / load from the cache once, not from several threads at a time
        nb.set_num_threads(_threads(threads or nb.config.NUMBA_NUM_THREADS))
        _prepare(rgb, lin_lut, yw, yn, l_out, fy_out, y_out)


def render(ab, r0, r1, wr, c0, c1, wc, fy, yv, m, wxz, lut, out, cols, threads: int = 1) -> None:
    """``cols``: the caller's [2, n, W] float32 buffer for the x-upsampled rows (a canvas keeps one)."""
    nb.set_num_threads(_threads(threads))  # per calling thread (numba's setting is thread-local)
    _columns(ab, c0, c1, wc, cols[0], cols[1])
    _rows(cols[0], cols[1], r0, r1, wr, fy, yv, m, wxz, lut, out)
