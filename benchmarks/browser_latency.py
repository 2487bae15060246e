"""The in-browser engine's update against the same update in-process natively, same machine (issue 31).

``python -m tinct.benchmarks.browser_latency [--models icolorit-tiny,acolvit-tiny-0.5,INT8.onnx] [--threads 1,2]
[--clicks 15] [--size 1920x1080] [--json OUT]`` (a model: a shipped name, or a hint-model ONNX such as an INT8
artifact, served with ``--engine``) starts ``tinct serve``, and for each model and thread count opens its page in a
fresh headless Chromium context (Debian's package; an empty cache, so the cold start includes the download),
switches to the model's "this browser" engine (ONNX Runtime Web in a Web Worker, ``?threads=N``), opens a photo
and clicks hints, each followed by a colour pick: two updates per click. Interleaved with the clicks, the same
hints run on an in-process ``Session`` on ONNX Runtime with the same thread count and preview size. Reported per
case: model and post-processing medians (IQR) on both sides, their ratios, and the cold start (download + session
creation). The first two updates of each side are warm-up and left out (ONNX Runtime Web's first run is slower).
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
from tinct.benchmarks.serve_rtt import click_and_pick
from tinct.runtime.artifact import read_onnx_meta
from tinct.runtime.backends import open_backend
from tinct.runtime.catalog import prebuilt_model
from tinct.runtime.colorizer import Colorizer
from tinct.runtime.hints import parse_user_hints
from tinct.runtime.timing import stats

WARMUP = 2


def _spec(item: str) -> dict:
    """A shipped model's name or a hint-model .onnx (an INT8 one, say): its path, model name and precision."""
    path = Path(item) if item.endswith(".onnx") else prebuilt_model(item)
    meta = read_onnx_meta(path)
    return {"path": path, "model": meta.model, "precision": meta.precision, "shipped": not item.endswith(".onnx")}


def _case(browser, url, spec, threads, rgb, png, clicks) -> dict:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)  # an empty cache
    page = ctx.new_page()
    page.goto(url + f"?threads={threads}")
    page.wait_for_function("window.tinct.browserModels && window.tinct.browserModels.length > 0")
    page.set_input_files("#file", str(png))
    page.wait_for_function("window.tinct.opened === 1 && document.body.dataset.state === 'idle'")
    model = spec["model"]
    index = next(i for i, m in enumerate(page.evaluate("window.tinct.browserModels"))
                 if m["model"] == model and m["precision"] == spec["precision"])
    t0 = time.perf_counter()
    page.select_option("#engine", f"browser:{index}")
    page.wait_for_function(f"window.tinct.localModel && window.tinct.localModel.model === '{model}' && "
                           f"window.tinct.localModel.precision === '{spec['precision']}'", timeout=120_000)
    switch_ms = (time.perf_counter() - t0) * 1e3
    cold = page.evaluate("window.tinct.coldStart")
    shown = page.evaluate("[window.tinct.pw, window.tinct.ph]")
    native = {"model": [], "post": [], "update": []}
    with open_backend(spec["path"], "onnxruntime", threads=threads) as b:
        session = Colorizer(b).session(rgb, preview=max(shown))
        for fx, fy, colour in clicks:
            parsed = parse_user_hints(click_and_pick(page, fx, fy, colour), (rgb.shape[1], rgb.shape[0]))
            for _ in range(2):  # the page's two updates for this click, without a browser
                t = time.perf_counter()
                session.set_hints(parsed)
                session.preview()
                native["update"].append((time.perf_counter() - t) * 1e3)
                native["model"].append(session.timings["model"])
                native["post"].append(session.timings["post"])
    served = page.evaluate("window.tinct.served")
    assert page.evaluate("window.tinct.via") == "browser", "the updates did not run in the browser"
    isolated = page.evaluate("crossOriginIsolated")
    ctx.close()
    out = {"model": model, "precision": spec["precision"], "artifact": spec["path"].name, "threads": threads, "preview": shown, "cross_origin_isolated": isolated,
           "cold_start_ms": {**cold, "switch_total": switch_ms}}
    for k in ("model", "post", "update"):
        out[f"browser_{k}"] = stats([t[k] for t in served[WARMUP:]])
        out[f"native_{k}"] = stats(native[k][WARMUP:])
        out[f"ratio_{k}"] = out[f"browser_{k}"]["median_ms"] / out[f"native_{k}"]["median_ms"]
    return out


def main(argv=None) -> int:
    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser(prog="python -m tinct.benchmarks.browser_latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="icolorit-tiny,acolvit-tiny-0.5")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--clicks", type=int, default=15)
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if not 2 <= a.clicks <= 200:
        raise SystemExit("--clicks: use 2..200")
    specs = [_spec(m.strip()) for m in a.models.split(",") if m.strip()]
    threads = [int(t) for t in a.threads.split(",")]
    if not threads or any(not 1 <= t <= 8 for t in threads):
        raise SystemExit("--threads: a list of 1..8")
    size = parse_size(a.size)
    rgb = photo(fixture_photos()[0], size)
    tmp = Path(tempfile.mkdtemp(prefix="tinct-browser-"))
    png = tmp / "photo.png"
    Image.fromarray(rgb).save(png)
    rng = np.random.default_rng(0)
    clicks = [(float(rng.uniform(0.03, 0.97)), float(rng.uniform(0.03, 0.97)),
               "#%02x%02x%02x" % tuple(int(v) for v in rng.integers(0, 256, 3))) for _ in range(a.clicks)]
    env = envmod.capture()
    args = [x for sp in specs for x in (("--model", sp["model"]) if sp["shipped"] else ("--engine", str(sp["path"])))]
    proc, url, log = start_server(*args, "--backends", "onnxruntime")
    cases = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=a.chromium, args=["--no-sandbox", "--disable-gpu"])
            for sp in specs:
                for t in threads:
                    cases.append(_case(browser, url + "/", sp, t, rgb, png, clicks))
            browser.close()
    finally:
        stop_server(proc, log)
    envmod.finish(env)
    doc = {"kind": "browser-latency", "command": " ".join(["python -m tinct.benchmarks.browser_latency",
                                                           *(sys.argv[1:] if argv is None else argv)]), "environment": env, "image_size": list(size), "clicks": a.clicks,
           "warmup_updates": WARMUP, "cases": cases}
    print(f"machine: {env.get('cpu_line')}, {env.get('cpu_count')} logical cores; a {a.size} photo, "
          f"ONNX Runtime Web (wasm) in headless Chromium vs ONNX Runtime in-process")
    print("| model | threads | browser model ms (IQR) | native model ms (IQR) | model ratio | browser post ms | "
          "native post ms | update ratio | cold start: download + create ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in cases:
        cs = c["cold_start_ms"]
        print(f"| {c['model']} {c['precision']} | {c['threads']} | {c['browser_model']['median_ms']:.1f} ({c['browser_model']['iqr_ms']:.1f}) | "
              f"{c['native_model']['median_ms']:.1f} ({c['native_model']['iqr_ms']:.1f}) | {c['ratio_model']:.2f}x | "
              f"{c['browser_post']['median_ms']:.1f} | {c['native_post']['median_ms']:.1f} | {c['ratio_update']:.2f}x | "
              f"{cs['download']:.0f} + {cs['create']:.0f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
