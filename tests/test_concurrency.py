"""One backend shared by threads, each with its own Session (what a server does): every result equals a
single-threaded replay, and first calls made together do not deadlock (issue 15's measurements)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import sys, threading
import numpy as np
from PIL import Image
from tinct.runtime.backends import open_backend
from tinct.runtime.colorizer import Colorizer

backend_name, n_threads, n_updates = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b = open_backend("weights/icolorit-tiny.onnx", backend_name, threads=1)
photos = sorted(__import__("pathlib").Path("data/samples").glob("*.jpg"))
images = [np.asarray(Image.open(p).convert("RGB").resize((320, 240))) for p in photos]

def script(k):
    # thread k's edits: a hint walking over the image with a colour of its own
    return [((20 + 13 * i + 7 * k) % 300, (15 + 11 * i + 5 * k) % 220, "#%02x%02x%02x" % ((40 * k) % 256, (90 + 17 * i) % 256, 200))
            for i in range(n_updates)]

def run(k, out, barrier=None):
    s = Colorizer(b).session(images[k % len(images)])
    if barrier is not None:
        barrier.wait()  # first calls together: the case that deadlocked
    for x, y, c in script(k):
        s.set_hints([{"x": x, "y": y, "color": c}])
        s.colorize()
        out.append(s.ab_model.copy())

results = [[] for _ in range(n_threads)]
barrier = threading.Barrier(n_threads)
threads = [threading.Thread(target=run, args=(k, results[k], barrier)) for k in range(n_threads)]
for t in threads: t.start()
for t in threads: t.join()
replay = [[] for _ in range(n_threads)]
for k in range(n_threads):
    run(k, replay[k])
differ = sum(not np.array_equal(a, r) for k in range(n_threads) for a, r in zip(results[k], replay[k]))
total = sum(len(r) for r in results)
print(f"{differ} of {total} differ")
sys.exit(0 if differ == 0 and total == n_threads * n_updates else 1)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_shared_backend_threads_equal_a_single_threaded_replay(backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    for attempt in range(3 if backend == "openvino" else 1):  # OpenVINO's deadlock showed in 2 of 5 fresh processes
        try:
            # 4 threads x 10 updates: the shared-request bug mixed 98 of 100 updates (issue 15), so 40 tell
            r = subprocess.run([sys.executable, "-c", SCRIPT, backend, "4", "10"], cwd=ROOT, capture_output=True,
                               text=True, timeout=240)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{backend}: threads sharing one backend hung (attempt {attempt + 1})")
        assert r.returncode == 0, f"{backend}: {r.stdout.strip()} {r.stderr.strip()[-800:]}"
        assert "0 of 40 differ" in r.stdout
