"""`tinct serve`'s HTTP API through the framework's test client: every endpoint, every error class.

The one-shot endpoint must give the pixels `tinct colorize` writes; sessions must be isolated, bounded,
serialised, and unchanged by a failed update; no error reaches a client as a traceback.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed (pip install 'tinct[serve]')")
pytest.importorskip("multipart", reason="the 'serve' extra is not installed (python-multipart)")

from fastapi.testclient import TestClient  # noqa: E402

from tinct.cli.main import main  # noqa: E402
from tinct.serve.app import Limits, create_app  # noqa: E402
from tinct.serve.engines import EngineSet  # noqa: E402
from tinct.serve.sessions import SessionStore  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "data" / "samples"
PHOTO = PHOTOS / "horses_herd.jpg"
HINTS = json.loads((ROOT / "data" / "samples" / "horses_herd_hints.json").read_text())
BASE = "http://127.0.0.1:8000"  # a Host the guard accepts (TestClient says "testserver" otherwise)
WS = "ws://127.0.0.1:8000"  # absolute: the test client sends Host "testserver" for a relative WebSocket path
ICOLORIT, ACOLVIT = "icolorit-tiny · onnxruntime fp32", "acolvit-tiny-0.5 · onnxruntime fp32"


@pytest.fixture(scope="module")
def engines():
    e = EngineSet.build(["icolorit-tiny", "acolvit-tiny-0.5"], backends=["onnxruntime"], threads=1)
    yield e
    e.close()


def _client(engines, **kw) -> TestClient:
    store = kw.pop("store", None)
    limits = kw.pop("limits", None) or Limits(max_upload_bytes=2 << 20, max_pixels=2_000_000, preview=320)
    return TestClient(create_app(engines, store, limits), raise_server_exceptions=False, base_url=BASE)


@pytest.fixture(scope="module")
def client(engines):
    return _client(engines)


def _jpeg(size=(400, 300), seed=0) -> bytes:
    with Image.open(PHOTO) as im:
        im = im.convert("RGB").resize(size, Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _png_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _data_url_rgb(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return _png_rgb(base64.b64decode(url.split(",", 1)[1]))


def _session(client, data=None, engine=None) -> dict:
    r = client.post("/api/sessions", files={"image": ("photo.jpg", data or _jpeg())},
                    data={"engine": engine} if engine else {})
    assert r.status_code == 200, r.text
    return r.json()


# ----------------------------------------------------------------------------- one-shot

def test_one_shot_gives_the_pixels_the_cli_writes(client, tmp_path, capsys):
    data = _jpeg((333, 250))
    src = tmp_path / "in.jpg"
    src.write_bytes(data)
    hints = [{"x": 30, "y": 40, "color": "#d02020"}, {"x": 300, "y": 200, "color": "#2040d0"}]
    (tmp_path / "h.json").write_text(json.dumps(hints))
    assert main(["colorize", str(src), "--hints", str(tmp_path / "h.json"), "-o", str(tmp_path / "cli.png"),
                 "--engine", str(ROOT / "weights" / "icolorit-tiny.onnx"), "--threads", "1"]) == 0
    r = client.post("/api/colorize", files={"image": ("in.jpg", data)}, data={"hints": json.dumps(hints)})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    api = _png_rgb(r.content)
    assert api.shape == (250, 333, 3)
    assert np.array_equal(api, _png_rgb((tmp_path / "cli.png").read_bytes()))


def test_one_shot_picks_a_model_and_refuses_unknown_ones(client):
    r = client.post("/api/colorize", files={"image": ("a.jpg", _jpeg())}, data={"hints": "[]", "model": "acolvit-tiny-0.5"})
    assert r.status_code == 200 and "acolvit-tiny-0.5" in r.headers["x-tinct-engine"]
    r = client.post("/api/colorize", files={"image": ("a.jpg", _jpeg())}, data={"model": "nope"})
    assert r.status_code == 400 and "unknown engine 'nope'" in r.json()["error"]


def _cli_error(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("tinct: error: "), (rc, err)
    return err[len("tinct: error: "):]


def test_bad_input_gets_the_cli_message_and_a_4xx(client, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(_jpeg()[:300])
    hints = tmp_path / "h.json"
    hints.write_text('[{"x": 1, "y": 2, "color": "#12345g"}]')
    good = tmp_path / "good.jpg"
    good.write_bytes(_jpeg())
    out = str(tmp_path / "o.png")
    cli_img = _cli_error(capsys, ["colorize", str(bad), "-o", out])
    r = client.post("/api/colorize", files={"image": ("broken.jpg", bad.read_bytes())})
    assert r.status_code == 400 and r.json() == {"error": cli_img}
    cli_hint = _cli_error(capsys, ["colorize", str(good), "--hints", str(hints), "-o", out])
    r = client.post("/api/colorize", files={"image": ("good.jpg", good.read_bytes())}, data={"hints": hints.read_text()})
    assert r.status_code == 400 and r.json() == {"error": cli_hint}
    r = client.post("/api/colorize", files={"image": ("good.jpg", good.read_bytes())}, data={"hints": "[{"})
    assert r.status_code == 400 and r.json()["error"].startswith("hints are not valid JSON")
    r = client.post("/api/colorize", files={"image": ("e.jpg", b"")})
    assert r.status_code == 400 and "empty" in r.json()["error"]
    r = client.post("/api/colorize", data={"hints": "[]"})  # no image field
    assert r.status_code == 422 and "image" in r.json()["error"]
    assert not (tmp_path / "o.png").exists()


def test_size_limits_answer_413(client):
    big = b"\0" * (3 << 20)
    r = client.post("/api/colorize", files={"image": ("big.jpg", big)})
    assert r.status_code == 413 and "--max-upload-mb" in r.json()["error"]

    def chunks():  # no Content-Length: the streamed bytes are counted
        for _ in range(40):
            yield b"\0" * (100 << 10)

    r = client.post("/api/colorize", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "over" in r.json()["error"]
    wide = io.BytesIO()
    Image.new("L", (3000, 1000)).save(wide, "PNG")  # 3 MP > the 2 MP limit; a small file
    r = client.post("/api/sessions", files={"image": ("wide.png", wide.getvalue())})
    assert r.status_code == 413 and "3000x1000" in r.json()["error"]


# ----------------------------------------------------------------------------- sessions

def test_session_lifecycle(client):
    s = _session(client, _jpeg((640, 480)))
    assert (s["width"], s["height"]) == (640, 480) and s["preview"] == {"width": 320, "height": 240}
    assert s["engine"]["id"] == ICOLORIT and s["hints"] == []
    sid = s["id"]
    r = client.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS, "seq": 1})
    assert r.status_code == 200, r.text
    u = r.json()
    assert (u["width"], u["height"]) == (320, 240) and u["seq"] == 1 and u["gates"] is None
    assert set(u["timings"]) >= {"model", "post", "update", "encode"} and u["timings"]["model"] > 0
    assert _data_url_rgb(u["image"]).shape == (240, 320, 3)
    assert client.get(f"/api/sessions/{sid}").json()["hints"] == u["hints"] == [
        {"x": h["x"], "y": h["y"], "color": h["color"].lower()} for h in HINTS]
    r = client.get(f"/api/sessions/{sid}/hints")
    assert r.status_code == 200 and json.loads(r.text) == u["hints"] and "photo-hints.json" in r.headers["content-disposition"]
    r = client.get(f"/api/sessions/{sid}/image")
    assert r.status_code == 200 and _png_rgb(r.content).shape == (480, 640, 3)
    assert client.delete(f"/api/sessions/{sid}").status_code == 200
    for method, path in (("get", ""), ("get", "/image"), ("get", "/hints"), ("delete", "")):
        r = getattr(client, method)(f"/api/sessions/{sid}{path}")
        assert r.status_code == 404 and "no session" in r.json()["error"]
    r = client.put(f"/api/sessions/{sid}/hints", json={"hints": [], "seq": 2})
    assert r.status_code == 404


def test_the_preview_is_what_a_session_gives_and_the_download_is_full_resolution(client, engines):
    from tinct.runtime.hints import parse_user_hints

    data = _jpeg((640, 480))
    s = _session(client, data)
    u = client.put(f"/api/sessions/{s['id']}/hints", json={"hints": HINTS, "seq": 1}).json()
    rgb = _png_rgb(data)
    ref = engines.get(ICOLORIT).colorizer().session(rgb, preview=320)
    ref.set_hints(parse_user_hints(HINTS, (640, 480)))
    assert np.array_equal(_data_url_rgb(u["image"]), ref.preview())
    full = _png_rgb(client.get(f"/api/sessions/{s['id']}/image").content)
    assert np.array_equal(full, ref.colorize())


def test_a_failed_update_leaves_the_session_as_it_was(client):
    s = _session(client)
    sid = s["id"]
    ok = client.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS[:3], "seq": 1}).json()
    for bad in ([{"x": 10_000, "y": 1, "color": "#ffffff"}], [{"x": 1, "y": 1}], [{"x": 1, "y": 1, "color": "red"}],
                [HINTS[0], HINTS[0]], "not a list"):
        r = client.put(f"/api/sessions/{sid}/hints", json={"hints": bad, "seq": 2})
        assert r.status_code in (400, 422), r.text
        assert "\n" not in r.json()["error"]
    assert client.get(f"/api/sessions/{sid}").json()["hints"] == ok["hints"]
    again = client.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS[:3], "seq": 2}).json()
    assert again["image"] == ok["image"]


def test_a_model_failure_restores_the_previous_hints(client, engines, monkeypatch):
    s = _session(client)
    sid = s["id"]
    ok = client.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS[:2], "seq": 1}).json()
    backend = engines.get(ICOLORIT).colorizer().backend
    real = backend.run_x
    monkeypatch.setattr(backend, "run_x", lambda x: np.full_like(real(x), np.nan))
    r = client.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS[:4], "seq": 2})
    assert r.status_code == 500 and "NaN" in r.json()["error"] and "Traceback" not in r.text
    monkeypatch.setattr(backend, "run_x", real)
    assert client.get(f"/api/sessions/{sid}").json()["hints"] == ok["hints"]
    r = client.get(f"/api/sessions/{sid}/image")
    assert r.status_code == 200


def test_stale_updates_are_refused_and_never_shown(client):
    sid = _session(client)["id"]
    assert client.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS[:1], "seq": 5}).status_code == 200
    r = client.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS[:2], "seq": 4})
    assert r.status_code == 409 and "older" in r.json()["error"]
    assert len(client.get(f"/api/sessions/{sid}").json()["hints"]) == 1


def test_sessions_are_isolated_and_serialised(client):
    """Two sessions updated from 6 threads at once: each ends with its own newest hints, and each update's
    image equals the same session's sequential replay (no image crosses sessions)."""
    from concurrent.futures import ThreadPoolExecutor

    a, b = _session(client)["id"], _session(client, _jpeg((300, 400)))["id"]
    edits = {sid: [[{"x": 10 + 7 * i, "y": 20 + 3 * i, "color": c}] for i in range(6)]
             for sid, c in ((a, "#e03030"), (b, "#3030e0"))}

    def put(sid, i):
        return sid, i, client.put(f"/api/sessions/{sid}/hints", json={"hints": edits[sid][i]}).json()

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda t: put(*t), [(s, i) for s in (a, b) for i in range(6)]))
    for sid, i, res in results:
        solo = client.post("/api/sessions", files={"image": ("p.jpg", _jpeg() if sid == a else _jpeg((300, 400)))}).json()
        ref = client.put(f"/api/sessions/{solo['id']}/hints", json={"hints": edits[sid][i]}).json()
        assert res["image"] == ref["image"], (sid == a, i)
        client.delete(f"/api/sessions/{solo['id']}")


def test_acolvit_updates_report_the_gates(client):
    sid = _session(client, engine="acolvit-tiny-0.5")["id"]
    u = client.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS}).json()
    g = np.asarray(u["gates"])
    assert g.shape == (12, 2) and set(np.unique(g)) <= {0, 1}
    assert u["kept_ratio"] == pytest.approx(g.mean()) and 0 < u["kept_ratio"] < 1


def test_switching_engines_keeps_photo_and_hints(client):
    sid = _session(client)["id"]
    first = client.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS, "seq": 1}).json()
    r = client.put(f"/api/sessions/{sid}/engine", json={"engine": ACOLVIT, "seq": 2})
    assert r.status_code == 200 and r.json()["engine"] == ACOLVIT and r.json()["gates"] is not None
    assert r.json()["hints"] == first["hints"] and r.json()["image"] != first["image"]
    r = client.put(f"/api/sessions/{sid}/engine", json={"engine": "nope", "seq": 3})
    assert r.status_code == 400 and client.get(f"/api/sessions/{sid}").json()["engine"]["id"] == ACOLVIT


def test_the_store_is_bounded_lru_and_expires_idle_sessions(engines):
    store = SessionStore(max_sessions=2, max_bytes=1 << 30, idle_s=3600)
    c = _client(engines, store=store)
    ids = [_session(c)["id"] for _ in range(3)]
    assert c.get(f"/api/sessions/{ids[0]}").status_code == 404  # least recently used, dropped
    assert c.get(f"/api/sessions/{ids[1]}").status_code == 200
    ids.append(_session(c)["id"])  # now ids[2] is the least recently used
    assert c.get(f"/api/sessions/{ids[2]}").status_code == 404 and len(store) == 2 and store.evicted == 2
    store.idle_s = 0.05
    time.sleep(0.1)
    assert c.get(f"/api/sessions/{ids[3]}").status_code == 404 and len(store) == 0 and store.expired == 2
    tiny = _client(engines, store=SessionStore(max_bytes=1 << 20))
    r = tiny.post("/api/sessions", files={"image": ("p.jpg", _jpeg((800, 600)))})
    assert r.status_code == 413 and "--max-memory" in r.json()["error"]


def test_memory_is_charged_per_session(engines):
    store = SessionStore(max_sessions=100, max_bytes=64 << 20, idle_s=3600)
    c = _client(engines, store=store)
    n = 0
    for _ in range(8):
        _session(c, _jpeg((1200, 900)))
        n += 1
        assert store.nbytes <= store.max_bytes
    assert len(store) < n  # 8 sessions of 1200x900 do not fit in 64 MiB: the oldest were dropped


def test_exemplar_sessions(engines):
    e = EngineSet.build(["color2embed-r18"], backends=["onnxruntime"], threads=1)
    c = _client(e)
    try:
        s = _session(c, _jpeg((320, 240)))
        assert s["kind"] == "exemplar"
        sid = s["id"]
        r = c.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS})
        assert r.status_code == 400 and "reference" in r.json()["error"]
        r = c.get(f"/api/sessions/{sid}/image")
        assert r.status_code == 400 and "reference" in r.json()["error"]
        ref = (PHOTOS / "kitten_playing.jpg").read_bytes()
        r = c.put(f"/api/sessions/{sid}/reference", files={"reference": ("k.jpg", ref)})
        assert r.status_code == 200, r.text
        img = _data_url_rgb(r.json()["image"])
        assert img.shape == (240, 320, 3) and "embed" in r.json()["timings"]
        r = c.put(f"/api/sessions/{sid}/reference", files={"reference": ("bad.jpg", b"nope")})
        assert r.status_code == 400 and r.json()["error"].startswith("reference: bad.jpg")
        assert _png_rgb(c.get(f"/api/sessions/{sid}/image").content).shape == (240, 320, 3)
        r = c.post("/api/colorize", files={"image": ("a.jpg", _jpeg())})
        assert r.status_code == 400 and "exemplar" in r.json()["error"]
    finally:
        e.close()


# ----------------------------------------------------------------------------- pages, samples, safety

def test_page_static_files_samples_and_docs(client):
    r = client.get("/")
    assert r.status_code == 200 and "<canvas id=\"view\">" in r.text and "cdn" not in r.text.lower()
    for f in ("app.js", "app.css"):
        assert client.get(f"/static/{f}").status_code == 200
    names = client.get("/api/samples").json()["samples"]
    assert "horses_herd.jpg" in names
    assert client.get("/api/samples/horses_herd.jpg").content == PHOTO.read_bytes()
    for evil in ("../README.md", "..%2F..%2Fpyproject.toml", "%2Fetc%2Fpasswd", "photos/../../x"):
        assert client.get(f"/api/samples/{evil}").status_code == 404
    assert client.get("/static/../app.py").status_code == 404
    spec = client.get("/openapi.json").json()
    assert {"/api/colorize", "/api/sessions", "/api/sessions/{sid}/hints"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 404  # Swagger UI loads its scripts from a CDN: off
    e = client.get("/api/engines").json()
    assert e["default"] == ICOLORIT and {x["id"] for x in e["engines"]} == {ICOLORIT, ACOLVIT}


def test_no_traceback_reaches_a_client(engines, monkeypatch):
    from tinct.serve import service

    c = _client(engines)
    monkeypatch.setattr(service, "image_bytes", lambda *a, **k: 1 / 0)
    r = c.post("/api/colorize", files={"image": ("a.jpg", _jpeg())})
    assert r.status_code == 500 and r.json()["error"].startswith("internal error (ZeroDivisionError)")
    assert "Traceback" not in r.text and "File \"" not in r.text


def test_serve_cli_binds_loopback_and_refuses_bad_arguments(capsys):
    import socket

    from tinct.cli.main import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 8000 and args.threads == 1
    for bad in (["--port", "70000"], ["--threads", "100000"], ["--max-sessions", "0"], ["--max-upload-mb", "1e9"]):
        with pytest.raises(SystemExit) as e:
            main(["serve", *bad])
        assert e.value.code == 2 and "Traceback" not in capsys.readouterr().err
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        rc = main(["serve", "--model", "icolorit-tiny", "--backends", "onnxruntime", "--port",
                   str(taken.getsockname()[1])])
    finally:
        taken.close()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and err.startswith("tinct: error: cannot listen on 127.0.0.1:"), err


def test_update_formats_png_rgba_and_none(client):
    """?image=png (default): a PNG data URL in the JSON; rgba: the raw pixels, alpha 255, with the JSON in a
    header (what the page uses); none: the JSON alone. The same pixels either way."""
    sid = _session(client, _jpeg((640, 480)))["id"]
    png = client.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS}).json()
    r = client.put(f"/api/sessions/{sid}/hints?image=rgba", json={"hints": HINTS})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    meta = json.loads(r.headers["x-tinct-update"])
    assert (meta["width"], meta["height"]) == (320, 240) and "image" not in meta and meta["timings"]["model"] > 0
    raw = np.frombuffer(r.content, np.uint8).reshape(240, 320, 4)
    assert np.array_equal(raw[..., :3], _data_url_rgb(png["image"])) and (raw[..., 3] == 255).all()
    r = client.put(f"/api/sessions/{sid}/hints?image=none", json={"hints": HINTS})
    assert r.status_code == 200 and r.json()["image"] is None
    r = client.put(f"/api/sessions/{sid}/hints?image=gif", json={"hints": HINTS})
    assert r.status_code == 422 and "image" in r.json()["error"]


def test_jpeg_update_format(client):
    sid = _session(client, _jpeg((640, 480)))["id"]
    exact = _data_url_rgb(client.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS}).json()["image"])
    r = client.put(f"/api/sessions/{sid}/hints?image=jpeg", json={"hints": HINTS})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    got = _png_rgb(r.content)
    mse = np.mean((got.astype(float) - exact) ** 2)
    assert got.shape == exact.shape and 10 * np.log10(255**2 / mse) >= 40


def _ws_update(ws, message) -> tuple[dict, bytes]:
    """One update over the session socket: the JSON and the image of a binary answer, or the error text."""
    ws.send_text(message if isinstance(message, str) else json.dumps(message))
    got = ws.receive()
    if got.get("text") is not None:
        return json.loads(got["text"]), b""
    data = got["bytes"]
    n = int.from_bytes(data[:4], "big")
    return json.loads(data[4:4 + n]), data[4 + n:]


def test_the_update_socket_answers_like_put_hints(client):
    """The page's WebSocket: each message is handled like PUT .../hints (same pixels, same seq rule); a
    refused update is answered with the HTTP status and message, leaves the session as it was, and the
    connection stays open."""
    sid = _session(client, _jpeg((640, 480)))["id"]
    exact = client.put(f"/api/sessions/{sid}/hints?image=rgba", json={"hints": HINTS[:3], "seq": 1})
    exact_px = np.frombuffer(exact.content, np.uint8).reshape(240, 320, 4)
    with client.websocket_connect(WS + f"/api/sessions/{sid}/ws?image=rgba") as ws:
        meta, px = _ws_update(ws, {"hints": HINTS[:3], "seq": 2})
        assert meta["seq"] == 2 and (meta["width"], meta["height"]) == (320, 240) and meta["timings"]["model"] > 0
        assert np.array_equal(np.frombuffer(px, np.uint8).reshape(240, 320, 4), exact_px)
        for bad, status, words in (({"hints": HINTS[:1], "seq": 2}, 409, "older"),
                                   ({"hints": [{"x": 10_000, "y": 1, "color": "#fff"}], "seq": 3}, 400, "outside"),
                                   ({"hints": "no", "seq": 3}, 400, "hints"),
                                   ({"hints": [], "seq": "3"}, 400, "seq"),
                                   ("{not json", 400, "JSON")):
            err, _ = _ws_update(ws, bad)
            assert err["status"] == status and words in err["error"] and "\n" not in err["error"], err
        assert client.get(f"/api/sessions/{sid}").json()["hints"] == meta["hints"]  # unchanged by the refusals
        ws.send_bytes(b"\x00\x01")
        err = json.loads(ws.receive_text())
        assert err["status"] == 400 and "JSON text" in err["error"]
        meta, _ = _ws_update(ws, {"hints": HINTS[:4], "seq": 3})  # still open, still serving
        assert meta["seq"] == 3 and len(meta["hints"]) == 4
    with client.websocket_connect(WS + f"/api/sessions/{sid}/ws") as ws:  # the page's default: JPEG
        meta, jpg = _ws_update(ws, {"hints": HINTS[:3], "seq": 4})
        got = np.asarray(Image.open(io.BytesIO(jpg)).convert("RGB")).astype(float)
        assert got.shape == (240, 320, 3) and 10 * np.log10(255**2 / np.mean((got - exact_px[..., :3]) ** 2)) >= 40
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect(WS + f"/api/sessions/{sid}/ws?image=gif") as ws, pytest.raises(WebSocketDisconnect) as e:
        ws.receive_text()
    assert e.value.code == 1003 and "jpeg or rgba" in e.value.reason
    client.delete(f"/api/sessions/{sid}")
    with client.websocket_connect(WS + f"/api/sessions/{sid}/ws") as ws:
        err, _ = _ws_update(ws, {"hints": [], "seq": 1})
        assert err["status"] == 404
