"""``tinct serve --folder DIR``: the photos of one folder, worked through one after another in the page.

Each photo's hints are kept beside it as the CLI's hint JSON (``DIR/<stem>.json``, what ``tinct batch
--hints-dir DIR`` reads) and its result is written where ``tinct batch DIR OUT`` writes it (``OUT/<stem>.png``,
by batch's own stage 4), so a folder done by hand reruns later with ``tinct batch DIR OUT --hints-dir DIR``.
The list is :func:`tinct.serve.batch.plan`'s (same suffixes, same order, same output names), taken at start;
requests name a photo by its index in it, never by a path. Files are written atomically."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from tinct.runtime.artifact import atomic_path
from tinct.runtime.errors import InputError
from tinct.runtime.hints import HintError, decode_user_hints, load_user_hints
from tinct.runtime.image import image_header
from tinct.serve.batch import plan, write
from tinct.serve.sessions import SessionNotFound

RESULT_DIR = "colorized"  # the default output folder, inside the input folder (batch reads only its files)


class Folder:
    def __init__(self, input_dir, output_dir=None, out_format: str = "png", max_pixels: int | None = None):
        input_dir = Path(input_dir)
        output_dir = Path(output_dir) if output_dir is not None else input_dir / RESULT_DIR
        p = plan(input_dir, output_dir, hints_dir=input_dir, out_format=out_format)
        self.rows = sorted(p.todo + p.done, key=lambda r: r["name"])
        self.input_dir, self.output_dir, self.max_pixels = input_dir, output_dir, max_pixels
        self._opened: dict[str, int] = {}  # session id -> the photo it was opened from
        self._sizes: dict[int, tuple[int, int]] = {}  # (width, height) from each photo's header, read once
        self._lock = threading.Lock()

    def row(self, index: int) -> dict:
        if not 0 <= index < len(self.rows):
            raise SessionNotFound(f"no photo {index} in the folder (it has {len(self.rows)}: 0..{len(self.rows) - 1})")
        return self.rows[index]

    def listing(self) -> dict:
        return {"input": str(self.input_dir), "output": str(self.output_dir),
                "photos": [{"index": i, "name": r["name"], "hints": Path(r["hints"]).is_file(),
                            "result": Path(r["out"]).is_file()} for i, r in enumerate(self.rows)]}

    def photo_path(self, index: int) -> Path:
        return Path(self.row(index)["src"])

    def photo_bytes(self, index: int, limit: int) -> bytes:
        path = self.photo_path(index)
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except OSError as exc:
            raise InputError(f"cannot read {path.name}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise InputError(f"{path.name} is larger than the upload limit ({limit >> 20} MiB)")
        return data

    def _size(self, index: int) -> tuple[int, int]:
        with self._lock:
            size = self._sizes.get(index)
        if size is None:
            path = self.photo_path(index)
            size = image_header(self.photo_bytes(index, 1 << 30), path.name, self.max_pixels)[:2]
            with self._lock:
                self._sizes[index] = size
        return size

    def hints(self, index: int) -> list[dict]:
        """The hints saved beside the photo (validated as the CLI validates a hint file), or none."""
        path = Path(self.row(index)["hints"])
        if not path.is_file():
            return []
        try:
            return [h.to_json() for h in load_user_hints(path, self._size(index))]
        except HintError as exc:
            raise HintError(f"{path.name}: {exc}") from None

    def save_hints(self, index: int, hints: list) -> int:
        """Validate ``hints`` against the photo's size and write them beside it (the CLI's format)."""
        row = self.row(index)
        parsed = decode_user_hints(json.dumps(hints).encode(), self._size(index), what="the hints")
        with self._lock, atomic_path(Path(row["hints"])) as tmp:
            tmp.write_text(json.dumps([h.to_json() for h in parsed], indent=1) + "\n")
        return len(parsed)

    # the session a page opened from a photo: a result is written only for the photo it shows
    def opened(self, sid: str, index: int, size: tuple[int, int]) -> None:
        with self._lock:
            self._opened[sid] = index
            self._sizes[index] = size

    def check(self, sid: str, index: int) -> dict:
        with self._lock:
            got = self._opened.get(sid)
        if got != index:
            raise InputError(f"session {sid!r} was not opened from photo {index} of the folder")
        return self.row(index)

    def save_result(self, index: int, rgb: np.ndarray) -> str:
        """Write the full-resolution result where ``tinct batch`` writes it (batch's own writer: atomic)."""
        row = self.row(index)
        done = write({"name": row["name"], "out": row["out"], "rgb": rgb, "truth": None})
        if done.get("status") != "ok":
            raise InputError(done.get("reason") or f"cannot write {row['out']}")
        return row["out"]
