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
def _render(ab, r0, r1, wr, c0, c1, wc, fy, yv, m, wxz, lut, out):  # pragma: no cover - compiled
    h, w = fy.shape
    n_in = ab.shape[2]
    top = np.float32(lut.shape[0] - 1)
    zero = np.float32(0.0)
    m00, m01, m02 = m[0, 0], m[0, 1], m[0, 2]
    m10, m11, m12 = m[1, 0], m[1, 1], m[1, 2]
    m20, m21, m22 = m[2, 0], m[2, 1], m[2, 2]
    for i in nb.prange(h):
        t = wr[i]
        ra, rb = r0[i], r1[i]
        arow = np.empty(n_in, np.float32)
        brow = np.empty(n_in, np.float32)
        for k in range(n_in):  # the row's ab, interpolated once, pre-scaled to fx/fz offsets
            arow[k] = (ab[0, ra, k] * (np.float32(1.0) - t) + ab[0, rb, k] * t) * np.float32(110.0 / 500.0)
            brow[k] = (ab[1, ra, k] * (np.float32(1.0) - t) + ab[1, rb, k] * t) * np.float32(-110.0 / 200.0)
        xs = np.empty(w, np.float32)
        zs = np.empty(w, np.float32)
        for j in range(w):
            u = wc[j]
            f = fy[i, j]
            fx = f + arow[c0[j]] * (np.float32(1.0) - u) + arow[c1[j]] * u
            fz = max(f + brow[c0[j]] * (np.float32(1.0) - u) + brow[c1[j]] * u, zero)
            xs[j] = (fx * fx * fx if fx > _F_THRESH else (fx - _K0) * _K1) * wxz[0]
            zs[j] = (fz * fz * fz if fz > _F_THRESH else (fz - _K0) * _K1) * wxz[1]
        for j in range(w):
            x, y, z = xs[j], yv[i, j], zs[j]
            out[i, j, 0] = lut[np.int32(min(max(m00 * x + m01 * y + m02 * z, zero), top))]
            out[i, j, 1] = lut[np.int32(min(max(m10 * x + m11 * y + m12 * z, zero), top))]
            out[i, j, 2] = lut[np.int32(min(max(m20 * x + m21 * y + m22 * z, zero), top))]


def _threads(n: int) -> int:
    return max(1, min(int(n or 1), nb.config.NUMBA_NUM_THREADS))


def prepare(rgb, lin_lut, yw, yn, l_out, fy_out, y_out, threads: int = 0) -> None:
    with _LOCK:  # compile / load from the cache once, not from several threads at a time
        nb.set_num_threads(_threads(threads or nb.config.NUMBA_NUM_THREADS))
        _prepare(rgb, lin_lut, yw, yn, l_out, fy_out, y_out)


def render(ab, r0, r1, wr, c0, c1, wc, fy, yv, m, wxz, lut, out, threads: int = 1) -> None:
    nb.set_num_threads(_threads(threads))  # per calling thread (numba's setting is thread-local)
    _render(ab, r0, r1, wr, c0, c1, wc, fy, yv, m, wxz, lut, out)
