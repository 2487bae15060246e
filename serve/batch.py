"""Colorize a folder (``tinct batch``): the plan, the four stages, and the in-process runner.

One home for what happens to each photo, whoever runs it: :func:`read` (bytes of the image, its hints
file, its ground truth), :func:`decode` (image array, validated hints), :class:`Colorize` (one engine,
opened once, reused for every photo it is given) and :func:`write` (the output, written atomically,
and the PSNR against the ground truth). :func:`run_local` chains them in this process; the Ray Data
pipeline (:mod:`runtime.ray_batch`) runs the same four functions as its stages, so both give the same
pixels. A stage that fails records a one-line reason in the row and later stages pass it through:
one bad file never stops a run.

Rows are plain dicts (what Ray Data carries between stages): ``name`` (the input's path relative to the
input folder), ``src``, ``out``, ``hints`` and ``truth`` (paths or None), then the stage products
(``image_bytes`` ... ``rgb``) and finally ``status`` (``ok`` | ``failed``), ``reason``, ``ms`` (colorize
time), ``psnr`` (with ground truth), ``width``, ``height``.

Resumable: a photo whose output exists is not planned again (its PSNR is still measured when ground
truth is given, so a resumed run's CSV is complete); outputs appear only when complete (temp file +
rename), so an interrupted run leaves no partial file.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinct.runtime.artifact import atomic_path
from tinct.runtime.backends import open_backend
from tinct.runtime.backends.base import resolve_backend_name
from tinct.runtime.colorizer import Colorizer
from tinct.runtime.errors import InputError, TinctError
from tinct.runtime.evaluation import psnr
from tinct.runtime.exemplar import DEFAULT_SIZE, open_exemplar
from tinct.runtime.hints import UserHint, decode_user_hints
from tinct.runtime.image import DEFAULT_MAX_PIXELS, decode_image, load_image, save_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
OUTPUT_FORMATS = ("png", "jpg")
MAX_FILE_BYTES = 256 << 20  # one input file; larger ones fail with a reason (memory is bounded per row)
CSV_FIELDS = ("name", "status", "psnr", "ms", "width", "height", "output", "reason")


@dataclass(frozen=True)
class EngineSpec:
    """What each worker opens (picklable: it travels to Ray actors). ``path``: the artifact (for an
    exemplar model the colorizer ONNX, its encoder next to it); ``opts``: the backend's options."""

    path: str
    backend: str | None = None
    opts: dict = field(default_factory=dict)
    reference: str | None = None  # exemplar mode: the reference photo for every image
    size: int | None = None  # exemplar model resolution
    max_pixels: int | None = None


@dataclass
class Plan:
    todo: list[dict]
    done: list[dict]  # outputs already there (resumed): measured again only when ground truth is given
    input_dir: Path
    output_dir: Path


def _find(folder: Path, rel: Path, suffixes) -> Path | None:
    for s in suffixes:
        p = folder / rel.with_suffix(s)
        if p.is_file():
            return p
    return None


def plan(input_dir, output_dir, *, hints_dir=None, ground_truth=None, out_format: str = "png",
         recursive: bool = False, limit: int | None = None) -> Plan:
    """Every image under ``input_dir`` (sorted; subfolders with ``recursive``), its output
    ``output_dir/<relative path>.<out_format>``, its hints ``hints_dir/<relative path>.json`` and its
    ground truth (same relative path and stem, any image suffix, in ``ground_truth``)."""
    src, dst = Path(input_dir), Path(output_dir)
    if not src.is_dir():
        raise InputError(f"input folder {src} does not exist or is not a folder")
    if out_format not in OUTPUT_FORMATS:
        raise InputError(f"--format {out_format!r}: choose from {', '.join(OUTPUT_FORMATS)}")
    for what, d in (("--hints-dir", hints_dir), ("--ground-truth", ground_truth)):
        if d is not None and not Path(d).is_dir():
            raise InputError(f"{what} {d} does not exist or is not a folder")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents and recursive:
        raise InputError(f"output folder {dst} must not be the input folder (or inside it with --recursive)")
    if dst.exists() and not dst.is_dir():
        raise InputError(f"output {dst} exists and is not a folder")
    files = sorted(p for p in (src.rglob("*") if recursive else src.iterdir())
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputError(f"no images in {src} (looked for {', '.join(IMAGE_SUFFIXES)}"
                         f"{'' if recursive else '; subfolders need --recursive'})")
    stems: dict[Path, Path] = {}
    for p in files:
        rel = p.relative_to(src).with_suffix("")
        if rel in stems:
            raise InputError(f"{stems[rel].name} and {p.name} would both write {rel}.{out_format}: rename one")
        stems[rel] = p
    todo, done = [], []
    for rel, p in stems.items():
        row = {"name": str(p.relative_to(src)), "src": str(p), "out": str(dst / f"{rel}.{out_format}"),
               "hints": str(Path(hints_dir) / f"{rel}.json") if hints_dir is not None else None,
               "truth": None}
        if ground_truth is not None:
            t = _find(Path(ground_truth), rel, IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES))
            row["truth"] = str(t) if t else None
        (done if Path(row["out"]).is_file() else todo).append(row)
    if limit is not None:
        todo = todo[:limit]
    return Plan(todo=todo, done=done, input_dir=src, output_dir=dst)


# ----------------------------------------------------------------------------- the four stages

def _fail(row: dict, reason: str) -> dict:
    row = {k: v for k, v in row.items() if k not in ("image_bytes", "hints_bytes", "truth_bytes", "image", "rgb",
                                                      "hint_list")}
    row.update(status="failed", reason=reason.strip().splitlines()[0][:300] if reason.strip() else "failed")
    return row


def _read_file(path: str, what: str) -> bytes:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"{what} {p.name} is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES >> 20} MiB limit")
        return p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no {what} {p}") from None
    except IsADirectoryError:
        raise InputError(f"{what} {p} is a folder") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}: {exc.strerror or exc}") from None


def read(row: dict) -> dict:
    """Stage 1: the bytes of the image, its hints file and its ground truth."""
    if row.get("status") == "failed":
        return row
    try:
        row = dict(row)
        row["image_bytes"] = _read_file(row["src"], "image")
        row["hints_bytes"] = _read_file(row["hints"], "hints file") if row.get("hints") else None
        row["truth_bytes"] = _read_file(row["truth"], "ground truth") if row.get("truth") else None
        return row
    except TinctError as exc:
        return _fail(row, str(exc))


def decode(row: dict, max_pixels: int | None = None) -> dict:
    """Stage 2: the image as uint8 RGB and the hints validated against its size (``[[x, y, r, g, b, size], ...]``)."""

    if row.get("status") == "failed":
        return row
    try:
        row = dict(row)
        image = decode_image(row.pop("image_bytes"), Path(row["src"]).name,
                             DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
        h, w = image.shape[:2]
        hints = []
        data = row.pop("hints_bytes", None)
        if data is not None:
            hints = decode_user_hints(data, (w, h), what=f"hints file {row['hints']}")
        row.update(image=image, width=w, height=h,
                   hint_list=np.array([[hh.x, hh.y, *hh.rgb, hh.size] for hh in hints], dtype=np.int64).reshape(-1, 6))
        return row
    except TinctError as exc:
        return _fail(row, str(exc))


class Colorize:
    """Stage 3: one engine per instance (opened in the constructor: once per worker), called per row."""

    def __init__(self, spec: EngineSpec):
        if spec.reference:

            try:
                self.reference = load_image(spec.reference, spec.max_pixels or DEFAULT_MAX_PIXELS)
            except TinctError as exc:
                raise TinctError(f"reference: {exc}") from None
            self.engine = open_exemplar(spec.path, spec.backend, size=spec.size or DEFAULT_SIZE, **spec.opts)
        else:

            self.reference = None
            self.engine = Colorizer(open_backend(spec.path, resolve_backend_name(Path(spec.path), spec.backend),
                                                 **spec.opts))

    def __call__(self, row: dict) -> dict:
        if row.get("status") == "failed":
            return row
        row = dict(row)
        image, hl = row.pop("image"), row.pop("hint_list")
        t0 = time.perf_counter()
        try:
            if self.reference is not None:
                if len(hl):
                    raise InputError("a Color2Embed run takes a reference, not hints")
                rgb = self.engine.colorize(image, reference=self.reference)
            else:
                rgb = self.engine.colorize(image, [UserHint(int(x), int(y), (int(r), int(g), int(b)), int(s))
                                                   for x, y, r, g, b, s in hl]).copy()
        except TinctError as exc:
            return _fail(row, str(exc))
        except Exception as exc:  # noqa: BLE001 - one photo's failure is reported, never fatal
            return _fail(row, f"internal error: {type(exc).__name__}: {exc}")
        row.update(rgb=rgb, ms=round((time.perf_counter() - t0) * 1e3, 2))
        return row

    def close(self) -> None:
        (self.engine if self.reference is not None else self.engine.backend).close()


def write(row: dict) -> dict:
    """Stage 4: the output (atomic), the PSNR against the ground truth; returns the result row (no pixels)."""

    if row.get("status") == "failed":
        return row
    row = dict(row)
    rgb = row.pop("rgb")
    truth = row.pop("truth_bytes", None)
    try:
        Path(row["out"]).parent.mkdir(parents=True, exist_ok=True)
        save_image(row["out"], rgb)
        if truth is not None:
            gt = decode_image(truth, Path(row["truth"]).name, DEFAULT_MAX_PIXELS)
            if gt.shape != rgb.shape:
                row["reason"] = f"ground truth is {gt.shape[1]}x{gt.shape[0]}, the output {rgb.shape[1]}x{rgb.shape[0]}"
            else:
                row["psnr"] = round(float(psnr(rgb, gt)), 4)
    except TinctError as exc:
        return _fail(row, str(exc))
    except OSError as exc:
        return _fail(row, f"cannot write {row['out']}: {exc.strerror or exc}")
    row["status"] = "ok"
    return row


def measure_done(row: dict) -> dict:
    """A resumed photo (its output exists): PSNR of that output against the ground truth, if given."""

    row = {**row, "status": "skipped", "reason": "output exists"}
    if row.get("truth"):
        try:
            out, gt = load_image(row["out"], DEFAULT_MAX_PIXELS), load_image(row["truth"], DEFAULT_MAX_PIXELS)
            row.update(width=out.shape[1], height=out.shape[0])
            if out.shape == gt.shape:
                row["psnr"] = round(float(psnr(out, gt)), 4)
        except TinctError as exc:
            row["reason"] = f"output exists; not measured: {exc}"
    return row


# ----------------------------------------------------------------------------- running

@dataclass
class Summary:
    rows: list[dict]
    seconds: float
    workers: int
    runner: str
    startup_s: float = 0.0  # Ray: connecting or starting the cluster, before the first photo

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "ok"]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "failed"]

    @property
    def skipped(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "skipped"]

    def images_per_s(self) -> float:
        return len(self.ok) / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        out = [f"{len(self.ok)} colorized, {len(self.skipped)} already done, {len(self.failed)} failed in "
               f"{self.seconds:.1f} s ({self.images_per_s():.2f} images/s, {self.runner}, {self.workers} worker(s))"]
        measured = [r["psnr"] for r in self.rows if r.get("psnr") is not None]
        if measured:
            out.append(f"PSNR against the ground truth: mean {np.mean(measured):.2f} dB over {len(measured)} image(s)")
        out += [f"failed: {r['name']}: {r['reason']}" for r in self.failed]
        return out

    def write_csv(self, path) -> None:
        with atomic_path(Path(path)) as tmp:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
            w.writeheader()
            for r in sorted(self.rows, key=lambda r: r["name"]):
                w.writerow({**r, "output": r.get("out") if r["status"] != "failed" else ""})
            tmp.write_text(buf.getvalue())


def run_local(p: Plan, spec: EngineSpec, progress: bool = True) -> Summary:
    """The four stages in this process, one photo after another (the engine's own threads do the work)."""

    t0 = time.perf_counter()
    rows = [measure_done(r) for r in p.done]
    worker = Colorize(spec) if p.todo else None
    try:
        for row in tqdm(p.todo, desc="batch", unit="img", disable=not progress, dynamic_ncols=True):
            rows.append(write(worker(decode(read(row), spec.max_pixels))))
    finally:
        if worker is not None:
            worker.close()
    return Summary(rows=rows, seconds=time.perf_counter() - t0, workers=1, runner="in-process")
