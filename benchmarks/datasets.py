"""Evaluation datasets: an ordered list of images with unique stems, loaded as 224x224 uint8 RGB.

Adapters (``--dataset``):

- ``folder`` — every image file directly in DIR, sorted by file name (the official code reads
  ``<root>/imgs/``: when DIR has no images but an ``imgs/`` sub-folder, that is used).
- ``ctest10k`` — the colorization literature's 10k-image ImageNet validation subset. Either a flat
  folder holding those images (how the iColoriT/A-ColViT READMEs use it:
  ``make_mask.py --img_dir .../ctest10k/``), or ``--list FILE``: one path per line relative to the
  ImageNet val root given as ``--images`` (``n01440764/ILSVRC2012_val_00000293.JPEG`` or a bare
  file name; a line's basename is also tried directly under the root, for a flat val folder).
  Hints are generated over the images' sorted basenames, as if they were one flat folder.
- ``flowers`` — Oxford 102 Flowers. The official repos take a flat folder of images (``<root>/imgs``
  or DIR itself; the dataset's own ``jpg/`` folder is also recognised). Which images the papers
  evaluated on is not stated in the official code: we evaluate whatever the folder holds.
- ``cub`` — CUB-200-2011. A flat folder as above; or the dataset's own layout (``images.txt``,
  ``train_test_split.txt``, ``images/<class>/<file>.jpg``), of which the *test* split is used.
- ``tinct-val`` — tinct's validation split (``data.photos.val_dir()``: ``images/*.png`` and the
  evaluation hints in ``hints/``), built by ``tinct data fetch``.

Images are converted to RGB and resized to 224x224 bilinear (as the official ``Resize((224, 224))``,
a plain resize, no crop) when loaded. An unreadable file raises a :class:`TinctError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tinct.data.photos import val_dir
from tinct.runtime.errors import TinctError
from tinct.runtime.hints import IMG_SIZE

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
DATASETS = ("folder", "ctest10k", "flowers", "cub", "tinct-val")


class DatasetError(TinctError):
    pass


@dataclass
class Dataset:
    name: str
    root: Path
    paths: list[Path]  # evaluation order (sorted by file name)
    hint_dir: Path | None = None  # hint files shipped with the dataset (tinct-val)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.paths:
            raise DatasetError(f"dataset {self.name!r}: no images found under {self.root}")
        stems = [p.stem for p in self.paths]
        if len(set(stems)) != len(stems):
            dup = sorted({s for s in stems if stems.count(s) > 1})[:3]
            raise DatasetError(f"dataset {self.name!r}: several images share a name stem ({', '.join(dup)}); "
                               "hint files are keyed by stem")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def filenames(self) -> list[str]:
        """File names as the official ``make_mask.py`` sees them (its hint RNG order)."""
        return [p.name for p in self.paths]

    @property
    def stems(self) -> list[str]:
        return [p.stem for p in self.paths]

    def limit(self, n: int | None) -> Dataset:
        if n is None:
            return self
        if n < 1:
            raise DatasetError("--limit must be at least 1")
        return Dataset(self.name, self.root, self.paths[:n], self.hint_dir, self.notes)

    def select(self, keep: list[int]) -> Dataset:
        return Dataset(self.name, self.root, [self.paths[i] for i in keep], self.hint_dir, self.notes)

    def load(self, i: int) -> np.ndarray:
        return load_image(self.paths[i])

    def load_batch(self, start: int, stop: int) -> np.ndarray:
        return np.stack([self.load(i) for i in range(start, min(stop, len(self)))])

    def describe(self) -> dict:
        return {"name": self.name, "root": str(self.root), "n_images": len(self),
                "hint_dir": str(self.hint_dir) if self.hint_dir else None, "notes": self.notes}


def load_image(path: Path, size: int = IMG_SIZE) -> np.ndarray:
    """RGB uint8 ``[size, size, 3]``: bilinear resize as the official ``Resize((224, 224))``."""

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from None


def read_exclude_list(path: str | Path) -> set[str]:
    """Stems to leave out (the official ``--gray_file_list_txt``: one path or name per line)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DatasetError(f"cannot read the exclude list {path}: {exc.strerror}") from None
    return {Path(ln.strip()).stem for ln in text.splitlines() if ln.strip()}


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _flat_images(d: Path) -> list[Path]:
    return sorted((p for p in d.iterdir() if _is_image(p)), key=lambda p: p.name)


def _require_dir(root: Path, name: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset {name!r}: {root} is not a directory")
    return root


def folder(root: str | Path, name: str = "folder", subdirs: tuple[str, ...] = ("imgs",)) -> Dataset:
    root = _require_dir(Path(root), name)
    paths = _flat_images(root)
    notes = []
    if not paths:
        for sub in subdirs:
            if (root / sub).is_dir():
                paths = _flat_images(root / sub)
                if paths:
                    notes.append(f"images read from {sub}/")
                    break
    if not paths:
        raise DatasetError(f"dataset {name!r}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in {root}"
                           + (f" or its {'/'.join(subdirs)} sub-folder" if subdirs else ""))
    return Dataset(name, root, paths, notes=notes)


def ctest10k(root: str | Path, list_file: str | Path | None = None) -> Dataset:
    root = _require_dir(Path(root), "ctest10k")
    if list_file is None:
        ds = folder(root, "ctest10k")
        if len(ds) != 10000:
            ds.notes.append(f"{len(ds)} images (ctest10k has 10000)")
        return ds
    list_file = Path(list_file)
    try:
        lines = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    except OSError as exc:
        raise DatasetError(f"cannot read the ctest10k list {list_file}: {exc.strerror}") from None
    paths = []
    for ln in lines:
        rel = ln.split()[0]  # tolerate "path label" lines
        for cand in (root / rel, root / Path(rel).name):
            if cand.is_file():
                paths.append(cand)
                break
        else:
            raise DatasetError(f"ctest10k: {rel} (from {list_file}) not found under {root}")
    paths.sort(key=lambda p: p.name)
    return Dataset("ctest10k", root, paths, notes=[f"list {list_file} ({len(lines)} entries)"])


def flowers(root: str | Path) -> Dataset:
    return folder(root, "flowers", subdirs=("imgs", "jpg"))


def cub(root: str | Path) -> Dataset:
    root = _require_dir(Path(root), "cub")
    images_txt, split_txt = root / "images.txt", root / "train_test_split.txt"
    if images_txt.is_file() and split_txt.is_file():
        try:
            names = dict(ln.split(maxsplit=1) for ln in images_txt.read_text().splitlines() if ln.strip())
            is_train = dict(ln.split() for ln in split_txt.read_text().splitlines() if ln.strip())
        except ValueError:
            raise DatasetError(f"cub: cannot parse {images_txt} / {split_txt}") from None
        paths = [root / "images" / names[i].strip() for i in names if is_train.get(i) == "0"]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DatasetError(f"cub: {missing[0]} is listed in images.txt but missing")
        paths.sort(key=lambda p: p.name)
        return Dataset("cub", root, paths, notes=["CUB-200-2011 layout: test split (train_test_split.txt == 0)"])
    return folder(root, "cub")


def tinct_val(root: str | Path | None = None) -> Dataset:
    d = val_dir(root)  # raises a TinctError naming 'tinct data fetch' when absent
    images = d / "images"
    if not images.is_dir():
        raise DatasetError(f"tinct-val: {images} is missing: run 'tinct data fetch'")
    paths = _flat_images(images)
    hints = d / "hints"
    return Dataset("tinct-val", d, paths, hint_dir=hints if hints.is_dir() else None)


def open_dataset(kind: str, root: str | Path | None, list_file: str | Path | None = None) -> Dataset:
    """The ``--dataset`` adapters. ``root`` is ``--images`` (optional for tinct-val: the data cache)."""
    if kind not in DATASETS:
        raise DatasetError(f"unknown dataset {kind!r}; known: {', '.join(DATASETS)}")
    if list_file is not None and kind != "ctest10k":
        raise DatasetError("--list is only for --dataset ctest10k")
    if kind == "tinct-val":
        return tinct_val(root)
    if root is None:
        raise DatasetError(f"--dataset {kind} needs --images DIR")
    if kind == "ctest10k":
        return ctest10k(root, list_file)
    if kind == "flowers":
        return flowers(root)
    if kind == "cub":
        return cub(root)
    return folder(root)
