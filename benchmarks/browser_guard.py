"""The accuracy guard for a model run by ONNX Runtime Web in the browser (issue 31: INT8/FP16 in the browser only
where they pass the guard the native ones pass).

``python -m tinct.benchmarks.browser_guard ARTIFACT [--parent FP32.onnx] [--limit N] [--threads 1] [--json OUT]``
runs the guard of ``tinct quantize`` (:func:`tinct.verify.guard.compare`: the validation photos, the papers' hint
sets at 1, 10 and 50 hints, ΔPSNR parent - child) with the child being ``ARTIFACT`` executed by ONNX Runtime Web
(wasm) in headless Chromium, and the parent the native FP32 artifact on ONNX Runtime. The files are served by a
plain static server in this process (cross-origin isolated). Also reported: the browser's median run time and
the budget of the artifact's precision (:data:`tinct.verify.budgets.DEFAULT_BUDGET_DB`).
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from tinct.benchmarks import env as envmod
from tinct.runtime.artifact import read_onnx_meta
from tinct.runtime.catalog import prebuilt_model
from tinct.runtime.timing import stats
from tinct.serve.web_assets import VENDOR_DIR, require
from tinct.verify.budgets import DEFAULT_BUDGET_DB
from tinct.verify.guard import compare, guard_images
from tinct.verify.predictors import ArtifactPredictor

RUN = """async ([b64, threads]) => {
  if (!window.ort) {
    window.ort = await import('/vendor/ort.wasm.min.mjs');
    ort.env.wasm.wasmPaths = location.origin + '/vendor/'; ort.env.wasm.numThreads = threads;
    window.sess = await ort.InferenceSession.create('/model.onnx', {executionProviders: ['wasm']});
  }
  const bin = atob(b64), u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  const t0 = performance.now();
  const out = await sess.run({[sess.inputNames[0]]: new ort.Tensor('float32', new Float32Array(u8.buffer), [1, 4, 224, 224])});
  const ms = performance.now() - t0;
  const enc = (a) => { const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength); let s = '';
    for (let i = 0; i < b.length; i += 32768) s += String.fromCharCode.apply(null, b.subarray(i, i + 32768)); return btoa(s); };
  const ab = out[sess.outputNames.find((n) => n !== 'gates')];
  return {ab: enc(ab.data), gates: out.gates ? Array.from(out.gates.data) : null, ms};
}"""


class _Files(http.server.SimpleHTTPRequestHandler):
    isolate = True  # send the two headers a host must send for cross-origin isolation (ONNX Runtime Web's threads)

    def end_headers(self):
        if self.isolate:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        pass


def static_server(folder, isolate: bool = True):
    """A plain static file server for ``folder`` on a free loopback port, in a thread (the standard library's, as a
    host would run one; with or without COOP/COEP): ``(server, url)``; stop it with ``server.shutdown()``."""
    handler = type("Files", (_Files,), {"isolate": isolate})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def main(argv=None) -> int:
    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser(prog="python -m tinct.benchmarks.browser_guard", description=__doc__.split("\n\n")[0])
    p.add_argument("artifact", help="the hint-model ONNX to run in the browser")
    p.add_argument("--parent", default=None, help="the native FP32 reference (default: the shipped model's ONNX)")
    p.add_argument("--limit", type=int, default=None, help="first N validation photos")
    p.add_argument("--threads", type=int, default=1, choices=[1, 2, 4])
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    require()
    child_path = Path(a.artifact)
    meta = read_onnx_meta(child_path)
    parent_path = Path(a.parent) if a.parent else prebuilt_model(meta.model)
    env = envmod.capture()
    root = Path(tempfile.mkdtemp(prefix="tinct-browser-guard-"))
    (root / "vendor").symlink_to(VENDOR_DIR)
    (root / "model.onnx").symlink_to(child_path.resolve())
    httpd, url = static_server(root)
    times: list[float] = []
    names, images, where = guard_images(a.limit)
    parent = ArtifactPredictor.open(parent_path, threads=a.threads)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=a.chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(url)

            def child(x):
                r = page.evaluate(RUN, [base64.b64encode(np.ascontiguousarray(x, np.float32).tobytes()).decode(), a.threads])
                times.append(r["ms"])
                ab = np.frombuffer(base64.b64decode(r["ab"]), np.float32).reshape(1, 2, 224, 224)
                gates = None if r["gates"] is None else np.array(r["gates"], bool).reshape(1, -1, 2)
                return ab, gates

            report = compare(parent, child, images, names, f"{where}, child in the browser")
            browser.close()
    finally:
        parent.close()
        httpd.shutdown()
    envmod.finish(env)
    budget = DEFAULT_BUDGET_DB.get(meta.precision, DEFAULT_BUDGET_DB["fp32"])
    worst = max(report.delta.values())
    doc = {"kind": "browser-guard", "command": " ".join(["python -m tinct.benchmarks.browser_guard",
                                                         *(sys.argv[1:] if argv is None else argv)]), "environment": env, "artifact": child_path.name, "parent": parent_path.name,
           "precision": meta.precision, "threads": a.threads, "budget_db": budget, "passed": worst <= budget,
           "browser_run": stats(times[3:]), "report": report.to_dict()}
    print(f"{child_path.name} ({meta.precision}) in the browser vs {parent_path.name} native: {report.line()}")
    print(f"budget {budget} dB: {'passed' if doc['passed'] else 'FAILED'}; browser run median "
          f"{doc['browser_run']['median_ms']:.1f} ms ({a.threads} thread(s))")
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=1))
    return 0 if doc["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
