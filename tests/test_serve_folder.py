"""``tinct serve --folder DIR`` without a browser: the API behind the page's next/previous (photos by index, the
hints saved beside each photo, the result written where ``tinct batch`` writes it) and its one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from tinct.serve.app import create_app  # noqa: E402
from tinct.serve.engines import EngineSet  # noqa: E402
from tinct.serve.folder import Folder  # noqa: E402


@pytest.fixture(scope="module")
def engines():
    e = EngineSet.build(["icolorit-tiny"], backends=["onnxruntime"], threads=1)
    yield e
    e.close()


def _folder(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("b.png", (64, 48)), ("a.jpg", (80, 60))):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(d / name)
    (d / "readme.txt").write_text("ignored")
    return d


def _client(engines, folder):
    return TestClient(create_app(engines, folder=folder), raise_server_exceptions=False, base_url="http://127.0.0.1")


def test_the_folder_api(engines, tmp_path):
    d = _folder(tmp_path)
    c = _client(engines, Folder(d))
    listing = c.get("/api/folder").json()
    assert [p["name"] for p in listing["photos"]] == ["a.jpg", "b.png"]  # tinct batch's order
    assert listing["output"] == str(d / "colorized") and not any(p["hints"] or p["result"] for p in listing["photos"])
    assert c.get("/api/folder/1/photo").content == (d / "b.png").read_bytes()
    j = c.post("/api/folder/0/session", data={"preview": "64"}).json()
    sid = j["id"]
    assert j["width"] == 80 and j["saved_hints"] == [] and j["folder_index"] == 0
    hints = [{"x": 3, "y": 4, "color": "#aa2200", "size": 2}, {"x": 70, "y": 50, "color": "#0022aa"}]
    assert c.put(f"/api/sessions/{sid}/hints?image=none", json={"hints": hints}).status_code == 200
    r = c.post(f"/api/folder/0/save?sid={sid}")
    assert r.status_code == 200 and r.json()["result"] is None
    assert json.loads((d / "a.json").read_text()) == hints  # the CLI's hint JSON, the brush kept
    r = c.post(f"/api/folder/0/save?sid={sid}&result=true")
    assert r.status_code == 200 and r.json()["result"] == str(d / "colorized" / "a.png")
    full = c.get(f"/api/sessions/{sid}/image").content
    assert np.array_equal(np.asarray(Image.open(d / "colorized" / "a.png")), np.asarray(Image.open(io.BytesIO(full))))
    again = c.post("/api/folder/0/session").json()  # reopened: the saved hints come with it
    assert again["saved_hints"] == hints
    assert c.get("/api/folder").json()["photos"][0] == {"index": 0, "name": "a.jpg", "hints": True, "result": True}


def test_folder_errors_are_one_line_4xx(engines, tmp_path):
    d = _folder(tmp_path)
    c = _client(engines, Folder(d, tmp_path / "out", "jpg"))
    for url in ("/api/folder/2/photo", "/api/folder/-1/photo"):
        r = c.get(url)
        assert r.status_code == 404 and "no photo" in r.json()["error"]
    sid = c.post("/api/folder/0/session").json()["id"]
    r = c.post(f"/api/folder/1/save?sid={sid}&result=true")  # a session saves only the photo it was opened from
    assert r.status_code == 400 and "not opened from photo 1" in r.json()["error"]
    assert not (tmp_path / "out").exists()
    other = c.post("/api/sessions", files={"image": ("x.png", (d / "b.png").read_bytes())}).json()["id"]
    assert c.post(f"/api/folder/1/save?sid={other}").status_code == 400
    (d / "b.json").write_text('[{"x": 500, "y": 1, "color": "#ffffff"}]')  # a hint file that does not fit b.png
    r = c.post("/api/folder/1/session")
    assert r.status_code == 400 and "b.json" in r.json()["error"] and "outside the image" in r.json()["error"]
    assert c.post(f"/api/folder/0/save?sid={sid}&result=true").json()["result"] == str(tmp_path / "out" / "a.jpg")
    plain = TestClient(create_app(engines), raise_server_exceptions=False, base_url="http://127.0.0.1")
    r = plain.get("/api/folder")
    assert r.status_code == 404 and "--folder" in r.json()["error"]


@pytest.mark.parametrize("args,message", [
    (["--folder-output", "x"], "apply to --folder"),
    (["--folder", "/nonexistent-tinct"], "does not exist"),
    (["--folder", "EMPTY"], "no images"),
    (["--folder", "PHOTOS", "--ray", "local"], "leave out --ray"),
])
def test_serve_folder_arguments(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    args = [a.replace("EMPTY", str(tmp_path / "empty")).replace("PHOTOS", str(_folder(tmp_path)) if a == "PHOTOS" else a)
            for a in args]
    p = subprocess.run([sys.executable, "-m", "tinct.cli.main", "serve", "--port", "0", *args], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
