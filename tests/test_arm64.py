"""The arm64 leg: tinct's runtime on linux/arm64 (Jetson's CPU class), under QEMU user emulation.

An arm64 Debian root (tests/arm64_root.py: built on first use, reused while its manifest matches) gets tinct's
runtime-only wheel (no torch, no onnx) in two virtual environments: the current dependency versions and the lowest
ones pyproject.toml declares. On arm64 it runs the four shipped models (ONNX Runtime; OpenVINO FP32 on its ARM
plugin for icolorit-tiny), ``tinct colorize`` on a sample photo for each, and ``tinct doctor`` on an INT8 artifact
(its guard again, on arm64: the dot-product kernels round differently from x86's). The same commands run on this
x86-64 host; the model outputs must agree within 1e-4 and the PNGs within one level.

Emulated times are printed for the log, never reported as speeds. The leg skips with the reason where this machine
cannot emulate (not root, no binfmt_misc, the Debian tools missing) and fails instead under CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import arm64_root as a64
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"
PHOTO, REFERENCE, HINTS = SAMPLES / "horses_herd.jpg", SAMPLES / "cow_in_field.jpg", SAMPLES / "horses_herd_hints.json"
HINT_MODELS = ("icolorit-tiny", "acolvit-tiny-0.5", "acolvit-tiny-0.3")
MAX_ABS = 1e-4  # model outputs, normalized ab (the export's parity tolerance)


@pytest.fixture(scope="module")
def root():
    try:
        path = a64.ensure_root()
    except a64.CannotEmulate as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the arm64 leg cannot run on this CI machine: {exc}")
        pytest.skip(f"cannot emulate arm64 here: {exc}")
    with a64.mounted(path):
        yield path


def _colorize_argv(name: str, out: Path, photo: Path, hints: Path, ref: Path) -> list[str]:
    if name == "color2embed-r18":  # the exemplar model at 64x64: emulation makes 256x256 take minutes
        return ["colorize", str(photo), "--reference", str(ref), "--size", "64", "-o", str(out), "--threads", "2"]
    return ["colorize", str(photo), "--hints", str(hints), "--model", name, "-o", str(out), "--threads", "2"]


@pytest.fixture(scope="module")
def x86(tmp_path_factory):
    """The reference: the same check script and commands on this host."""
    out = tmp_path_factory.mktemp("x86")
    r = subprocess.run([sys.executable, str(REPO / "tests" / "arm64_check.py"), str(out), "--openvino"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    from tinct.cli.main import main

    for name in (*HINT_MODELS, "color2embed-r18"):
        assert main(_colorize_argv(name, out / f"{name}.png", PHOTO, HINTS, REFERENCE)) == 0
    return out


def _run_on_arm64(root: Path, venv: str, wheel: Path, models: tuple[str, ...], openvino: bool) -> tuple[Path, dict]:
    """Install the wheel into ``venv``, run the check script and ``tinct colorize`` for ``models`` under emulation;
    -> (the output folder on the host, seconds per step)."""
    a64.install_tinct(root, wheel, venv)
    work = root / "tmp" / f"tinct-{venv}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "in").mkdir(parents=True)
    for f in (PHOTO, REFERENCE, HINTS, REPO / "tests" / "arm64_check.py"):
        shutil.copy(f, work / "in" / f.name)
    inside = f"/tmp/tinct-{venv}"
    steps = {}
    t0 = time.monotonic()
    a64.chroot(root, f"/opt/{venv}/bin/python -u {inside}/in/arm64_check.py {inside}/out --models {','.join(models)}"
               + (" --openvino" if openvino else ""))
    steps["model outputs"] = time.monotonic() - t0
    for name in models:
        t0 = time.monotonic()
        argv = _colorize_argv(name, Path(f"{inside}/out/{name}.png"), Path(f"{inside}/in/{PHOTO.name}"),
                              Path(f"{inside}/in/{HINTS.name}"), Path(f"{inside}/in/{REFERENCE.name}"))
        a64.chroot(root, f"/opt/{venv}/bin/tinct {' '.join(argv)}")
        steps[f"tinct colorize {name}"] = time.monotonic() - t0
    return work / "out", steps


def _compare(arm: Path, x86: Path, models: tuple[str, ...], openvino: bool) -> dict:
    a, b = np.load(arm / "outputs.npz"), np.load(x86 / "outputs.npz")
    keys = [k for k in b.files if k.split("/")[0] in models and (openvino or not k.endswith("/openvino"))]
    diffs = {k: float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in keys}
    if openvino:  # OpenVINO's ARM plugin against ONNX Runtime on x86
        diffs["icolorit-tiny/openvino vs x86 onnxruntime"] = float(
            np.abs(a["icolorit-tiny/openvino"].astype(np.float64) - b["icolorit-tiny"]).max())
    for name in models:
        pa = np.asarray(Image.open(arm / f"{name}.png")).astype(int)
        pb = np.asarray(Image.open(x86 / f"{name}.png")).astype(int)
        assert pa.shape == pb.shape, name
        diffs[f"{name}.png (levels)"] = float(np.abs(pa - pb).max())
    return diffs


def _report(what: str, diffs: dict, steps: dict, versions: dict) -> None:
    print(f"\n[arm64] {what}: {json.dumps(versions)} (QEMU_CPU={a64.QEMU_CPU}, emulated: times are not speeds)")
    for k, v in diffs.items():
        print(f"[arm64]   {k}: max |Δ| {v:.3g}")
    print("[arm64]   emulated seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in steps.items()))


def test_declared_lower_bounds_are_the_tested_ones():
    """pyproject.toml's lower bounds of the runtime dependencies are exactly the "lowest" set the leg installs."""
    import re

    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["openvino"]
    bounds = {}
    for spec in specs:
        m = re.match(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", spec)
        if m:
            bounds[m.group(1).lower()] = m.group(2)
    lowest = {k.lower(): v for k, v in a64.VERSION_SETS["lowest"].items()}
    assert {k: _release(bounds[k]) for k in lowest} == {k: _release(v) for k, v in lowest.items()}


def _release(v: str) -> tuple[int, ...]:
    parts = [int(p) for p in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


@pytest.mark.slow
def test_shipped_models_on_arm64_match_x86(root, x86, runtime_wheel):
    models = (*HINT_MODELS, "color2embed-r18")
    out, steps = _run_on_arm64(root, "current", runtime_wheel, models, openvino=True)
    versions = json.loads((out / "versions.json").read_text())
    assert versions["machine"] == "aarch64"
    diffs = _compare(out, x86, models, openvino=True)
    _report("current versions", diffs, steps, versions)
    bad = {k: v for k, v in diffs.items() if v > (1 if k.endswith("(levels)") else MAX_ABS)}
    assert not bad, f"arm64 differs from x86-64: {bad}"


@pytest.mark.slow
def test_int8_guard_holds_on_arm64(root, runtime_wheel, tmp_path):
    """An ONNX Runtime INT8 artifact (built on this host) re-verified by its guard on arm64 (``tinct doctor``)."""
    pytest.importorskip("onnxruntime.quantization")
    from tinct.cli.main import main

    parent = tmp_path / "icolorit-tiny.onnx"
    shutil.copy(REPO / "weights" / "icolorit-tiny.onnx", parent)
    i8 = tmp_path / "icolorit-tiny-int8.onnx"
    assert main(["quantize", str(parent), "--precision", "int8", "--calib", str(SAMPLES), "--calib-size", "16",
                 "--guard-images", "4", "--no-progress", "-o", str(i8)]) == 0
    a64.install_tinct(root, runtime_wheel, "current")
    work = root / "tmp" / "tinct-int8"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for f in (parent, i8):
        shutil.copy(f, work / f.name)
    t0 = time.monotonic()
    # no corpus inside the root: the guard runs on the packaged sample photos (the first one, 1/10/50 hints)
    r = a64.chroot(root, f"/opt/current/bin/tinct doctor /tmp/tinct-int8/{i8.name} --guard-images 1",
                   env={"TINCT_DATA": "/tmp/no-corpus"})
    lines = [ln for ln in r.stdout.splitlines() if ln.strip().startswith(("here:", "recorded:")) or "PASSED" in ln]
    print(f"\n[arm64] INT8 guard on arm64 ({time.monotonic() - t0:.0f} emulated s):\n" + "\n".join(lines))
    assert "PASSED on this machine" in r.stdout, r.stdout[-2000:]


@pytest.mark.slow
def test_runtime_at_the_lowest_declared_versions(root, x86, runtime_wheel):
    """The lower bounds of pyproject.toml's runtime dependencies, installed exactly, run the shipped models."""
    models = ("icolorit-tiny", "acolvit-tiny-0.5")
    out, steps = _run_on_arm64(root, "lowest", runtime_wheel, models, openvino=True)
    versions = json.loads((out / "versions.json").read_text())
    want = a64.VERSION_SETS["lowest"]
    assert {k: versions[k] for k in ("numpy", "Pillow", "onnxruntime", "openvino", "numba")} == \
        {k: want[k] for k in ("numpy", "Pillow", "onnxruntime", "openvino", "numba")}
    diffs = _compare(out, x86, models, openvino=True)
    _report("lowest declared versions", diffs, steps, versions)
    bad = {k: v for k, v in diffs.items() if v > (1 if k.endswith("(levels)") else MAX_ABS)}
    assert not bad, f"arm64 at the lowest versions differs from x86-64: {bad}"
