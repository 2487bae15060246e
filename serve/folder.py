"""``tinct serve --folder DIR``: the photos of one folder, worked through one after another in the page.

Each photo's hints are kept beside it as the CLI's hint JSON (``DIR/<stem>.json``, what ``tinct batch
--hints-dir DIR`` reads) and its result is written where ``tinct batch DIR OUT`` writes it (``OUT/<stem>.png``,
by batch's own stage 4), so a folder done by hand reruns later with ``tinct batch DIR OUT --hints-dir DIR``.
The list is :func:`tinct.serve.batch.plan`'s (same suffixes, same order, same output names), taken at start;
requests name a photo by its index in it, never by a path. Files are written atomically."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from tinct.runtime.artifact import atomic_path
from tinct.runtime.errors import InputError
from tinct.runtime.hints import HintError, load_user_hints
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

    def open(self, index: int, limit: int) -> tuple[bytes, str, list[dict]]:
        """Photo ``index``: its bytes (at most ``limit``), its name, and the hints saved beside it, validated as the
        CLI validates a hint file against the photo's size (from the same bytes' header); a bad file is refused."""
        path = self.photo_path(index)
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except OSError as exc:
            raise InputError(f"cannot read {path.name}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise InputError(f"{path.name} is larger than the upload limit ({limit >> 20} MiB)")
        hints_path = Path(self.row(index)["hints"])
        if not hints_path.is_file():
            return data, path.name, []
        size = image_header(data, path.name, self.max_pixels)[:2]
        try:
            return data, path.name, [h.to_json() for h in load_user_hints(hints_path, size)]
        except HintError as exc:
            raise HintError(f"{hints_path.name}: {exc}") from None

    def save_hints(self, index: int, text: str) -> str:
        """Write hint JSON (a session's, :meth:`SessionService.hints_json`) beside photo ``index``; its path."""
        path = Path(self.row(index)["hints"])
        with self._lock, atomic_path(path) as tmp:
            tmp.write_text(text + "\n")
        return str(path)

    # the session a page opened from a photo: hints and results are written only for the photo it shows
    def opened(self, sid: str, index: int) -> None:
        with self._lock:
            self._opened[sid] = index

    def check(self, sid: str, index: int) -> None:
        with self._lock:
            got = self._opened.get(sid)
        if got != index:
            raise InputError(f"session {sid!r} was not opened from photo {index} of the folder")

    def save_result(self, index: int, rgb: np.ndarray) -> str:
        """Write the full-resolution result where ``tinct batch`` writes it (batch's own writer: atomic)."""
        row = self.row(index)
        done = write({"name": row["name"], "out": row["out"], "rgb": rgb, "truth": None})
        if done.get("status") != "ok":
            raise InputError(done.get("reason") or f"cannot write {row['out']}")
        return row["out"]
