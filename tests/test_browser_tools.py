"""The colourist's tools of the `tinct serve` page in headless Chromium (issue 30): suggested colours on a gray
photo and a gamut pick that shows at its hint, recent-colour palettes kept across reloads, brush size and strokes
(one undo step), zoom and pan on a 4K photo (hints land where clicked), touch (tap, drag, long-press, pinch),
every control reachable from the keyboard, and ``tinct serve --folder`` (hints beside each photo, results where
``tinct batch`` writes them)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_browser import CHROMIUM, PHOTO, ROOT, _click, _require, _settle, chromium

pytestmark = pytest.mark.slow


def _start(*args):
    import importlib.util

    _require(importlib.util.find_spec("fastapi") is not None, "the 'serve' extra is not installed")
    _require(importlib.util.find_spec("playwright") is not None, "Playwright is not installed")
    _require(CHROMIUM is not None, "no chromium on PATH (Debian: apt-get install chromium)")
    from tinct.benchmarks.load import start_server

    return start_server("--model", "icolorit-tiny", "--backends", "onnxruntime", *args)


def _stop(proc, log):
    from tinct.benchmarks.load import stop_server

    stop_server(proc)
    text = log.read_text()
    log.unlink()
    assert "Traceback" not in text, text


def served(*args):
    """A `tinct serve` with ``args`` for the length of a module (a generator: a fixture yields from it)."""
    proc, url, log = _start(*args)
    try:
        yield url + "/"
    finally:
        _stop(proc, log)


@pytest.fixture(scope="module")
def server():
    yield from served()


@pytest.fixture(scope="module")
def browser(server):
    yield from chromium()


def _page(browser, url, **ctx):
    """A page in its own context (its own localStorage); the server's CSP bypassed for Playwright's predicates."""
    c = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True, **ctx)
    pg = c.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.goto(url)
    return pg


def _photo(tmp_path, name="horses.png", size=(640, 480), gray=False, fmt="PNG") -> tuple[Path, np.ndarray]:
    with Image.open(PHOTO) as im:
        im = im.convert("L" if gray else "RGB").convert("RGB").resize(size, Image.BICUBIC)
    path = tmp_path / name
    im.save(path, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    with Image.open(path) as back:
        return path, np.asarray(back.convert("RGB"))


def _open(pg, path):
    n = pg.evaluate("window.tinct.opened || 0")
    pg.set_input_files("#file", str(path))
    pg.wait_for_function(f"window.tinct.opened === {n + 1} && document.body.dataset.state === 'idle'")


def _hints(pg) -> list[dict]:
    return pg.evaluate("window.tinct.hints")


def _server_hints(pg) -> list[dict]:
    return json.loads(pg.evaluate("fetch('/api/sessions/' + window.tinct.sid + '/hints').then(r => r.text())"))


def test_gray_photo_suggestions_and_a_gamut_pick_that_shows_at_its_hint(browser, server, tmp_path):
    """A first click on a gray photo (the grass) offers >= 3 suggestions; a gamut pick becomes the hint's colour,
    and the model shows it at the hint's patch within CIEDE2000 5, measured in the model's 224 space."""
    import skimage.color

    from tinct.runtime import color
    from tinct.runtime.backends import open_backend
    from tinct.runtime.colorizer import Colorizer
    from tinct.runtime.hints import parse_user_hints

    pg = _page(browser, server)
    path, gray = _photo(tmp_path, "gray.png", gray=True)
    _open(pg, path)
    _click(pg, 0.4, 0.8)
    pg.wait_for_function("document.querySelectorAll('#suggested button').length >= 3", timeout=30_000)
    _settle(pg)
    pg.wait_for_selector("#gamut:not([hidden])")
    box = pg.locator("#gamut").bounding_box()
    before = _hints(pg)[0]["color"]
    pg.mouse.click(box["x"] + box["width"] * 0.62, box["y"] + box["height"] * 0.40)  # a > 0, b > 0: a warm colour
    pg.wait_for_function(f"window.tinct.hints[0].color !== '{before}'")
    _settle(pg)
    h = _hints(pg)[0]
    picked = np.frombuffer(bytes.fromhex(h["color"][1:]), np.uint8)
    lab = color.rgb_to_lab(picked)
    assert np.hypot(*lab[1:]) > 10 and abs(float(lab[0]) - float(color.rgb_to_lab(gray[h["y"], h["x"]])[0])) < 1.0
    with open_backend(ROOT / "weights" / "icolorit-tiny.onnx", "onnxruntime", threads=1) as b:
        s = Colorizer(b).session(gray)
        s.set_hints(parse_user_hints(_hints(pg), (640, 480)))
        s.colorize()
        cy = int((h["y"] + 0.5) * 224 / 480) // 2 * 2
        cx = int((h["x"] + 0.5) * 224 / 640) // 2 * 2
        patch_l = color.rgb_to_lab(s.small[cy:cy + 2, cx:cx + 2])[..., 0]
        shown = np.stack([patch_l, *(s.ab_model[0, :, cy:cy + 2, cx:cx + 2] * color.AB_NORM)], axis=-1)
    wanted = np.stack([patch_l, *np.broadcast_to(lab[1:, None, None], (2, 2, 2))], axis=-1)
    de = skimage.color.deltaE_ciede2000(shown.astype(np.float64), wanted.astype(np.float64), channel_axis=-1)
    assert de.mean() <= 5.0, de
    assert not pg.errors, pg.errors
    pg.context.close()


def test_recent_colour_palettes_persist_across_reloads(browser, server, tmp_path):
    pg = _page(browser, server)
    a, _ = _photo(tmp_path, "a.png")
    b, _ = _photo(tmp_path, "b.png", size=(600, 400))
    _open(pg, a)
    _click(pg, 0.3, 0.5)
    pg.fill("#color", "#8a5230")
    _settle(pg)
    used = _hints(pg)[0]["color"]  # snapped: what the hint really got
    assert pg.locator("#recent-photo button").first.get_attribute("data-color") == used
    assert pg.locator("#recent-all button").first.get_attribute("data-color") == used
    pg.reload()
    _open(pg, a)  # the same photo again: its palette is back
    assert [e.get_attribute("data-color") for e in pg.locator("#recent-photo button").all()] == [used]
    _open(pg, b)  # another photo: its own palette is empty, the one across photos is not
    assert pg.locator("#recent-photo button").count() == 0
    assert pg.locator("#recent-all button").first.get_attribute("data-color") == used
    _click(pg, 0.5, 0.5)
    _settle(pg)
    pg.locator("#recent-all button").first.click()  # a recent colour, snapped at this point's lightness
    pg.wait_for_function("document.body.dataset.state === 'idle' && window.tinct.hints[0].color !== undefined")
    _settle(pg)
    got = _hints(pg)[0]["color"]
    info = pg.evaluate("(h) => fetch(`/api/sessions/${window.tinct.sid}/color?x=${h.x}&y=${h.y}&color=`"
                       " + encodeURIComponent(h.c)).then(r => r.json())", {**_hints(pg)[0], "c": used})
    assert got == info["color"]
    assert not pg.errors, pg.errors
    pg.context.close()


def test_brush_size_and_a_stroke_are_one_undo_step(browser, server, tmp_path):
    pg = _page(browser, server)
    path, _ = _photo(tmp_path)
    _open(pg, path)
    _click(pg, 0.5, 0.15)  # one hint before the stroke
    pg.fill("#color", "#3060c0")
    _settle(pg)
    first = _hints(pg)
    pg.keyboard.press("Escape")
    pg.keyboard.press("]")
    pg.keyboard.press("]")
    assert pg.input_value("#brush") == "3" and pg.inner_text("#brush-size") == "3"
    box = pg.locator("#view").bounding_box()
    y = box["y"] + 0.6 * box["height"]
    x0, x1 = box["x"] + 0.2 * box["width"], box["x"] + 0.8 * box["width"]
    pg.keyboard.down("Shift")
    pg.mouse.move(x0, y)
    pg.mouse.down()
    for k in range(1, 13):
        pg.mouse.move(x0 + (x1 - x0) * k / 12, y)
    pg.mouse.up()
    pg.keyboard.up("Shift")
    _settle(pg)
    hints = _hints(pg)
    stroke = hints[1:]
    cell = 640 / 112  # one cell of the model's hint grid, in photo pixels
    span = (int((x1 - box["x"]) / box["width"] * 640) - int((x0 - box["x"]) / box["width"] * 640)) / cell
    assert len(stroke) == int(span // 3) + 1, (len(stroke), span)
    assert all(h["size"] == 3 and h["color"] == first[0]["color"] for h in stroke)  # the last colour picked
    xs = np.array([h["x"] for h in stroke])
    assert np.abs(np.diff(xs) - 3 * cell).max() <= 1 and len({h["y"] for h in stroke}) == 1
    assert _server_hints(pg) == hints  # the server encodes the same patches
    pg.keyboard.press("Control+z")  # the whole stroke is one edit
    _settle(pg)
    assert _hints(pg) == first
    pg.keyboard.press("Control+y")
    _settle(pg)
    assert _hints(pg) == hints
    m = pg.locator("#markers .marker").first.bounding_box()  # select the first hint: its colour panel opens
    pg.mouse.click(m["x"] + m["width"] / 2, m["y"] + m["height"] / 2)
    pg.wait_for_selector("#gamut:not([hidden])")
    pg.wait_for_function("document.querySelectorAll('#suggested button').length >= 1")
    _settle(pg)
    assert _hints(pg) == hints  # selecting is not an edit
    pg.screenshot(path=os.environ.get("TINCT_SCREENSHOT_TOOLS") or str(tmp_path / "tools.png"))  # docs/img/
    with pg.expect_download() as d:
        pg.click("#save-hints")
    saved = json.loads(Path(d.value.path()).read_text())
    assert saved == hints and "size" not in saved[0] and saved[1]["size"] == 3  # the brush is in the hint file
    assert not pg.errors, pg.errors
    pg.context.close()


def test_a_zoomed_4k_photo_s_hints_land_where_clicked(browser, server, tmp_path):
    pg = _page(browser, server)
    path, _ = _photo(tmp_path, "uhd.jpg", size=(3840, 2160), fmt="JPEG")
    _open(pg, path)
    w, h = 3840, 2160
    box0 = pg.locator("#view").bounding_box()  # unzoomed
    target = (2500, 700)
    sx = box0["x"] + (target[0] + 0.5) / w * box0["width"]
    sy = box0["y"] + (target[1] + 0.5) / h * box0["height"]
    pg.mouse.move(sx, sy)
    for _ in range(2):
        pg.mouse.wheel(0, -500)  # each e^1 larger, about the pointer
    pg.wait_for_function("+document.body.dataset.zoom > 7")
    z = float(pg.evaluate("document.body.dataset.zoom"))
    pg.mouse.click(sx, sy)  # the point under the pointer stayed put
    _settle(pg)
    px = w / (box0["width"] * z)  # photo pixels per screen pixel at this zoom
    got = _hints(pg)[0]
    assert abs(got["x"] - target[0]) <= 1 + px and abs(got["y"] - target[1]) <= 1 + px, (got, target, px)
    pg.mouse.click(sx + 60, sy + 40)
    _settle(pg)
    second = _hints(pg)[1]
    assert abs(second["x"] - (got["x"] + 60 * px)) <= 2 + px and abs(second["y"] - (got["y"] + 40 * px)) <= 2 + px
    # markers sit on their photo points at this zoom, after a keyboard zoom-out and after Fit
    for keys in ([], ["-"], ["0"]):
        for k in keys:
            pg.keyboard.press(k)
        vb = pg.locator("#view").bounding_box()
        for i, hint in enumerate(_hints(pg)):
            mb = pg.locator("#markers .marker").nth(i).bounding_box()
            mx, my = mb["x"] + mb["width"] / 2, mb["y"] + mb["height"] / 2
            assert abs(mx - (vb["x"] + (hint["x"] + 0.5) / w * vb["width"])) <= 1.5
            assert abs(my - (vb["y"] + (hint["y"] + 0.5) / h * vb["height"])) <= 1.5
    assert pg.evaluate("document.body.dataset.zoom") == "1.000"
    assert not pg.errors, pg.errors
    pg.context.close()


def _touch(cdp, kind: str, points: list[tuple[float, float]]) -> None:
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
        {"x": x, "y": y, "id": i, "radiusX": 2, "radiusY": 2, "force": 1} for i, (x, y) in enumerate(points)]})


def test_touch_tap_drag_long_press_and_pinch(browser, server, tmp_path):
    pg = _page(browser, server, has_touch=True)
    cdp = pg.context.new_cdp_session(pg)
    path, _ = _photo(tmp_path)
    _open(pg, path)
    box = pg.locator("#view").bounding_box()
    pg.touchscreen.tap(box["x"] + 0.3 * box["width"], box["y"] + 0.5 * box["height"])  # tap adds
    pg.wait_for_function("window.tinct.hints.length === 1")
    _settle(pg)
    start = _hints(pg)[0]
    m = pg.locator("#markers .marker").first.bounding_box()
    cx, cy = m["x"] + m["width"] / 2, m["y"] + m["height"] / 2
    _touch(cdp, "touchStart", [(cx, cy)])  # drag moves
    for k in range(1, 8):
        _touch(cdp, "touchMove", [(cx + k * 20, cy)])
    _touch(cdp, "touchEnd", [])
    _settle(pg)
    moved = _hints(pg)[0]
    assert moved["x"] > start["x"] + 100 and moved["y"] == start["y"] and len(_hints(pg)) == 1
    m = pg.locator("#markers .marker").first.bounding_box()
    _touch(cdp, "touchStart", [(m["x"] + m["width"] / 2, m["y"] + m["height"] / 2)])  # long-press removes
    time.sleep(0.9)
    _touch(cdp, "touchEnd", [])
    pg.wait_for_function("window.tinct.hints.length === 0")
    _settle(pg)
    mx, my = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2  # two fingers apart: zoom in
    _touch(cdp, "touchStart", [(mx - 20, my), (mx + 20, my)])
    for k in range(1, 6):
        _touch(cdp, "touchMove", [(mx - 20 - 30 * k, my), (mx + 20 + 30 * k, my)])
    _touch(cdp, "touchEnd", [])
    z = float(pg.evaluate("document.body.dataset.zoom"))
    assert 6 < z < 9, z  # finger distance 40 -> 340 px
    assert _hints(pg) == []  # a pinch adds no hint
    pg.touchscreen.tap(mx, my)  # a tap at the zoomed centre lands on the photo point under it
    pg.wait_for_function("window.tinct.hints.length === 1")
    vb = pg.locator("#view").bounding_box()
    h = _hints(pg)[0]
    assert abs(h["x"] - (mx - vb["x"]) / vb["width"] * 640) <= 1 and abs(h["y"] - (my - vb["y"]) / vb["height"] * 480) <= 1
    assert not pg.errors, pg.errors
    pg.context.close()


def test_every_control_is_reachable_from_the_keyboard(browser, server, tmp_path):
    pg = _page(browser, server)
    with pg.expect_file_chooser() as fc:  # the photo picker opens from the keyboard
        pg.focus("header label.button")
        pg.keyboard.press("Enter")
    path, _ = _photo(tmp_path)
    fc.value.set_files(str(path))
    pg.wait_for_selector("#frame:not([hidden])")
    pg.focus("#stage")
    pg.keyboard.press("a")  # a hint at the centre of the view, from the keyboard
    _settle(pg)
    h = _hints(pg)[0]
    assert abs(h["x"] - 320) <= 6 and abs(h["y"] - 240) <= 6
    pg.keyboard.press("ArrowRight")
    _settle(pg)
    assert _hints(pg)[0]["x"] == h["x"] + 1
    pg.wait_for_function("document.querySelectorAll('#suggested button').length >= 1")
    pg.focus("#suggested button")
    pg.keyboard.press("Enter")  # a suggestion picked from the keyboard goes into the recent palettes
    pg.wait_for_function("document.querySelectorAll('#recent-all button').length === 1")
    _settle(pg)
    reached = set()
    pg.evaluate("document.activeElement.blur()")
    for _ in range(120):
        pg.keyboard.press("Tab")
        reached.add(pg.evaluate("(e => e.id || (e.classList.contains('marker') ? 'marker' : e.parentElement.id "
                                "|| e.tagName))(document.activeElement)"))
    want = {"samples", "engine", "undo", "clear", "save-hints", "load-hints-label", "download", "zoom-out", "zoom-in",
            "zoom-fit", "stage", "marker", "brush", "color", "suggested", "gamut", "recent-photo", "recent-all", "split",
            "keys"}
    assert want <= reached, want - reached
    pg.focus("#gamut")  # the gamut panel: arrows then Enter pick
    before = _hints(pg)[0]["color"]
    for k in ["ArrowRight"] * 6 + ["ArrowUp"] * 3 + ["Enter"]:
        pg.keyboard.press(k)
    pg.wait_for_function(f"window.tinct.hints[0].color !== '{before}'")
    assert not pg.errors, pg.errors
    pg.context.close()


def test_serve_folder_saves_hints_beside_photos_and_results_like_batch(browser, tmp_path):
    from tinct.serve.batch import EngineSpec, plan, run_local

    folder = tmp_path / "archive"
    folder.mkdir()
    _photo(folder, "a.jpg", size=(320, 240), fmt="JPEG")
    _photo(folder, "b.png", size=(300, 200))
    (folder / "notes.txt").write_text("not a photo")
    (folder / "a.json").write_text(json.dumps([{"x": 10, "y": 20, "color": "#aa3311"}]))
    proc, url, log = _start("--folder", str(folder))
    try:
        pg = _page(browser, url + "/")
        pg.wait_for_function("window.tinct.folderIndex === 0 && window.tinct.hints.length === 1")
        _settle(pg)
        assert "1 / 2 · a.jpg" in pg.inner_text("#folder-pos")
        _click(pg, 0.5, 0.5)
        pg.fill("#color", "#30a040")
        _settle(pg)
        mine = _hints(pg)
        deadline = time.monotonic() + 10  # hints are saved beside the photo after each update
        while json.loads((folder / "a.json").read_text()) != mine and time.monotonic() < deadline:
            time.sleep(0.1)
        assert json.loads((folder / "a.json").read_text()) == mine
        pg.keyboard.press("PageDown")  # next: the result is written first
        pg.wait_for_function("window.tinct.folderIndex === 1")
        assert (folder / "colorized" / "a.png").is_file()
        assert "2 / 2 · b.png" in pg.inner_text("#folder-pos") and _hints(pg) == []
        pg.keyboard.press("PageUp")
        pg.wait_for_function("window.tinct.folderIndex === 0 && window.tinct.hints.length === 2")
        assert _hints(pg) == mine and "✓" in pg.inner_text("#folder-pos")
        assert not pg.errors, pg.errors
        pg.context.close()
    finally:
        _stop(proc, log)
    # `tinct batch DIR OUT --hints-dir DIR` on the same folder gives the same picture
    out = tmp_path / "rerun"
    p = plan(folder, out, hints_dir=folder)
    s = run_local(p, EngineSpec(path=str(ROOT / "weights" / "icolorit-tiny.onnx"), backend="onnxruntime",
                                opts={"threads": 1}), progress=False)
    assert not s.failed
    assert json.loads((folder / "b.json").read_text()) == []  # seen and left without hints: saved as such
    for name in ("a.png", "b.png"):
        served = np.asarray(Image.open(folder / "colorized" / name).convert("RGB")).astype(int)
        batch = np.asarray(Image.open(out / name).convert("RGB")).astype(int)
        assert served.shape == batch.shape and np.abs(served - batch).max() <= 1, (name, np.abs(served - batch).max())

