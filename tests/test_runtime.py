"""Colorizer/Session behaviour, image I/O, torch-free import. Artifacts: a tiny random iColoriT exported here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinct.runtime.color import lab_to_rgb, rgb_to_lab, to_uint8
from tinct.runtime.errors import TinctError

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "data" / "samples"
DEMO_HINTS = ROOT / "data" / "samples" / "horses_herd_hints.json"


@pytest.fixture(scope="module")
def tiny(tiny_models):
    return tiny_models.icolorit


@pytest.fixture(scope="module")
def ort_backend(tiny):
    from tinct.runtime.backends import open_backend
    return open_backend(tiny[0], threads=1)


def photo() -> np.ndarray:
    from tinct.runtime.image import load_image
    return load_image(PHOTOS / "horses_herd.jpg")


# ----------------------------------------------------------------------------- Colorizer / Session

def test_luminance_matches_reference():
    from tinct.runtime.colorizer import luminance_l
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    assert np.abs(luminance_l(img) - rgb_to_lab(img)[..., 0]).max() < 1e-4
    gray = img[..., 0]
    assert np.array_equal(luminance_l(gray), luminance_l(np.repeat(gray[..., None], 3, -1)))


def test_colorizer_keeps_full_res_l_and_matches_reference_merge(ort_backend):
    from tinct.runtime.colorizer import Colorizer
    from tinct.runtime.hints import load_user_hints
    rng = np.random.default_rng(1)
    big = np.asarray(Image.fromarray(photo()).resize((301, 187), Image.BILINEAR))  # any size, odd
    big = np.clip(big.astype(int) + rng.integers(-3, 4, big.shape), 0, 255).astype(np.uint8)
    s = Colorizer(ort_backend).session(big)
    s.set_hints([{"x": 10, "y": 5, "color": "#2080ff"}, {"x": 300, "y": 186, "color": [40, 160, 40]}])
    out = s.colorize()
    assert out.shape == big.shape and out.dtype == np.uint8
    lab = s.lab()
    # L is the input's own full-resolution L, untouched
    assert np.abs(lab[..., 0] - rgb_to_lab(big)[..., 0]).max() < 1e-4
    # the fast merge agrees with the official lab->rgb + rounding within one level
    ref = to_uint8(lab_to_rgb(lab))
    diff = np.abs(ref.astype(int) - out.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    # and ab is the bilinear upsampling of the model's ab
    torch = pytest.importorskip("torch")
    up = torch.nn.functional.interpolate(torch.from_numpy(s.ab_model), size=big.shape[:2], mode="bilinear",
                                         align_corners=False)[0].numpy() * 110
    assert np.abs(up - s.ab_full).max() / 110 < 1e-4  # normalized ab units
    del load_user_hints


def test_session_updates_equal_fresh_runs_and_reuse_buffers(ort_backend):
    from tinct.runtime.colorizer import Colorizer, buffer_ids
    img = photo()
    c = Colorizer(ort_backend)
    s = c.session(img)
    s.set_hints(DEMO_HINTS.read_text())
    first = s.colorize().copy()
    ids = buffer_ids(s)
    runs = s.runs
    again = s.colorize()  # nothing changed: no model run
    assert s.runs == runs and s.timings["model"] == 0.0 and np.array_equal(first, again)
    s.add_hint(5, 100, "#ff0000")
    s.move_hint((5, 100), (7, 110), color=(0, 0, 255))
    s.remove_hint(20, 20)
    out = s.colorize().copy()
    assert s.runs == runs + 1
    assert buffer_ids(s) == ids
    assert set(s.timings) >= {"prepare", "hints", "model", "post", "total"}
    fresh = Colorizer(ort_backend).session(img, postprocess=s.kernel)
    fresh.set_hints(s.hints)
    assert np.array_equal(out, fresh.colorize())
    assert not np.array_equal(out, first)


def test_session_brush_size_reaches_the_model_and_survives_edits(ort_backend):
    from tinct.runtime.colorizer import Colorizer
    from tinct.runtime.hints import HintError, UserHint
    img = photo()
    s = Colorizer(ort_backend).session(img)
    s.add_hint(100, 80, "#d02020", size=4)
    big = s.colorize().copy()
    assert int(s.x[0, 3].sum()) == 4 * 4 * 4  # 4x4 cells of 2x2 pixels of the 224 input carry the hint
    assert s.hints[0].size == 4
    s.move_hint((100, 80), (110, 85))  # a move keeps the brush
    assert s.hints[0].size == 4 and s.hints[0].to_json()["size"] == 4
    s.set_hints([{"x": 100, "y": 80, "color": "#d02020"}])
    small = s.colorize().copy()
    assert not np.array_equal(big, small)  # the patch changed what the model saw
    with pytest.raises(HintError, match="size"):
        s.add_hint(UserHint(1, 1, (0, 0, 0), 0))
    with pytest.raises(HintError, match="outside 1..16"):
        s.add_hint(2, 2, "#000000", size=99)


def test_session_hint_errors(ort_backend):
    from tinct.runtime.colorizer import Colorizer
    from tinct.runtime.hints import HintError
    s = Colorizer(ort_backend).session(np.zeros((10, 20), np.uint8))
    s.add_hint(1, 1, "#ffffff")
    with pytest.raises(HintError):
        s.add_hint(1, 1, "#000000")
    with pytest.raises(HintError):
        s.add_hint(20, 1, "#000000")
    with pytest.raises(HintError):
        s.remove_hint(3, 3)
    with pytest.raises(HintError):
        s.move_hint((1, 1), (0, 10))
    assert s.colorize().shape == (10, 20, 3)


def test_grayscale_input_without_hints_keeps_gray_level():
    """A gray photo (2-D) without hints: the result's lightness is the photo's, only colour is added (uint8
    rounding and the sRGB gamut move L by a fraction of a unit). The shipped model: its colours are the
    natural ones a user sees (a random model's saturated ones leave the gamut and change L by clipping)."""
    from tinct.runtime.backends import open_backend
    from tinct.runtime.colorizer import Colorizer

    gray = np.asarray(Image.fromarray(photo()).convert("L"))
    out = Colorizer(open_backend(ROOT / "weights" / "icolorit-tiny.onnx", threads=1)).colorize(gray)
    assert out.shape == gray.shape + (3,)
    l_in = rgb_to_lab(np.repeat(gray[..., None], 3, -1))[..., 0]
    dl = np.abs(rgb_to_lab(out)[..., 0] - l_in)
    assert dl.mean() < 0.5 and np.percentile(dl, 99) < 1.0, (dl.mean(), np.percentile(dl, 99))
    assert np.abs(out[..., 0].astype(int) - out[..., 2]).mean() > 1  # and colour was added


# ----------------------------------------------------------------------------- image I/O

def test_load_image_modes_and_exif(tmp_path):
    from tinct.runtime.image import load_image
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png").shape == (4, 6, 3)
    Image.fromarray(np.full((4, 6), 77, np.uint8), "L").save(tmp_path / "g.png")
    assert (load_image(tmp_path / "g.png") == 77).all()
    im = Image.fromarray(np.zeros((4, 6, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    im.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (6, 4, 3)


def test_load_image_errors(tmp_path):
    from tinct.runtime.image import load_image
    with pytest.raises(TinctError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "t.png").write_text("not an image")
    with pytest.raises(TinctError, match="not an image"):
        load_image(tmp_path / "t.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(TinctError, match="corrupt or truncated"):
        load_image(tmp_path / "trunc.png")
    with pytest.raises(TinctError, match="over the limit"):
        load_image(tmp_path / "ok.png", max_pixels=1000)


def test_save_image_atomic(tmp_path, monkeypatch):
    from tinct.runtime import image
    img = np.zeros((5, 5, 3), np.uint8)
    image.save_image(tmp_path / "o.jpg", img)
    assert image.load_image(tmp_path / "o.jpg").shape == (5, 5, 3)
    with pytest.raises(TinctError, match="does not exist"):
        image.save_image(tmp_path / "missing" / "o.png", img)
    with pytest.raises(TinctError, match="unsupported format"):
        image.save_image(tmp_path / "o.gif", img)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(TinctError, match="No space"):
        image.save_image(tmp_path / "p.png", img)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jpg"]


# ----------------------------------------------------------------------------- torch-free runtime

def test_runtime_imports_without_torch():
    """Every module of the runtime core, the verification layer, the data layer, and every command of the CLI
    imports with torch and onnx blocked (a runtime-only install lists every command)."""
    modules = [p for part in ("runtime", "verify", "data", "cli") for p in sorted((ROOT / part).rglob("*.py"))]
    names = ["tinct." + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in modules]
    code = (
        "import importlib, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'onnx'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {names!r}:\n"
        "    importlib.import_module(m)\n"
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_model_without_torch_names_export_extra(monkeypatch, tmp_path):
    from tinct.cli import colorize
    from tinct.runtime import catalog as shipped
    from tinct.runtime.errors import MissingExtraError, TinctError
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setenv("TINCT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(TinctError, match="no shipped model"):  # nothing to export at all
        colorize.resolve_model("icolorit-tiny")
    (tmp_path / "icolorit-tiny.safetensors").write_bytes(b"weights")  # shipped, but no engine cached yet
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    with pytest.raises(MissingExtraError, match=r"tinct\[export\]"):
        colorize.resolve_model("icolorit-tiny")
    # an engine exported from exactly these weights is found in the cache without torch
    import hashlib
    digest = hashlib.sha256(b"weights").hexdigest()
    cached = tmp_path / "cache" / "engines" / f"icolorit-tiny-{digest[:12]}.onnx"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"onnx")
    assert colorize.resolve_model("icolorit-tiny") == cached
