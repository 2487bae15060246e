"""Image I/O for the runtime: strict loading with one-line errors, atomic saving.

:func:`load_image` returns uint8 RGB ``[H, W, 3]`` (grayscale, palette, 16-bit and RGBA inputs are
converted; alpha is dropped onto nothing, i.e. ignored) with the EXIF orientation applied. It is the one loader
of the CLI, ``tinct batch`` and ``tinct serve``, and it keeps decoders on a leash:

- only the formats in :data:`FORMATS` are opened (JPEG, PNG, WebP, BMP, TIFF, GIF; the first frame or page):
  formats whose readers decode inside ``Image.open`` (ICO, ICNS with embedded PNGs; EPS through Ghostscript)
  never reach Pillow's other plugins;
- images over ``max_pixels`` are refused from the header, before any pixel is decoded;
- a JPEG with more than :data:`MAX_JPEG_SCANS` scans is refused before decoding: each progressive scan is one
  more pass over the whole image, so a small file repeating a tiny scan decodes for minutes (a 1.3 MB 36 MP
  file with 20,000 scans: ~55 s of CPU); real progressive files have about 10.
:func:`image_header` reads the size and format alone (what a server charges to its memory budget before it
decodes).
:func:`save_image` writes PNG or JPEG through a temporary file in the target directory and an
``os.replace``, so a failure never leaves a partial or stale-looking output.
"""

from __future__ import annotations

import io
import mmap
import os
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tinct.runtime.artifact import atomic_path
from tinct.runtime.errors import InputError, TooLargeError

DEFAULT_MAX_PIXELS = 50_000_000
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
FORMAT_NAMES = "JPEG, PNG, WebP, BMP, TIFF or GIF"
MAX_JPEG_SCANS = 256
_SOS = b"\xff\xda"  # start of scan: never inside entropy-coded data (a 0xff there is followed by 0x00)
_PIL_LIMIT = threading.Lock()  # Image.MAX_IMAGE_PIXELS is process-wide: lifted around Image.open only
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
    return _decode(io.BytesIO(data), name, max_pixels, raw=data)


def image_header(data: bytes, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int, str]:
    """(width, height, format) of an image in memory, from its header only (no pixel decoded); the format and
    ``max_pixels`` are checked as :func:`decode_image` checks them."""
    if not data:
        raise ImageError(f"{name}: empty upload, not an image")
    try:
        with _open(io.BytesIO(data), name) as im:
            _check_size(im, name, max_pixels)
            return im.size[0], im.size[1], im.format
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({_first_line(exc)})") from None


def _check_size(im: Image.Image, name: str, max_pixels: int | None) -> None:
    w, h = im.size
    if max_pixels and w * h > max_pixels:
        raise ImageTooLargeError(f"image {name} is {w}x{h} = {w * h / 1e6:.1f} MP, over the limit of "
                                 f"{max_pixels / 1e6:.1f} MP (--max-pixels)")
    if w == 0 or h == 0:
        raise ImageError(f"image {name} is empty ({w}x{h})")


def _open(source, name: str) -> Image.Image:
    with warnings.catch_warnings(), _PIL_LIMIT:
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own limit, checked from the header by the caller
        try:
            return Image.open(source, formats=FORMATS)
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image in an accepted format ({FORMAT_NAMES})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = old


def jpeg_scans(source: bytes | Path) -> int:
    """Start-of-scan markers in a JPEG (bytes, or a path: read through mmap)."""
    if isinstance(source, bytes):
        return source.count(_SOS)
    with open(source, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return 0
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            n, i = 0, m.find(_SOS)
            while i >= 0:
                n, i = n + 1, m.find(_SOS, i + 2)
            return n


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _decode(source, name: str, max_pixels: int | None, raw: bytes | None = None) -> np.ndarray:
    """``source``: a path or a BytesIO; ``raw``: the BytesIO's bytes (the JPEG scan count reads them)."""
    try:
        im = _open(source, name)
        with im:
            _check_size(im, name, max_pixels)
            if im.format == "JPEG":
                scans = jpeg_scans(source if raw is None else raw)
                if scans > MAX_JPEG_SCANS:
                    raise ImageError(f"{name}: a JPEG of {scans} scans (a decoder bomb: each scan is a pass over "
                                     f"the whole image; accepted: {MAX_JPEG_SCANS})")
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
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({_first_line(exc)})") from None
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
