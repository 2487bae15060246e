"""Scale-out on a local 2-CPU Ray (loopback only, one Ray for the module): `tinct batch --ray` writes the
in-process run's pixels, `tinct bench accuracy --ray` gives its JSON, and `tinct serve --ray` with two
replicas answers POST /api/colorize with `tinct serve`'s pixels. Skipped with the reason where the 'ray'
extra is absent (make test installs it, so CI runs them)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray.data", reason="the Ray tests need the 'ray' extra (pip install 'tinct[ray]')")

from tinct.cli.main import main
from tinct.serve import batch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PHOTOS = sorted((FIXTURES.parent.parent / "data" / "samples").glob("*.jpg"))
MODEL = Path(__file__).resolve().parent.parent / "weights" / "icolorit-tiny.onnx"
HINTS = FIXTURES.parent.parent / "data" / "samples" / "horses_herd_hints.json"


@pytest.fixture(scope="module")
def local_ray():
    from tinct.serve import ray_batch

    r = ray_batch.init("local", num_cpus=2)
    yield r
    r.shutdown()


@pytest.fixture
def folder(tmp_path):
    src, hints = tmp_path / "in", tmp_path / "hints"
    src.mkdir()
    hints.mkdir()
    rng = np.random.default_rng(0)
    for p in PHOTOS:
        shutil.copy(p, src / p.name)
        im = np.asarray(Image.open(p).convert("RGB"))  # real hints: the photo's own colours at 5 points
        pts = [(int(rng.integers(0, im.shape[1])), int(rng.integers(0, im.shape[0]))) for _ in range(5)]
        hints_json = [{"x": x, "y": y, "color": "#%02x%02x%02x" % tuple(int(v) for v in im[y, x])} for x, y in pts]
        (hints / f"{p.stem}.json").write_text(json.dumps(hints_json))
    return tmp_path


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


@pytest.mark.slow
def test_ray_pipeline_gives_the_same_pixels(folder, local_ray, capsys):
    """A local 2-CPU Ray run (2 actors of 1 thread) writes exactly the in-process run's pixels and results."""
    common = [str(folder / "in"), "--hints-dir", str(folder / "hints"), "--engine", str(MODEL), "--threads", "1",
              "--ground-truth", str(folder / "in"), "--no-progress"]
    assert main(["batch", *common, "-o", str(folder / "local"), "--csv", str(folder / "local.csv")]) == 0
    assert main(["batch", *common, "-o", str(folder / "ray"), "--csv", str(folder / "ray.csv"),
                 "--ray", "local", "--workers", "2"]) == 0
    last = [ln for ln in capsys.readouterr().out.splitlines() if "colorized," in ln][-1]
    assert last.startswith("4 colorized, 0 already done, 0 failed") and "ray (local), 2 worker(s)" in last
    a, b = _arrays(folder / "local"), _arrays(folder / "ray")
    assert list(a) == list(b) and len(a) == len(PHOTOS)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    ra = {r["name"]: r["psnr"] for r in csv.DictReader((folder / "local.csv").open())}
    rb = {r["name"]: r["psnr"] for r in csv.DictReader((folder / "ray.csv").open())}
    assert ra == rb


@pytest.mark.slow
def test_ray_pipeline_reports_failures_and_resumes(folder, local_ray):
    from tinct.serve.ray_batch import run_ray

    (folder / "in" / "broken.jpg").write_bytes(b"not an image")
    (folder / "hints" / "broken.json").write_text("[]")
    spec = batch.EngineSpec(path=str(MODEL), opts={"threads": 1})
    p = batch.plan(folder / "in", folder / "out", hints_dir=folder / "hints")
    s = run_ray(p, spec, address="local", workers=2, threads=1, progress=False)
    assert len(s.ok) == 4 and [r["name"] for r in s.failed] == ["broken.jpg"]
    assert "not an image" in s.failed[0]["reason"]
    p = batch.plan(folder / "in", folder / "out", hints_dir=folder / "hints")
    assert len(p.done) == 4 and [r["name"] for r in p.todo] == ["broken.jpg"]
    with pytest.raises(Exception, match="needs 6 CPUs"):
        run_ray(p, spec, address="local", workers=3, threads=2, progress=False)


@pytest.mark.slow
def test_bench_accuracy_on_ray_gives_the_same_json(tmp_path, local_ray):
    """The sweep sharded over 2 Ray actors (chunks of 4 images) = the in-process sweep, metric by metric."""
    from tinct.runtime.errors import TinctError

    try:
        from tinct.benchmarks.datasets import open_dataset

        open_dataset("tinct-val", None, None)
    except TinctError:
        pytest.fail("the validation split is missing: 'tinct data fetch --split val' (make test runs it)")
    common = ["bench", "accuracy", "--engine", str(MODEL), "--dataset", "tinct-val", "--limit", "10", "--hints", "0,1,10",
              "--lpips", "alex",
              "--threads", "1", "--batch", "4", "--no-progress"]
    assert main([*common, "--json", str(tmp_path / "local.json")]) == 0
    assert main([*common, "--json", str(tmp_path / "ray.json"), "--ray", "local", "--workers", "2"]) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("local", "ray"))
    assert b["runner"] == {"runner": "ray", "address": "local", "workers": 2, "threads": 1}
    assert a["runner"] == {"runner": "in-process"}
    for key in ("wall_s", "environment", "runner"):
        a.pop(key), b.pop(key)
    assert a == b and "lpips_alex" in a
    assert main([*common, "--workers", "2"]) != 0  # --workers without --ray


# ----------------------------------------------------------------------------- tinct serve --ray

PHOTO = FIXTURES.parent.parent / "data" / "samples" / "horses_herd.jpg"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cfg(replicas: int) -> dict:
    return {"models": ["icolorit-tiny"], "engines": [], "backends": ["onnxruntime"], "threads": 1, "replicas": replicas,
            "max_sessions": 4, "max_bytes": 256 << 20, "idle_s": 60.0,
            "limits": {"max_upload_bytes": 8 << 20, "max_pixels": 4_000_000, "preview": 640}}


def _colorize(client, base: str) -> np.ndarray:
    r = client.post(f"{base}/api/colorize", files={"image": (PHOTO.name, PHOTO.read_bytes(), "image/jpeg")},
                    data={"hints": HINTS.read_text()})
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)))


@pytest.mark.slow
def test_two_replicas_answer_like_tinct_serve(local_ray):
    pytest.importorskip("fastapi", reason="needs the 'serve' extra")
    httpx = pytest.importorskip("httpx", reason="needs httpx (the 'bench' or 'browser' extra)")
    from fastapi.testclient import TestClient
    from ray import serve

    from tinct.serve import ray_serve

    want = _colorize(TestClient(ray_serve.build_app(_cfg(1)), base_url="http://127.0.0.1"), "")  # plain tinct serve's app, in this process
    port = _free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(ray_serve.deployment(_cfg(2)), name="tinct", route_prefix="/", blocking=False)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=60) as client:
            for _ in range(4):  # spread over both replicas
                assert np.array_equal(_colorize(client, base), want)
            r = client.post(f"{base}/api/colorize", files={"image": ("x.jpg", b"not an image", "image/jpeg")})
            assert r.status_code == 400 and "not an image" in r.json()["error"]
            r = client.post(f"{base}/api/sessions", files={"image": (PHOTO.name, PHOTO.read_bytes(), "image/jpeg")})
            assert r.status_code == 501 and "--replicas 1" in r.json()["error"]
            assert json.loads(client.get(f"{base}/api/engines").text)
        status = serve.status().applications["tinct"].deployments["tinct"]
        assert sum(status.replica_states.values()) == 2
    finally:
        serve.shutdown()


def test_cli_checks_before_starting_ray(capsys):
    from tinct.cli.main import main

    assert main(["serve", "--replicas", "2"]) == 2
    assert "--replicas applies to --ray" in capsys.readouterr().err
    assert main(["serve", "--ray", "local", "--port", "0"]) == 2
    assert "--ray needs a fixed --port" in capsys.readouterr().err
    assert main(["serve", "--ray", "local", "--model", "no-such-model", "--port", "8123"]) != 0
    assert "no-such-model" in capsys.readouterr().err
