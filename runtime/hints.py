"""The hint protocol: one definition shared by training, the runtime and the benchmarks.

A model input is ``x`` float32 ``[N, 4, 224, 224]`` = ``[L_n, a_n*m, b_n*m, m]`` where ``m`` is 1 on
hinted pixels. Hints live on 2x2 cells of the 112x112 grid of a 224 input (the official
``hint_size=2``); a hint's colour is the mean ab of its cell (the official ``avg_hint``), or the
colour a user picked. Everything here is numpy only.

Three producers of hints:
- training: :func:`sample_training_masks` (count uniform in 0..128 inclusive, distinct cells);
- evaluation: :func:`make_eval_hints`, a re-statement of the official ``preparation/make_mask.py``
  (``random.seed(1234)`` once; for each N, for each file in sorted order, N lines ``"x y"`` with
  ``x, y = randint(0, 111) * 2``, x the ROW; with replacement), stored as ``h2-n{N}/<stem>.txt``;
  :func:`read_hint_file` reads such files, including the paper's published sets;
- users: :func:`parse_user_hints`, a JSON list of ``{"x": col, "y": row, "color": ..., "size": s}`` in the
  original image's pixel coordinates, validated strictly. ``size`` (optional, default 1) is the hint's patch:
  a square of ``s x s`` cells of the 112x112 grid centred on the cell of (x, y), all given the hint's colour
  (``s`` = 1 is the official one-cell hint; the model was trained on single cells, a larger patch is a brush).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinct.runtime.color import AB_NORM, rgb_to_lab
from tinct.runtime.errors import InputError

IMG_SIZE = 224
HINT_SIZE = 2
GRID = IMG_SIZE // HINT_SIZE  # 112
EVAL_HINT_COUNTS = (0, 1, 2, 5, 10, 20, 50, 100, 200)
EVAL_SEED = 1234
TRAIN_MAX_HINTS = 128
DEFAULT_MAX_USER_HINTS = 1024
MAX_HINT_SIZE = 16  # a hint's patch side in cells of the 112x112 grid: 16 cells are 1/7 of the image's side


class HintError(InputError):
    """Malformed hints (user JSON or hint files): exit 2, HTTP 400."""


# ----------------------------------------------------------------------------- encoding

def cell_mean_ab(ab_n: np.ndarray) -> np.ndarray:
    """Mean ab of each 2x2 cell: ``(..., 224, 224, 2)`` -> ``(..., 112, 112, 2)``."""
    *lead, h, w, c = ab_n.shape
    cells = ab_n.reshape(*lead, h // HINT_SIZE, HINT_SIZE, w // HINT_SIZE, HINT_SIZE, c)
    return cells.mean(axis=(-4, -2), dtype=np.float32)


def encode(l_n: np.ndarray, hint_ab_n: np.ndarray, hint_mask: np.ndarray,
           out: np.ndarray | None = None) -> np.ndarray:
    """Build the model input ``[N, 4, 224, 224]``.

    l_n: ``[N, 224, 224]`` normalized L. hint_ab_n: ``[N, 112, 112, 2]`` normalized ab per cell.
    hint_mask: ``[N, 112, 112]`` bool/0-1, True on hinted cells. ``out`` may be a preallocated
    float32 array of the result's shape (the runtime reuses one; no allocation then).
    """
    n = l_n.shape[0]
    if out is None:
        out = np.empty((n, 4, IMG_SIZE, IMG_SIZE), dtype=np.float32)
    m = np.asarray(hint_mask, dtype=np.float32)
    out[:, 0] = l_n
    ab = hint_ab_n * m[..., None]  # [N, 112, 112, 2]
    # Nearest upsampling 112 -> 224 of each channel, written in place through a 6-D view.
    view = out.reshape(n, 4, GRID, HINT_SIZE, GRID, HINT_SIZE)
    view[:, 1] = ab[..., 0][:, :, None, :, None]
    view[:, 2] = ab[..., 1][:, :, None, :, None]
    view[:, 3] = m[:, :, None, :, None]
    return out


def encode_from_lab(lab_n: np.ndarray, hint_mask: np.ndarray) -> np.ndarray:
    """Ground-truth hints (training/evaluation): colours are the cells' mean ab of the image.

    lab_n: ``[N, 224, 224, 3]`` normalized Lab. hint_mask: ``[N, 112, 112]``.
    """
    return encode(lab_n[..., 0], cell_mean_ab(lab_n[..., 1:]), hint_mask)


# ----------------------------------------------------------------------------- simulators

def sample_training_masks(rng: np.random.Generator, n: int, max_hints: int = TRAIN_MAX_HINTS,
                          min_hints: int = 0) -> np.ndarray:
    """Training hints: per image a count uniform in [min_hints, max_hints] (inclusive) and that many
    distinct cells uniform over the 112x112 grid. Returns bool ``[n, 112, 112]``."""
    masks = np.zeros((n, GRID * GRID), dtype=bool)
    counts = rng.integers(min_hints, max_hints + 1, size=n)
    for i, k in enumerate(counts):
        masks[i, rng.choice(GRID * GRID, size=int(k), replace=False)] = True
    return masks.reshape(n, GRID, GRID)


def make_eval_hints(filenames: Iterable[str], counts: Sequence[int] = EVAL_HINT_COUNTS,
                    seed: int = EVAL_SEED, img_size: int = IMG_SIZE,
                    hint_size: int = HINT_SIZE) -> dict[int, dict[str, list[tuple[int, int]]]]:
    """Re-statement of the official ``make_mask.py``: ``{count: {stem: [(x_row, y_col), ...]}}``.

    Files are taken in sorted order (as ``sorted(os.listdir())``); one RNG seeded once.
    """
    if img_size % hint_size:
        raise ValueError("img_size must be a multiple of hint_size")
    names = sorted(filenames)
    rnd = random.Random(seed)
    top = img_size // hint_size - 1
    result: dict[int, dict[str, list[tuple[int, int]]]] = {}
    for count in counts:
        per_file = {}
        for name in names:
            per_file[os.path.splitext(name)[0]] = [
                (rnd.randint(0, top) * hint_size, rnd.randint(0, top) * hint_size) for _ in range(count)
            ]
        result[count] = per_file
    return result


def hint_subdir(count: int, hint_size: int = HINT_SIZE) -> str:
    return f"h{hint_size}-n{count}"


def write_eval_hints(hints: dict[int, dict[str, list[tuple[int, int]]]], out_dir: str | Path) -> None:
    """Write ``out_dir/h2-n{N}/<stem>.txt`` files in the official format."""
    out_dir = Path(out_dir)
    for count, per_file in hints.items():
        d = out_dir / hint_subdir(count)
        d.mkdir(parents=True, exist_ok=True)
        for stem, coords in per_file.items():
            (d / f"{stem}.txt").write_text("".join(f"{x} {y}\n" for x, y in coords))


_LINE = re.compile(r"^\s*(-?\d+)\s+(-?\d+)\s*$")


def read_hint_file(path: str | Path, img_size: int = IMG_SIZE) -> np.ndarray:
    """Read an official hint file -> int array ``[K, 2]`` of (x_row, y_col) pixel coordinates."""
    path = Path(path)
    coords = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise HintError(f"{path}:{lineno}: expected two integers 'x y', got {line.strip()!r}")
        x, y = int(m.group(1)), int(m.group(2))
        if not (0 <= x < img_size and 0 <= y < img_size):
            raise HintError(f"{path}:{lineno}: hint ({x}, {y}) is outside the {img_size}x{img_size} image")
        coords.append((x, y))
    return np.asarray(coords, dtype=np.int64).reshape(-1, 2)


def find_hint_file(hint_dir: str | Path, count: int, stem: str, seed: int = EVAL_SEED) -> Path:
    """Locate ``h2-n{count}/<stem>.txt`` under hint_dir, also in the official ``<seed>/`` layout."""
    hint_dir = Path(hint_dir)
    for base in (hint_dir, hint_dir / str(seed)):
        p = base / hint_subdir(count) / f"{stem}.txt"
        if p.is_file():
            return p
    raise HintError(f"no hint file for {stem!r} with {count} hints under {hint_dir}")


def mask_from_coords(coords: np.ndarray, hint_size: int = HINT_SIZE) -> np.ndarray:
    """(x_row, y_col) pixel coords -> bool cell mask ``[112, 112]`` (repeats collapse, as official)."""
    mask = np.zeros((GRID, GRID), dtype=bool)
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    mask[coords[:, 0] // hint_size, coords[:, 1] // hint_size] = True
    return mask


# ----------------------------------------------------------------------------- user hints

@dataclass(frozen=True)
class UserHint:
    """One user click: pixel position in the original image, an sRGB colour (0-255) and the patch side in
    cells of the model's 112x112 hint grid (1: one cell, the official hint)."""

    x: int  # column
    y: int  # row
    rgb: tuple[int, int, int]
    size: int = 1

    def to_json(self) -> dict:
        out = {"x": self.x, "y": self.y, "color": "#{:02x}{:02x}{:02x}".format(*self.rgb)}
        if self.size != 1:  # the default stays out of the file: hint files without brushes read as before
            out["size"] = self.size
        return out


_HEX = re.compile(r"^#([0-9a-fA-F]{6})$")


def _parse_color(value, where: str) -> tuple[int, int, int]:
    if isinstance(value, str):
        m = _HEX.match(value.strip())
        if not m:
            raise HintError(f"{where}: colour {value!r} is not '#rrggbb'")
        h = m.group(1)
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    if isinstance(value, (list, tuple)):
        if len(value) != 3:
            raise HintError(f"{where}: colour must have 3 components [r, g, b], got {len(value)}")
        out = []
        for c in value:
            if isinstance(c, bool) or not isinstance(c, (int, float)):
                raise HintError(f"{where}: colour component {c!r} is not a number")
            if isinstance(c, float) and (math.isnan(c) or math.isinf(c)):
                raise HintError(f"{where}: colour component {c!r} is not finite")
            if c != int(c) or not 0 <= c <= 255:
                raise HintError(f"{where}: colour component {c!r} is not an integer in 0..255")
            out.append(int(c))
        return out[0], out[1], out[2]
    raise HintError(f"{where}: colour must be '#rrggbb' or [r, g, b], got {type(value).__name__}")


def _parse_coord(value, name: str, limit: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HintError(f"{where}: '{name}' must be a number, got {value!r}")
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise HintError(f"{where}: '{name}' is not finite ({value!r})")
        if value != int(value):
            raise HintError(f"{where}: '{name}' must be a whole pixel index, got {value!r}")
    v = int(value)
    if not 0 <= v < limit:
        raise HintError(f"{where}: '{name}'={v} is outside the image (0..{limit - 1})")
    return v


def parse_user_hints(data, image_size: tuple[int, int],
                     max_hints: int = DEFAULT_MAX_USER_HINTS) -> list[UserHint]:
    """Validate user hints. ``data``: JSON text, bytes, or the decoded list. ``image_size``: (W, H).

    Raises :class:`HintError` naming the first problem (index and field).
    """
    width, height = image_size
    if isinstance(data, (str, bytes, bytearray)):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
            raise HintError(f"hints are not valid JSON: {str(exc).splitlines()[0][:200]}") from None
    if isinstance(data, dict) and "hints" in data:
        data = data["hints"]
    if not isinstance(data, list):
        raise HintError(f"hints must be a JSON list of {{x, y, color}} objects, got {type(data).__name__}")
    if len(data) > max_hints:
        raise HintError(f"too many hints: {len(data)} > {max_hints}")
    hints, seen = [], set()
    for i, item in enumerate(data):
        where = f"hint {i}"
        if not isinstance(item, dict):
            raise HintError(f"{where}: expected an object with x, y, color, got {type(item).__name__}")
        missing = [k for k in ("x", "y", "color") if k not in item]
        if missing:
            raise HintError(f"{where}: missing {', '.join(missing)}")
        extra = sorted(str(k) for k in set(item) - {"x", "y", "color", "size"})
        if extra:
            raise HintError(f"{where}: unknown field(s) {', '.join(extra)}")
        x = _parse_coord(item["x"], "x", width, where)
        y = _parse_coord(item["y"], "y", height, where)
        if (x, y) in seen:
            raise HintError(f"{where}: duplicate position x={x}, y={y}")
        seen.add((x, y))
        size = _parse_size(item["size"], where) if "size" in item else 1
        hints.append(UserHint(x, y, _parse_color(item["color"], where), size))
    return hints


def _parse_size(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or isinstance(value, float) and (
            not math.isfinite(value) or value != int(value)):
        raise HintError(f"{where}: 'size' must be a whole number of cells, got {value!r:.40}")
    if not 1 <= value <= MAX_HINT_SIZE:
        raise HintError(f"{where}: 'size'={int(value)} is outside 1..{MAX_HINT_SIZE} (cells of the {GRID}x{GRID} "
                        "hint grid)")
    return int(value)


MAX_HINTS_FILE_BYTES = 1 << 20  # 4096 hints take ~250 kB; /dev/zero once grew to 24 GB


def load_user_hints(path: str | Path, image_size: tuple[int, int],
                    max_hints: int = DEFAULT_MAX_USER_HINTS) -> list[UserHint]:
    """Read and validate a hints file: a regular file of at most :data:`MAX_HINTS_FILE_BYTES`, UTF-8 JSON."""

    path = Path(path)
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise HintError(f"hints file {path} is not a regular file")
            data = f.read(MAX_HINTS_FILE_BYTES + 1)
    except OSError as exc:
        raise HintError(f"cannot read hints file {path}: {exc.strerror or exc}") from None
    return decode_user_hints(data, image_size, max_hints, what=f"hints file {path}")


def decode_user_hints(data: bytes, image_size: tuple[int, int], max_hints: int = DEFAULT_MAX_USER_HINTS,
                      what: str = "hints") -> list[UserHint]:
    """Hint JSON as bytes (a file's content, an upload's field): size and encoding checked, then parsed."""
    if len(data) > MAX_HINTS_FILE_BYTES:
        raise HintError(f"{what} is larger than {MAX_HINTS_FILE_BYTES >> 10} KiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HintError(f"{what} is not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None
    return parse_user_hints(text, image_size, max_hints)


def user_hints_to_cells(hints: Sequence[UserHint], image_size: tuple[int, int]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Map user hints onto the 112x112 cell grid of the model input.

    Returns ``(hint_ab_n [112, 112, 2], mask [112, 112] bool)``. A hint's colour contributes its
    ab (its lightness is the photo's) to each cell of its patch (``size`` cells square, centred on the cell of
    (x, y): rows ``r - (size-1)//2 .. r + size//2``, clipped to the grid); cells several hints cover are averaged.
    """
    width, height = image_size
    ab = np.zeros((GRID, GRID, 2), dtype=np.float32)
    count = np.zeros((GRID, GRID), dtype=np.float32)
    if hints:
        rows = np.array([h.y for h in hints], dtype=np.float64)
        cols = np.array([h.x for h in hints], dtype=np.float64)
        # pixel centre -> 224 grid -> cell index
        r = np.clip(((rows + 0.5) * IMG_SIZE / height // HINT_SIZE).astype(np.int64), 0, GRID - 1)
        c = np.clip(((cols + 0.5) * IMG_SIZE / width // HINT_SIZE).astype(np.int64), 0, GRID - 1)
        colors = np.array([h.rgb for h in hints], dtype=np.uint8)
        hint_ab = rgb_to_lab(colors)[:, 1:] / AB_NORM
        sizes = np.array([h.size for h in hints], dtype=np.int64)
        if (sizes == 1).all():
            np.add.at(ab, (r, c), hint_ab)
            np.add.at(count, (r, c), 1.0)
        else:
            for rr, cc, s, v in zip(r, c, sizes, hint_ab):
                r0, c0 = max(rr - (s - 1) // 2, 0), max(cc - (s - 1) // 2, 0)
                r1, c1 = min(rr + s // 2 + 1, GRID), min(cc + s // 2 + 1, GRID)
                ab[r0:r1, c0:c1] += v
                count[r0:r1, c0:c1] += 1.0
    mask = count > 0
    ab[mask] /= count[mask][:, None]
    return ab, mask
