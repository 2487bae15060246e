"""A runtime-only install, as a Jetson or laptop user gets it: ``pip install .`` (no extras) in a fresh
virtual environment, where ``import torch`` and ``import onnx`` fail; the shipped models run offline
from the ONNX files ``tinct ship`` wrote, and site-packages gains ``tinct`` and its dependencies only."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "data" / "samples" / "horses_herd.jpg"
HINTS = REPO / "data" / "samples" / "horses_herd_hints.json"
HINT_MODELS = ("icolorit-tiny", "acolvit-tiny-0.5", "acolvit-tiny-0.3")


def _run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)
    assert r.returncode == 0, f"{cmd}: {r.stdout[-1500:]} {r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory, runtime_wheel):
    missing = [f"weights/{n}.onnx" for n in HINT_MODELS if not (REPO / "weights" / f"{n}.onnx").is_file()]
    assert not missing, f"shipped ONNX missing (run 'tinct ship --onnx-only --name NAME'): {missing}"
    d = tmp_path_factory.mktemp("rtvenv")
    venv.EnvBuilder(with_pip=True, clear=True).create(d / "venv")
    py = d / "venv" / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile", runtime_wheel])
    return py


def test_site_packages_gains_tinct_and_its_dependencies_only(runtime_venv):
    code = ("import importlib.util, json, site, os; sp = site.getsitepackages()[0]; "
            "print(json.dumps({'top': sorted(os.listdir(sp)), "
            "'torch': importlib.util.find_spec('torch') is not None, "
            "'onnx': importlib.util.find_spec('onnx') is not None}))")
    info = json.loads(_run([runtime_venv, "-c", code]).stdout)
    assert not info["torch"] and not info["onnx"]
    generic = {"runtime", "data", "models", "training", "export", "quantization", "benchmarks", "weights"}
    assert not generic & set(info["top"]), info["top"]
    assert "tinct" in info["top"]


@pytest.mark.slow
def test_shipped_models_run_without_torch(runtime_venv, tmp_path):
    tinct = runtime_venv.parent / "tinct"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["TINCT_CACHE"] = str(tmp_path / "cache")  # nothing cached: the shipped ONNX must be enough
    for name in HINT_MODELS:
        out = tmp_path / f"{name}.png"
        r = _run([tinct, "colorize", PHOTO, "--hints", HINTS, "--model", name, "-o", out], cwd=tmp_path, env=env)
        assert out.is_file() and out.stat().st_size > 1000, r.stdout
        assert "exporting" not in r.stdout
    out = tmp_path / "c2e.png"
    ref = REPO / "data" / "samples" / "cow_in_field.jpg"
    _run([tinct, "colorize", PHOTO, "--reference", ref, "--model", "color2embed-r18", "-o", out], cwd=tmp_path,
         env=env)
    assert out.is_file()
    assert not (tmp_path / "cache").exists()  # nothing exported on the fly


@pytest.mark.slow
def test_serve_runs_from_the_runtime_install_plus_its_extra(runtime_venv, tmp_path):
    """`pip install 'tinct[serve]'` without torch: the server starts, lists the shipped models and answers
    POST /api/colorize with a PNG (the extra's packages come from the registry)."""
    import re
    import time
    import urllib.request

    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    _run([runtime_venv, "-m", "pip", "install", "-q", "--disable-pip-version-check", *deps])
    tinct = runtime_venv.parent / "tinct"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    log = tmp_path / "serve.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([tinct, "serve", "--port", "0", "--backends", "onnxruntime"], stdout=f,
                                stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        url = None
        for _ in range(600):
            m = re.search(r"(http://127\.0\.0\.1:\d+)/", log.read_text())
            if m or proc.poll() is not None:
                url = m and m.group(1)
                break
            time.sleep(0.1)
        assert url, log.read_text()
        engines = json.loads(urllib.request.urlopen(url + "/api/engines", timeout=30).read())
        models = {e["model"] for e in engines["engines"]}
        assert {"icolorit-tiny", "acolvit-tiny-0.5", "acolvit-tiny-0.3", "color2embed-r18"} <= models
        boundary = "tinctboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.jpg\"\r\n"
                "Content-Type: image/jpeg\r\n\r\n").encode() + PHOTO.read_bytes() + (
                f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"hints\"\r\n\r\n").encode() + \
            HINTS.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(url + "/api/colorize", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/png"
            assert r.read()[:8] == b"\x89PNG\r\n\x1a\n"
        code = "import importlib.util as u; print(u.find_spec('torch') is None and u.find_spec('onnx') is None)"
        assert _run([runtime_venv, "-c", code]).stdout.strip() == "True"
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Traceback" not in log.read_text(), log.read_text()
