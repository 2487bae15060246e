"""Image I/O for the runtime: strict loading with one-line errors, atomic saving.

:func:`load_image` returns uint8 RGB ``[H, W, 3]`` (grayscale, palette, 16-bit and RGBA inputs are
converted; alpha is dropped onto nothing, i.e. ignored) with the EXIF orientation applied. Images
over ``max_pixels`` are refused from the header, before any pixel is decoded.
:func:`save_image` writes PNG or JPEG through a temporary file in the target directory and an
``os.replace``, so a failure never leaves a partial or stale-looking output.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tinct.runtime.artifact import atomic_path
from tinct.runtime.errors import InputError, TooLargeError

DEFAULT_MAX_PIXELS = 50_000_000
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


class ImageError(InputError):
    """An image that cannot be read as a photo (exit 2)."""


class ImageTooLargeError(ImageError, TooLargeError):
    """More pixels than allowed (HTTP 413 from the server)."""


def resize_center_crop(im: Image.Image, short: int, crop: int) -> np.ndarray:
    """The ImageNet evaluation transform: short side to ``short`` (bilinear, Pillow), then the centre
    ``crop`` x ``crop`` square; uint8 array. ``im`` must already be RGB."""
    w, h = im.size
    f = short / min(w, h)
    nw, nh = max(short, round(w * f)), max(short, round(h * f))
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - crop) // 2, (nh - crop) // 2
    return np.asarray(im.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def load_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` from an image file (see the module doc); :class:`ImageError` names the problem."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image {path} does not exist")
    if not path.is_file():
        raise ImageError(f"image {path} is not a file")
    return _decode(path, path.name, max_pixels)


def decode_image(data: bytes, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """:func:`load_image` for bytes already in memory (an upload); ``name`` labels the messages only."""

    if not data:
        raise ImageError(f"{name}: empty upload, not an image")
    return _decode(io.BytesIO(data), name, max_pixels)


def _decode(source, name: str, max_pixels: int | None) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # our own limit below, checked from the header
            try:
                im = Image.open(source)
            finally:
                Image.MAX_IMAGE_PIXELS = old
        with im:
            w, h = im.size
            if max_pixels and w * h > max_pixels:
                raise ImageTooLargeError(f"image {name} is {w}x{h} = {w * h / 1e6:.1f} MP, over the limit of "
                                         f"{max_pixels / 1e6:.1f} MP (--max-pixels)")
            if w == 0 or h == 0:
                raise ImageError(f"image {name} is empty ({w}x{h})")
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode.startswith("I;16"):  # 16 bits by the file's own word: scaled by 255/65535, dark or not
                arr = np.asarray(im, dtype=np.float64)
                im = Image.fromarray(np.clip(np.rint(arr * (255.0 / 65535.0)), 0, 255).astype(np.uint8), "L")
            elif im.mode in ("I", "F"):  # 32-bit integer or float samples: their range is not known, so not guessed
                kind = "integer" if im.mode == "I" else "floating-point"
                raise ImageError(f"{name}: 32-bit {kind} samples; convert the image to 8 or 16 bits per channel")
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image in a format Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageError(f"{name}: corrupt or truncated image ({msg})") from None
    except Image.DecompressionBombError as exc:  # pragma: no cover - MAX_IMAGE_PIXELS lifted above
        raise ImageError(f"{name}: {exc}") from None


def check_output_path(path: str | Path) -> str:
    """Validate an output path before any work is done; returns the Pillow format name."""
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"output {path.name}: unsupported format {path.suffix or '(none)'}; use .png or .jpg")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ImageError(f"output directory {parent} does not exist")
    if path.is_dir():
        raise ImageError(f"output {path} is a directory")
    if not os.access(parent, os.W_OK | os.X_OK):  # before the model runs, not after
        raise ImageError(f"output directory {parent} is not writable")
    return fmt


def save_image(path: str | Path, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write uint8 RGB ``[H, W, 3]`` atomically (temp file in the same directory + rename)."""
    path = Path(path)
    fmt = check_output_path(path)
    try:
        with atomic_path(path) as tmp:
            im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
            if fmt == "JPEG":
                im.save(tmp, fmt, quality=quality)
            else:
                im.save(tmp, fmt, compress_level=6)
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
