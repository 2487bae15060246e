"""``tinct deploy web``: the static site works from a plain static file server (the standard library's, no tinct
process) in headless Chromium: models listed and checked, a photo opened and colorized from clicks on this CPU,
A-ColViT's gates shown, the full-resolution export close to ``Colorizer``'s, a photo too large to export refused
with a clear message while its preview works, and the CLI's refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_browser import PHOTO, ROOT, _require, chromium

from tinct.benchmarks.browser_guard import static_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from tinct.serve.web_assets import manifest

    _require(manifest() is not None, "ONNX Runtime Web is not vendored: python -m tinct.serve.web_assets")
    out = tmp_path_factory.mktemp("web") / "site"
    p = subprocess.run([sys.executable, "-m", "tinct.cli.main", "deploy", "web", "icolorit-tiny", "acolvit-tiny-0.5",
                        "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return out


@pytest.fixture(scope="module")
def browser(site):
    yield from chromium()


def _page(browser, url):
    pg = browser.new_page(viewport={"width": 1280, "height": 800})
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.goto(url)
    pg.wait_for_function("window.tinct.engine !== null && document.body.dataset.state === 'idle'", timeout=60_000)
    return pg


def _open(pg, path):
    n = pg.evaluate("window.tinct.opened || 0")
    pg.set_input_files("#file", str(path))
    pg.wait_for_function(f"window.tinct.opened === {n + 1} && document.body.dataset.state === 'idle'", timeout=60_000)


def _click(pg, fx, fy):
    box = pg.locator("#view").bounding_box()
    pg.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])


def _idle(pg, seq):
    pg.wait_for_function(f"document.body.dataset.state === 'idle' && window.tinct.shown >= {seq}", timeout=60_000)


def _psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255**2 / mse) if mse else float("inf")


def test_the_site_from_a_plain_static_server(site, browser, tmp_path):
    from tinct.runtime.backends import open_backend
    from tinct.runtime.colorizer import Colorizer
    from tinct.runtime.hints import parse_user_hints

    assert (site / "_headers").read_text().count("Cross-Origin") == 3
    doc = json.loads((site / "models.json").read_text())
    assert [m["model"] for m in doc["models"]] == ["icolorit-tiny", "acolvit-tiny-0.5"]
    httpd, url = static_server(site, isolate=True)
    try:
        pg = _page(browser, url)
        assert pg.evaluate("crossOriginIsolated") is True and "2 thread(s)" in pg.inner_text("#info")
        with Image.open(PHOTO) as im:
            rgb = np.asarray(im.convert("RGB").resize((640, 480)))
        path = tmp_path / "horses.png"
        Image.fromarray(rgb).save(path)
        _open(pg, path)
        for (fx, fy), colour in zip([(0.3, 0.5), (0.5, 0.12)], ["#8a5230", "#4a86d8"]):
            pg.fill("#color", colour)
            _click(pg, fx, fy)
        _idle(pg, 2)
        hints = pg.evaluate("window.tinct.hints")
        assert len(hints) == 2 and pg.evaluate("window.tinct.timings.slice(-1)[0].model") > 0
        with pg.expect_download() as d:
            pg.click("#download")
        got = np.asarray(Image.open(d.value.path()).convert("RGB"))
        with open_backend(ROOT / "weights" / "icolorit-tiny.onnx", "onnxruntime", threads=1) as b:
            want = Colorizer(b).colorize(rgb, parse_user_hints(hints, (640, 480)))
        # the same L (this PNG decodes to the same pixels); the model's 224 view is the browser's resampling, not
        # Pillow's, so the colours differ slightly: the promise is PSNR >= 45 dB against tinct colorize
        print(f"deploy web export vs tinct colorize: PSNR {_psnr(got, want):.2f} dB")
        assert got.shape == want.shape and _psnr(got, want) >= 45, _psnr(got, want)
        pg.select_option("#model", "1")  # A-ColViT: its If branches run in the browser, the gates are shown
        pg.wait_for_function("document.body.dataset.state === 'idle' && window.tinct.gates && "
                             "document.querySelectorAll('#gates span').length === 24", timeout=60_000)
        assert 0 < pg.locator("#gates span.on").count() < 24
        with pg.expect_download() as d:
            pg.click("#save-hints")
        assert json.loads(open(d.value.path()).read()) == hints
        assert not pg.errors, pg.errors
        pg.close()
    finally:
        httpd.shutdown()


def test_without_isolation_one_thread_and_a_photo_too_large_to_export(site, browser, tmp_path):
    httpd, url = static_server(site, isolate=False)  # a host that sends no COOP/COEP: still works, on one thread
    try:
        pg = _page(browser, url)
        assert pg.evaluate("crossOriginIsolated") is False and "1 thread(s)" in pg.inner_text("#info")
        big = tmp_path / "big.png"  # 45 MP: the preview works, the full-resolution export is refused
        Image.new("RGB", (7500, 6000), (120, 110, 90)).save(big, optimize=False)
        _open(pg, big)
        pg.fill("#color", "#3060c0")
        _click(pg, 0.5, 0.5)
        _idle(pg, 1)
        pg.click("#download")
        pg.wait_for_function("document.getElementById('status').textContent.includes('limited to 40 MP')")
        assert "45 MP" in pg.inner_text("#status")
        _click(pg, 0.2, 0.2)  # the page stays usable
        _idle(pg, 2)
        assert not pg.errors, pg.errors
        pg.close()
    finally:
        httpd.shutdown()


def test_a_tampered_model_is_refused(site, browser, tmp_path):
    import shutil

    bad = tmp_path / "site"
    shutil.copytree(site, bad)
    with open(bad / "models" / "icolorit-tiny.onnx", "r+b") as f:
        f.seek(1 << 20)
        f.write(b"\0" * 64)
    httpd, url = static_server(bad, isolate=True)
    try:
        pg = bad_page = browser.new_page()
        pg.goto(url)
        pg.wait_for_function("document.getElementById('status').textContent.includes('not the artifact')")
        assert bad_page.evaluate("window.tinct.engine") is None
        pg.select_option("#model", "1")  # the other model still opens
        pg.wait_for_function("window.tinct.engine !== null", timeout=60_000)
        pg.close()
    finally:
        httpd.shutdown()


@pytest.mark.parametrize("args,message", [
    (["color2embed-r18", "-o", "OUT"], "hint models"),
    (["no-such-model", "-o", "OUT"], "no-such-model"),
    (["icolorit-tiny", "-o", "FILE"], "not a folder"),
])
def test_deploy_web_refusals(tmp_path, args, message):
    (tmp_path / "file").write_text("x")
    args = [str(tmp_path / "out") if a == "OUT" else str(tmp_path / "file") if a == "FILE" else a for a in args]
    p = subprocess.run([sys.executable, "-m", "tinct.cli.main", "deploy", "web", *args], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "out").exists() and sorted(x.name for x in tmp_path.iterdir()) == ["file"]
