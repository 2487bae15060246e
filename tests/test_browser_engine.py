"""The in-browser engine (issue 31) in headless Chromium: ONNX Runtime Web (vendored by
``python -m tinct.serve.web_assets``) runs the shipped hint models in a Web Worker on this machine's CPU.

- ``tinct-core.mjs`` against the Python runtime (one specification, golden-tested on both sides): Lab, lightness,
  the hint encoding with brushes, the upsampling + Lab -> RGB render;
- the page's preview with the browser engine equals ``Colorizer``'s within one level on >= 99.9 % of values, for
  icolorit-tiny and acolvit-tiny-0.5 (whose gates equal the native run's for the same hints);
- a model whose bytes do not hash to the artifact, or whose download fails, is refused and the page stays usable.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_browser import ROOT, _click, _require, _settle, _shown, chromium
from test_browser_tools import _open, _page, _photo, served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    from tinct.serve.web_assets import manifest

    _require(manifest() is not None, "ONNX Runtime Web is not vendored: python -m tinct.serve.web_assets")
    yield from served("--model", "acolvit-tiny-0.5")


@pytest.fixture(scope="module")
def browser(server):
    yield from chromium()


@pytest.fixture(scope="module")
def page(browser, server):
    pg = _page(browser, server)
    yield pg
    assert not pg.errors, pg.errors
    pg.context.close()


def _core(page, expr: str, **args):
    """Evaluate ``expr`` with the core module as ``m`` and ``args`` as ``a``."""
    return page.evaluate(f"async (a) => {{ const m = await import('/static/tinct-core.mjs'); return {expr}; }}", args)


def test_core_colour_and_lightness_match_the_runtime(page):
    from tinct.runtime.color import rgb_to_lab
    from tinct.runtime.postprocess import luminance_l

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (500, 3), dtype=np.uint8)
    rgb[:4] = [[0, 0, 0], [255, 255, 255], [1, 2, 3], [255, 0, 0]]
    lab = np.array(_core(page, "a.rgb.map(c => m.rgbToLab(...c))", rgb=rgb.tolist()))
    assert np.abs(lab - rgb_to_lab(rgb)).max() < 2e-3
    rgba = np.concatenate([rgb, np.full((500, 1), 255, np.uint8)], axis=1)
    light = np.array(_core(page, "Array.from(m.lightness(a.px, 500))", px=rgba.reshape(-1).tolist()))
    assert np.abs(light - luminance_l(rgb[None])[0]).max() < 2e-3


@pytest.mark.parametrize("size", [(640, 480), (333, 517)])
def test_core_hint_encoding_matches_the_runtime(page, size):
    from tinct.runtime.hints import encode, parse_user_hints, user_hints_to_cells

    w, h = size
    rng = np.random.default_rng(w)
    hints = [{"x": int(x), "y": int(y), "color": "#%02x%02x%02x" % tuple(int(v) for v in rng.integers(0, 256, 3)),
              **({"size": int(s)} if s > 1 else {})}
             for x, y, s in zip(rng.choice(w, 40, replace=False), rng.integers(0, h, 40), rng.integers(1, 6, 40))]
    hints += [{"x": 0, "y": 0, "color": "#ff0000", "size": 16}, {"x": w - 1, "y": h - 1, "color": "#00ff00"}]
    l224 = rng.uniform(0, 100, (224, 224)).astype(np.float32)
    got = np.array(_core(page, "Array.from(m.encode(Float32Array.from(a.l), a.hints, a.w, a.h))",
                         l=l224.reshape(-1).tolist(), hints=hints, w=w, h=h), np.float32).reshape(1, 4, 224, 224)
    ab, mask = user_hints_to_cells(parse_user_hints(hints, (w, h)), (w, h))
    want = encode(((l224 - 50) / 100)[None], ab[None], mask[None])
    assert (got[0, 3] == want[0, 3]).all()  # the same cells, bit for bit
    assert np.abs(got - want).max() < 1e-5


def test_core_render_matches_the_runtime_within_one_level(page):
    from PIL import Image

    from tinct.runtime.postprocess import Canvas, luminance_l, resize_rgb

    with Image.open(ROOT / "data" / "samples" / "horses_herd.jpg") as im:
        rgb = np.asarray(im.convert("RGB").resize((301, 187)))
    rng = np.random.default_rng(1)
    ab = np.clip(rng.normal(0, 0.25, (2, 224, 224)), -1, 1).astype(np.float32)  # saturated: out-of-gamut clips too
    ab[:, :112] = np.asarray(Image.fromarray(rng.integers(0, 255, (8, 8), np.uint8)).resize((224, 112)))[None] / 255 - 0.5
    light = luminance_l(resize_rgb(rgb, (301, 187)))
    want = Canvas(rgb, "numpy").render(ab).astype(int)
    got = np.array(_core(page, "Array.from(new m.Canvas(Float32Array.from(a.l), 301, 187).render(Float32Array.from(a.ab), 224))",
                         l=light.reshape(-1).tolist(), ab=ab.reshape(-1).tolist()), np.uint8).reshape(187, 301, 4)
    diff = np.abs(got[..., :3].astype(int) - want)
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.999, (diff.max(), (diff == 0).mean())
    assert (got[..., 3] == 255).all()


HINTS = [(0.3, 0.5, "#8a5230", 1), (0.7, 0.85, "#4c8c2c", 3), (0.5, 0.12, "#4a86d8", 1), (0.15, 0.3, "#c04040", 2)]


@pytest.mark.parametrize("model", ["icolorit-tiny", "acolvit-tiny-0.5"])
def test_in_browser_previews_equal_colorizer(page, tmp_path, model):
    from tinct.runtime.backends import open_backend
    from tinct.runtime.colorizer import Colorizer
    from tinct.runtime.hints import parse_user_hints

    path, rgb = _photo(tmp_path)
    _open(page, path)
    models = page.evaluate("window.tinct.browserModels")
    index = next(i for i, m in enumerate(models) if m["model"] == model)
    page.select_option("#engine", f"browser:{index}")
    page.wait_for_function(f"window.tinct.localModel && window.tinct.localModel.model === '{model}'", timeout=60_000)
    _settle(page)
    page.evaluate("window.tinct.hints = []")
    for fx, fy, colour, size in HINTS:
        page.keyboard.press("Escape")  # deselect first: the brush also resizes the selected hint
        page.evaluate("(n) => { const b = document.getElementById('brush'); b.value = n; "
                      "b.dispatchEvent(new Event('change')); }", size)
        _click(page, fx, fy)
        page.fill("#color", colour)
        _settle(page)
    hints = page.evaluate("window.tinct.hints")
    assert page.evaluate("window.tinct.via") == "browser" and [h.get("size", 1) for h in hints] == [1, 3, 1, 2]
    shown = _shown(page)
    with open_backend(ROOT / "weights" / f"{model}.onnx", "onnxruntime", threads=1) as b:
        s = Colorizer(b).session(rgb, preview=max(shown.shape[:2]))
        s.set_hints(parse_user_hints(hints, (640, 480)))
        want = s.preview()[..., :3].astype(int)
        gates = None if s.gates is None else s.gates.tolist()
    assert shown.shape == want.shape
    diff = np.abs(shown.astype(int) - want)
    assert diff.max() <= 2 and (diff <= 1).mean() >= 0.999, (diff.max(), (diff <= 1).mean())
    served = page.evaluate("window.tinct.served.slice(-1)[0]")
    assert served["model"] > 0 and served["post"] > 0
    if gates is not None:  # A-ColViT: the browser ran the If branches the native run did
        assert page.evaluate("window.tinct.lastGates") == gates
        assert page.locator("#gates span").count() == 24
    page.select_option("#engine", page.evaluate("window.tinct.engines[0].id"))  # back to the server's engine
    _settle(page)
    assert page.evaluate("window.tinct.local") is None


@pytest.mark.parametrize("fault", ["hash", "download"])
def test_a_model_that_fails_its_check_is_refused(browser, server, tmp_path, fault):
    pg = _page(browser, server)
    path, _ = _photo(tmp_path)
    _open(pg, path)
    if fault == "hash":
        pg.route("**/api/models/0", lambda route: route.fulfill(status=200, body=b"\0" * 1000,
                                                                headers={"Content-Type": "application/octet-stream"}))
    else:
        pg.route("**/api/models/0", lambda route: route.abort())
    pg.evaluate("caches.delete('tinct-models')")
    pg.select_option("#engine", "browser:0")
    want = "is not the artifact it should be" if fault == "hash" else "not available"
    pg.wait_for_function(f"document.getElementById('status').textContent.includes({json.dumps(want)})")
    assert pg.evaluate("window.tinct.local") is None
    assert pg.input_value("#engine") == pg.evaluate("window.tinct.engine")  # the server's engine stays selected
    _click(pg, 0.5, 0.5)  # and the page still colorizes
    _settle(pg)
    assert pg.evaluate("window.tinct.via") == "websocket" and not pg.errors, pg.errors
    pg.context.close()
