"""Thin-plate-spline warps in numpy (vectorized), for Color2Embed's self-supervised references.

Coordinates are normalized to [-1, 1] with the align-corners convention: pixel column ``x`` of a
width-``W`` image is ``2 x / (W - 1) - 1`` (rows likewise), so the corners of the image are exactly
+-1 and the identity map samples every pixel at its own centre.

A warp is a *sampling map* ``f``: the output pixel at ``p`` takes the input's colour at ``f(p)``.
:func:`fit` solves the interpolating TPS with ``f(dst_i) = src_i``: the content found at ``src_i``
in the input appears at ``dst_i`` in the output ("control point i moves from src_i to dst_i").
Kernel ``U(r) = r^2 log r^2``; system ``[[K, P], [P^T, 0]] [w; a] = [src; 0]`` with ``P = [1, x, y]``.

:func:`random_reference` is the training augmentation: a random TPS (6 control points, each moved
by up to +-0.25 of the image size), a random rotation and horizontal flip composed into the same
sampling map (one bilinear resampling), then Gaussian noise.
"""

from __future__ import annotations

import numpy as np

DEFAULT_POINTS = 6
DEFAULT_MAX_DISPLACEMENT = 0.25  # fraction of the image size
DEFAULT_MAX_ROTATION = 15.0  # degrees
DEFAULT_NOISE = 0.02  # std of additive Gaussian noise on [0, 1] RGB


def _kernel(r2: np.ndarray) -> np.ndarray:
    """U = r^2 log r^2, 0 at r = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = r2 * np.log(r2)
    return np.where(r2 > 0, out, 0.0)


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[P, 2] x [K, 2] -> squared distances [P, K]."""
    d = a[:, None, :] - b[None, :, :]
    return (d * d).sum(-1)


def fit(dst: np.ndarray, src: np.ndarray, reg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """TPS ``f`` with ``f(dst_i) = src_i`` (``reg`` > 0 relaxes interpolation). Returns (w [K, 2], a [3, 2])."""
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    src = np.asarray(src, np.float64).reshape(-1, 2)
    if dst.shape != src.shape or len(dst) < 3:
        raise ValueError(f"need >= 3 matching control points, got {dst.shape} and {src.shape}")
    k = len(dst)
    kmat = _kernel(_sqdist(dst, dst)) + reg * np.eye(k)
    p = np.concatenate([np.ones((k, 1)), dst], axis=1)
    a = np.zeros((k + 3, k + 3))
    a[:k, :k], a[:k, k:], a[k:, :k] = kmat, p, p.T
    rhs = np.zeros((k + 3, 2))
    rhs[:k] = src
    sol = np.linalg.lstsq(a, rhs, rcond=None)[0]  # lstsq: robust to (near-)collinear points
    return sol[:k], sol[k:]


def apply(points: np.ndarray, dst: np.ndarray, params: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Evaluate the TPS fitted on control points ``dst`` at ``points`` [..., 2] -> [..., 2]."""
    w, a = params
    pts = np.asarray(points, np.float64)
    flat = pts.reshape(-1, 2)
    u = _kernel(_sqdist(flat, np.asarray(dst, np.float64).reshape(-1, 2)))
    out = a[0] + flat @ a[1:] + u @ w
    return out.reshape(pts.shape)


def identity_grid(h: int, w: int) -> np.ndarray:
    """[h, w, 2] normalized (x, y) of every pixel centre (align-corners convention)."""
    ys = np.linspace(-1.0, 1.0, h) if h > 1 else np.zeros(1)
    xs = np.linspace(-1.0, 1.0, w) if w > 1 else np.zeros(1)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx, gy], axis=-1)


def tps_grid(h: int, w: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Sampling map [h, w, 2] (normalized x, y) of the TPS with ``f(dst_i) = src_i``."""
    return apply(identity_grid(h, w), dst, fit(dst, src))


def sample(image: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Bilinear sampling of ``image`` [H, W, C] (any dtype) at normalized ``grid`` [h, w, 2];
    out-of-range coordinates are clamped to the border. Returns float32 [h, w, C] in the input's units."""
    img = np.asarray(image)
    hh, ww = img.shape[:2]
    x = (grid[..., 0] + 1.0) * (0.5 * (ww - 1))
    y = (grid[..., 1] + 1.0) * (0.5 * (hh - 1))
    x = np.clip(x, 0.0, ww - 1)
    y = np.clip(y, 0.0, hh - 1)
    x0 = np.minimum(np.floor(x).astype(np.intp), ww - 1)
    y0 = np.minimum(np.floor(y).astype(np.intp), hh - 1)
    x1, y1 = np.minimum(x0 + 1, ww - 1), np.minimum(y0 + 1, hh - 1)
    fx = (x - x0).astype(np.float32)[..., None]
    fy = (y - y0).astype(np.float32)[..., None]
    f = img.astype(np.float32, copy=False)
    top = f[y0, x0] * (1 - fx) + f[y0, x1] * fx
    bot = f[y1, x0] * (1 - fx) + f[y1, x1] * fx
    return top * (1 - fy) + bot * fy


def warp(image: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The image warped so that its content at ``src_i`` lands on ``dst_i`` (float32, input units)."""
    h, w = np.asarray(image).shape[:2]
    return sample(image, tps_grid(h, w, src, dst))


def random_control_points(rng: np.random.Generator, n: int = DEFAULT_POINTS,
                          max_displacement: float = DEFAULT_MAX_DISPLACEMENT) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) [n, 2] normalized: ``src`` uniform over the image, ``dst`` = ``src`` moved by up to
    +-``max_displacement`` of the image size in x and y independently (2 * fraction in [-1, 1] units)."""
    src = rng.uniform(-1.0, 1.0, size=(n, 2))
    dst = src + rng.uniform(-2.0 * max_displacement, 2.0 * max_displacement, size=(n, 2))
    return src, dst


def random_reference(rng: np.random.Generator, image: np.ndarray, *, n_points: int = DEFAULT_POINTS,
                     max_displacement: float = DEFAULT_MAX_DISPLACEMENT, max_rotation: float = DEFAULT_MAX_ROTATION,
                     flip: bool = True, noise: float = DEFAULT_NOISE) -> np.ndarray:
    """Training reference from a uint8 RGB photo [H, W, 3]: TPS + rotation + flip (one resampling)
    + Gaussian noise. Returns float32 [H, W, 3] in [0, 1]."""
    h, w = image.shape[:2]
    src, dst = random_control_points(rng, n_points, max_displacement)
    g = identity_grid(h, w)
    if flip and rng.random() < 0.5:
        g = g * np.array([-1.0, 1.0])
    if max_rotation:
        t = np.deg2rad(rng.uniform(-max_rotation, max_rotation))
        c, s = np.cos(t), np.sin(t)
        g = g @ np.array([[c, s], [-s, c]])
    out = sample(image, apply(g, dst, fit(dst, src))) * np.float32(1.0 / 255.0)
    if noise:
        out += rng.normal(0.0, noise, size=out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)
