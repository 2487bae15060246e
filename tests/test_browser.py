"""The page of `tinct serve` in a real browser: headless Chromium (Debian's package) driven by Playwright.

A real server on a free loopback port; the test opens a photo, clicks three points and sets their colours,
waits for the update, reads the pixels the page shows and compares them with `Colorizer` on the same hints
(PSNR >= 40 dB at the display size); drags a hint (the image changes), undoes it (the image comes back),
deletes one with the keyboard. It saves a screenshot (``$TINCT_SCREENSHOT``, else a temporary file); the
docs/browser.md's is one of these. In CI (``CI`` set) a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "data" / "samples" / "horses_herd.jpg"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _require(cond: bool, reason: str) -> None:
    if not cond:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def server():
    import importlib.util

    _require(importlib.util.find_spec("fastapi") is not None, "the 'serve' extra is not installed")
    _require(importlib.util.find_spec("playwright") is not None,
             "Playwright is not installed (pip install 'tinct[browser]')")
    _require(CHROMIUM is not None, "no chromium on PATH (Debian: apt-get install chromium)")
    from tinct.benchmarks.load import start_server, stop_server

    proc, url, log = start_server("--model", "icolorit-tiny", "--model", "acolvit-tiny-0.5", "--backends",
                                  "onnxruntime")
    try:
        yield url + "/"
    finally:
        stop_server(proc)
        text = log.read_text()
        log.unlink()
    assert "Traceback" not in text, text


def chromium():
    """Debian's Chromium under Playwright, headless (a generator: a module's fixture yields from it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def browser(server):
    yield from chromium()


def _open(browser, url, bypass_csp: bool = True):
    """A page; ``bypass_csp``: let Playwright's string predicates (evaluated by the page) past the server's CSP,
    which forbids eval. :func:`test_the_page_runs_under_its_own_csp` runs the page with the CSP in force."""
    pg = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=bypass_csp)
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.goto(url)
    return pg


@pytest.fixture(scope="module")
def page(browser, server):
    pg = _open(browser, server)
    yield pg
    assert not pg.errors, pg.errors


def _photo(tmp_path) -> tuple[Path, np.ndarray]:
    with Image.open(PHOTO) as im:
        im = im.convert("RGB").resize((640, 480), Image.BICUBIC)
    path = tmp_path / "horses.png"
    im.save(path)
    return path, np.asarray(im)


def _settle(page) -> None:
    page.wait_for_function("document.body.dataset.state === 'idle' && window.tinct.shownSeq === window.tinct.seq",
                           timeout=30_000)


def _shown(page) -> np.ndarray:
    url = page.evaluate("document.getElementById('view').toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _click(page, fx: float, fy: float) -> None:
    box = page.locator("#view").bounding_box()
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])


def test_click_colour_drag_undo_delete_in_a_real_browser(page, tmp_path):
    from tinct.runtime import color
    from tinct.runtime.backends import open_backend
    from tinct.runtime.colorizer import Colorizer
    from tinct.runtime.hints import parse_user_hints

    path, rgb = _photo(tmp_path)
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#frame:not([hidden])")
    assert page.evaluate("[window.tinct.width, window.tinct.height, window.tinct.pw]") == [640, 480, 640]
    gray = _shown(page)
    assert np.abs(gray[..., 0].astype(int) - gray[..., 2]).max() <= 1  # shown gray before any hint

    colours = ["#8a5230", "#4c8c2c", "#4a86d8"]  # a horse's coat, the grass, the sky
    for (fx, fy), c in zip([(0.3, 0.5), (0.7, 0.85), (0.5, 0.12)], colours):
        _click(page, fx, fy)
        page.fill("#color", c)  # the picker of the hint just added
    _settle(page)
    hints = page.evaluate("window.tinct.hints")
    # each pick becomes the colour it can be at its point's lightness (snapped into gamut, same hue)
    snapped = [color.snap_rgb(float(color.rgb_to_lab(rgb[h["y"], h["x"]])[0]), np.frombuffer(bytes.fromhex(c[1:]), np.uint8))
               for h, c in zip(hints, colours)]
    assert [h["color"] for h in hints] == ["#" + bytes(s).hex() for s in snapped]
    sid = page.evaluate("window.tinct.sid")
    server_hints = json.loads(page.evaluate(f"fetch('/api/sessions/{sid}/hints').then(r => r.text())"))
    assert server_hints == hints

    shown = _shown(page)
    assert shown.shape == (480, 640, 3)
    assert page.evaluate("window.tinct.via") == "websocket"  # the page's updates go over its session socket
    with open_backend(ROOT / "weights" / "icolorit-tiny.onnx", "onnxruntime", threads=1) as b:
        ref = Colorizer(b).session(rgb, preview=1280)
        ref.set_hints(parse_user_hints(hints, (640, 480)))
        want = ref.preview().copy()
    assert np.array_equal(shown, want), _psnr(shown, want)  # raw previews on the serving machine: exact
    t = {k: page.inner_text(f"#t-{k}") for k in ("model", "post", "rtt")}
    assert all(v.endswith(" ms") for v in t.values()), t
    page.screenshot(path=os.environ.get("TINCT_SCREENSHOT") or str(tmp_path / "serve.png"))

    # drag the first hint: the image changes; undo: it comes back
    marker = page.locator("#markers .marker").first.bounding_box()
    box = page.locator("#view").bounding_box()
    page.mouse.move(marker["x"] + marker["width"] / 2, marker["y"] + marker["height"] / 2)
    page.mouse.down()
    for k in range(1, 6):
        page.mouse.move(marker["x"] + marker["width"] / 2 + k * 0.05 * box["width"], marker["y"] + marker["height"] / 2)
    page.mouse.up()
    _settle(page)
    moved = page.evaluate("window.tinct.hints")[0]
    assert moved["x"] > hints[0]["x"] + 100 and moved["color"] == hints[0]["color"]  # moving keeps its colour
    dragged = _shown(page)
    assert _psnr(dragged, shown) < 45
    page.keyboard.press("Control+z")
    _settle(page)
    assert page.evaluate("window.tinct.hints") == hints
    assert np.array_equal(_shown(page), shown)

    # delete the selected hint with the keyboard
    _click(page, 0.9, 0.9)
    _settle(page)
    assert len(page.evaluate("window.tinct.hints")) == 4
    page.keyboard.press("Delete")
    _settle(page)
    assert page.evaluate("window.tinct.hints") == hints
    assert np.array_equal(_shown(page), shown)
    assert page.inner_text("#status") == ""

    # the socket goes away (a proxy, a server restart): the next edit goes over HTTP, same picture
    page.evaluate("window.tinct.ws.close()")
    page.wait_for_function("window.tinct.ws === null")
    _click(page, 0.9, 0.9)
    _settle(page)
    page.keyboard.press("Delete")
    _settle(page)
    assert page.evaluate("window.tinct.via") == "http" and page.evaluate("window.tinct.hints") == hints
    assert np.array_equal(_shown(page), shown)


def test_engine_switch_shows_the_acolvit_gates(page):
    page.select_option("#engine", "acolvit-tiny-0.5 · onnxruntime fp32")
    _settle(page)
    page.wait_for_selector("#gates-box:not([hidden])")
    assert page.locator("#gates span").count() == 24
    on = page.locator("#gates span.on").count()
    assert 0 < on < 24 and f"{round(100 * on / 24)} %" in page.inner_text("#kept")


def test_hints_files_and_the_full_resolution_download(page, tmp_path):
    """Load a hint file into the page (the CLI's format), save it back, download the full-resolution PNG."""
    page.select_option("#engine", "icolorit-tiny · onnxruntime fp32")
    _settle(page)
    mine = [{"x": 40, "y": 30, "color": "#aa3311"}, {"x": 600, "y": 400, "color": "#1133aa"}]
    f = tmp_path / "mine.json"
    f.write_text(json.dumps(mine))
    page.set_input_files("#load-hints", str(f))
    page.wait_for_function("window.tinct.hints.length === 2 && document.body.dataset.state === 'idle'")
    assert page.evaluate("window.tinct.hints") == mine and "loaded 2 hints" in page.inner_text("#status")
    with page.expect_download() as d:
        page.click("#save-hints")
    assert json.loads(Path(d.value.path()).read_text()) == mine
    with page.expect_download() as d:
        page.click("#download")
    assert Image.open(d.value.path()).size == (640, 480)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"x": 4000, "y": 1, "color": "#ffffff"}]')
    page.set_input_files("#load-hints", str(bad))
    page.wait_for_function("document.getElementById('status').textContent.includes('outside the image')")
    assert page.evaluate("window.tinct.hints") == mine  # a refused file changes nothing


def test_jpeg_previews_for_pages_served_across_a_network(browser, server, tmp_path):
    """Away from the serving machine the page asks for JPEG previews (?preview=jpeg forces it here): what it
    shows stays within the promise, PSNR >= 40 dB against Colorizer."""
    from tinct.runtime.backends import open_backend
    from tinct.runtime.colorizer import Colorizer
    from tinct.runtime.hints import parse_user_hints

    pg = _open(browser, server + "?preview=jpeg")
    path, rgb = _photo(tmp_path)
    pg.set_input_files("#file", str(path))
    pg.wait_for_selector("#frame:not([hidden])")
    for (fx, fy), c in zip([(0.3, 0.5), (0.7, 0.85), (0.5, 0.12)], ["#8a5230", "#4c8c2c", "#4a86d8"]):
        _click(pg, fx, fy)
        pg.fill("#color", c)
    _settle(pg)
    with open_backend(ROOT / "weights" / "icolorit-tiny.onnx", "onnxruntime", threads=1) as b:
        ref = Colorizer(b).session(rgb, preview=1280)
        ref.set_hints(parse_user_hints(pg.evaluate("window.tinct.hints"), (640, 480)))
        want = ref.preview().copy()
    assert _psnr(_shown(pg), want) >= 40, _psnr(_shown(pg), want)
    assert pg.evaluate("window.tinct.via") == "websocket" and not pg.errors, pg.errors
    pg.close()


def test_the_page_runs_under_its_own_csp(browser, server, tmp_path):
    """The Content-Security-Policy the server sends (scripts, styles, connections from this server only, no
    eval) does not break the page: upload, a click, an update over the WebSocket, no CSP report."""
    pg = _open(browser, server, bypass_csp=False)
    reports = []
    pg.on("console", lambda m: reports.append(m.text) if "Content Security Policy" in m.text else None)
    resp = pg.goto(server)
    csp = resp.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers.get("x-frame-options") == "DENY" and resp.headers.get("x-content-type-options") == "nosniff"
    path, _ = _photo(tmp_path)
    pg.set_input_files("#file", str(path))
    pg.wait_for_selector("#frame:not([hidden])")
    _click(pg, 0.3, 0.5)
    deadline = time.monotonic() + 30
    while pg.evaluate("window.tinct.shownSeq") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pg.evaluate("window.tinct.shownSeq") >= 1 and pg.evaluate("window.tinct.via") == "websocket"
    assert not reports and not pg.errors, (reports, pg.errors)
    pg.close()


def test_an_unexpected_409_is_shown_and_the_page_resyncs(browser, server, tmp_path):
    """Another client moves the session on (a higher seq): the page's next update is refused with 409; the page
    says so, takes the session's hints from the server and renders them with a newer number."""
    import requests

    pg = _open(browser, server)
    path, _ = _photo(tmp_path)
    pg.set_input_files("#file", str(path))
    pg.wait_for_selector("#frame:not([hidden])")
    _click(pg, 0.3, 0.5)
    _settle(pg)
    sid = pg.evaluate("window.tinct.sid")
    theirs = [{"x": 500, "y": 100, "color": "#2040c0"}]
    assert requests.put(server + f"api/sessions/{sid}/hints?image=none", json={"hints": theirs, "seq": 1000},
                        timeout=30).status_code == 200
    _click(pg, 0.7, 0.8)
    pg.wait_for_function("window.tinct.resynced === 1 && window.tinct.seq > 1000")
    _settle(pg)
    assert "changed elsewhere (update 1000)" in pg.inner_text("#status")
    assert pg.evaluate("window.tinct.hints") == theirs
    assert requests.get(server + f"api/sessions/{sid}", timeout=10).json()["seq"] == pg.evaluate("window.tinct.seq")
    assert not pg.errors
    pg.close()


def test_the_colour_panel_suggests_and_snaps(browser, server, tmp_path):
    """A first click on a gray photo offers the model's colour there (the shipped model's muted prediction: at
    least one suggestion); picking it, or a point of the gamut panel, sets the hint to the colour the server says
    it can be at that lightness; undo takes a pick back."""
    pg = _open(browser, server)
    with Image.open(PHOTO) as im:
        gray = im.convert("L").convert("RGB").resize((640, 480))
    path = tmp_path / "gray.png"
    gray.save(path)
    pg.set_input_files("#file", str(path))
    pg.wait_for_selector("#frame:not([hidden])")
    _click(pg, 0.5, 0.12)
    pg.wait_for_function("document.querySelectorAll('#suggested button').length >= 1", timeout=30_000)
    _settle(pg)
    first = pg.locator("#suggested button").first
    want = first.get_attribute("data-color")
    first.click()
    pg.wait_for_function(f"window.tinct.hints[0].color === '{want}'")
    _settle(pg)
    pg.wait_for_selector("#gamut:not([hidden])")
    box = pg.locator("#gamut").bounding_box()
    pg.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)  # a = b = 0: gray
    pg.wait_for_function(f"window.tinct.hints[0].color !== '{want}'")
    _settle(pg)
    h = pg.evaluate("window.tinct.hints[0]")
    info = pg.evaluate(f"fetch('/api/sessions/' + window.tinct.sid + '/color?x={h['x']}&y={h['y']}&color=' + "
                       f"encodeURIComponent('{h['color']}')).then(r => r.json())")
    assert info["in_gamut"] is True and info["color"] == h["color"]
    rgb = np.frombuffer(bytes.fromhex(h["color"][1:]), np.uint8).astype(int)
    assert rgb.max() - rgb.min() <= 3  # the centre of the panel is gray
    pg.keyboard.press("Control+z")
    pg.wait_for_function(f"window.tinct.hints[0].color === '{want}'")
    assert not pg.errors
    pg.close()
