"""Round trip in the browser vs the same session update without HTTP (issue 16's acceptance check).

``python -m tinct.benchmarks.serve_rtt [--size 1920x1080] [--clicks 20] [--json OUT]`` starts
``tinct serve`` (one engine, ONNX Runtime, 1 thread), opens its page in headless Chromium (Debian's
package, Playwright), opens a photo of ``--size`` and clicks ``--clicks`` hints, each followed by a colour
pick: two updates per click. The page records each update's round trip (request sent -> new image drawn
on the canvas). Interleaved with the clicks, the same edits run on an in-process ``Session`` with the same
engine, preview size and thread count (set_hints + preview: the update without HTTP). Reported: both
medians with their IQR and the ratio, round trip / in-process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tinct.benchmarks import env as envmod
from tinct.benchmarks.latency.inputs import fixture_photos, parse_size, photo
from tinct.benchmarks.load import start_server, stop_server
from tinct.runtime.backends import open_backend
from tinct.runtime.catalog import prebuilt_model
from tinct.runtime.colorizer import Colorizer
from tinct.runtime.hints import parse_user_hints
from tinct.runtime.timing import stats

SETTLE = "document.body.dataset.state === 'idle' && window.tinct.shownSeq === window.tinct.seq"


def click_and_pick(page, fx: float, fy: float, colour: str) -> list[dict]:
    """One click on the page's photo at (fx, fy) of its size, then ``colour`` in the picker: two updates, each
    waited for until drawn. Returns the page's hints."""
    box = page.locator("#view").bounding_box()
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    page.wait_for_function(SETTLE, polling=50, timeout=60_000)
    page.fill("#color", colour)
    page.wait_for_function(SETTLE, polling=50, timeout=60_000)
    return page.evaluate("window.tinct.hints")


def main(argv=None) -> int:
    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser(prog="python -m tinct.benchmarks.serve_rtt", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--clicks", type=int, default=20)
    p.add_argument("--model", default="icolorit-tiny")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--preview", type=int, default=1280)
    p.add_argument("--wire", default=None, choices=["rgba", "jpeg", "png"],
                   help="the page's preview format (default: the page's own, raw RGBA on this machine)")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    size = parse_size(a.size)
    if not 1 <= a.clicks <= 500:
        raise SystemExit("--clicks: use 1..500")
    rgb = photo(fixture_photos()[0], size)
    tmp = Path(tempfile.mkdtemp(prefix="tinct-rtt-"))
    Image.fromarray(rgb).save(tmp / "photo.png")
    rng = np.random.default_rng(0)
    clicks = [(float(rng.uniform(0.03, 0.97)), float(rng.uniform(0.03, 0.97)),
               "#%02x%02x%02x" % tuple(int(v) for v in rng.integers(0, 256, 3))) for _ in range(a.clicks)]
    env = envmod.capture()
    colorizer = Colorizer(open_backend(prebuilt_model(a.model), "onnxruntime", threads=a.threads))
    proc, url, log = start_server("--model", a.model, "--backends", "onnxruntime", "--threads", str(a.threads),
                                  "--preview", str(a.preview))
    url += "/"
    local: list[float] = []
    local_model: list[float] = []
    local_post: list[float] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=a.chromium, args=["--no-sandbox", "--disable-gpu"])
            # bypass_csp: Playwright evaluates its wait predicates as strings, which the page's CSP (no eval) refuses
            page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
            page.goto(url + (f"?preview={a.wire}" if a.wire else ""))
            page.set_input_files("#file", str(tmp / "photo.png"))
            page.wait_for_selector("#frame:not([hidden])")
            shown = page.evaluate("[window.tinct.pw, window.tinct.ph]")
            session = colorizer.session(rgb, preview=max(shown))  # the display size the page asked for
            for fx, fy, colour in clicks:
                click_and_pick(page, fx, fy, colour)
                # the same work without HTTP: two updates with this click's hints (the model and the preview
                # render each time, as the page's two requests did)
                parsed = parse_user_hints(page.evaluate("window.tinct.hints"), size)
                for _ in range(2):
                    t = time.perf_counter()
                    session.set_hints(parsed)
                    session.preview()
                    local.append((time.perf_counter() - t) * 1e3)
                    local_model.append(session.timings["model"])
                    local_post.append(session.timings["post"])
            rtts = page.evaluate("window.tinct.rtts")
            timings = page.evaluate("window.tinct.served")
            via = page.evaluate("window.tinct.via")
            page.screenshot(path=str(tmp / "page.png"))
            browser.close()
    finally:
        stop_server(proc, log)
    envmod.finish(env)
    b, s = stats(rtts), stats(local)
    v = stats([t["update"] + t["encode"] for t in timings])
    parts = {k: stats([t[k] for t in timings]) for k in ("model", "post", "encode")}
    parts["in_process_model"], parts["in_process_post"] = stats(local_model), stats(local_post)
    doc = {"kind": "serve-rtt", "environment": env, "image_size": list(size), "preview": shown, "wire": a.wire or "rgba", "via": via,
           "model": a.model, "threads": a.threads, "browser": b, "in_process": s, "server": v, "parts": parts,
           "ratio": b["median_ms"] / s["median_ms"]}
    print(f"machine: {env.get('cpu_line')}, {env.get('cpu_count')} logical cores; {a.size} photo, shown at "
          f"{shown[0]}x{shown[1]} in a 1280x800 window, "
          f"{a.model} on ONNX Runtime, {a.threads} thread(s)")
    print("| update | n | median ms | IQR ms | p90 ms |\n|---|---|---|---|---|")
    print(f"| in-process Session (set_hints + preview) | {s['runs']} | {s['median_ms']:.1f} | {s['iqr_ms']:.1f} | {s['p90_ms']:.1f} |")
    print(f"| the same updates inside the server (update + preview encoding) | {v['runs']} | {v['median_ms']:.1f} | "
          f"{v['iqr_ms']:.1f} | {v['p90_ms']:.1f} |")
    print(f"| browser round trip (tinct serve, {a.wire or 'rgba'} previews, request -> drawn, over {via}) | {b['runs']} | {b['median_ms']:.1f} | {b['iqr_ms']:.1f} | "
          f"{b['p90_ms']:.1f} |")
    med = {k: v["median_ms"] for k, v in parts.items()}
    print(f"medians, ms: model {med['model']:.1f} in the server / {med['in_process_model']:.1f} in-process; "
          f"post {med['post']:.1f} / {med['in_process_post']:.1f}; preview encoding {med['encode']:.1f}")
    print(f"ratio {doc['ratio']:.2f}x (acceptance: <= 1.5x)")
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=1))
    return 0 if doc["ratio"] <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
