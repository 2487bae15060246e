"""Fuzz targets of ``tinct serve``'s API (issue 15's targets, split from ``test_fuzz.py``): the one-shot endpoint,
the session endpoints and the page's WebSocket, each with hostile input; a 4xx with one line of JSON or a result,
never a 5xx. The strategies are ``test_fuzz.py``'s."""

from __future__ import annotations

import io
import json
from functools import lru_cache

import pytest
from fuzzing import fuzz_target
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_fuzz import _IMAGE, _good_hints, _hint_dict, _json, _outcome, _scalars


@lru_cache(maxsize=1)
def _api():
    pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
    pytest.importorskip("multipart", reason="the 'serve' extra is not installed")
    from fastapi.testclient import TestClient

    from tinct.serve.app import Limits, create_app
    from tinct.serve.engines import EngineSet

    engines = EngineSet.build(["icolorit-tiny"], backends=["onnxruntime"], threads=1)
    client = TestClient(create_app(engines, limits=Limits(max_upload_bytes=64 << 10, max_pixels=100_000, preview=64)),
                        raise_server_exceptions=False, base_url="http://127.0.0.1")
    buf = io.BytesIO()
    Image.fromarray(_IMAGE).save(buf, "PNG")
    return client, buf.getvalue()


def _api_error(r) -> str:
    assert r.headers["content-type"].startswith("application/json"), r.headers
    msg = r.json()["error"]
    assert isinstance(msg, str) and msg and "\n" not in msg and "Traceback" not in msg
    return msg


@fuzz_target(60)
@given(st.binary(max_size=400) | st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"GIF89a"]),
       st.sampled_from([True, True, True, False]), _good_hints.map(json.dumps) | _json.map(json.dumps) | st.text(max_size=40)
       | st.lists(_hint_dict, max_size=3).map(json.dumps),
       st.sampled_from([None, None, None, "icolorit-tiny"]) | st.text(max_size=12))
def test_api_colorize(raw, real_image, hints, model):
    """POST /api/colorize with any image bytes, hints and model: a PNG of the input's size, or a 4xx with
    one line of JSON; never a 5xx."""
    client, png = _api()
    data = {"hints": hints} | ({"model": model} if model is not None else {})
    r = client.post("/api/colorize", files={"image": ("x.png", png if real_image else raw)}, data=data)
    if r.status_code == 200:
        assert r.headers["content-type"] == "image/png" and Image.open(io.BytesIO(r.content)).size == (64, 48)
        return _outcome("colorized")
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    _api_error(r)
    _outcome(f"refused {r.status_code}")


@fuzz_target(60)
@given(st.one_of(st.fixed_dictionaries({"hints": _good_hints}, optional={"seq": st.integers(-3, 10**6)}),
                 _json, st.fixed_dictionaries({"hints": _json | st.lists(_hint_dict, max_size=4)},
                                              optional={"seq": _scalars})),
       st.sampled_from(["hints"] * 4 + ["engine", "reference", "image", "nope"]), st.sampled_from([True, True, True, False]))
def test_api_session_requests(body, endpoint, real_session):
    """Session endpoints with any JSON body (or a made-up session id): the update, or a 4xx with one line of
    JSON and the session's hints unchanged; never a 5xx."""
    client, png = _api()
    sid = "no-such-session"
    if real_session:
        sid = client.post("/api/sessions", files={"image": ("x.png", png)}).json()["id"]
        client.put(f"/api/sessions/{sid}/hints", json={"hints": [{"x": 3, "y": 4, "color": "#102030"}]})
    if endpoint == "image":
        r = client.get(f"/api/sessions/{sid}/image")
    else:  # raw JSON text: a hostile client sends NaN and Infinity too
        r = client.put(f"/api/sessions/{sid}/{endpoint}", content=json.dumps(body),
                       headers={"content-type": "application/json"})
    if real_session:
        after = client.get(f"/api/sessions/{sid}").json()["hints"]
        client.delete(f"/api/sessions/{sid}")
    if r.status_code == 200:
        return _outcome(f"{endpoint}: ok")
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    _api_error(r)
    if real_session:
        assert after == [{"x": 3, "y": 4, "color": "#102030"}]
    _outcome(f"{endpoint}: refused {r.status_code}")


@fuzz_target(60)
@given(st.one_of(st.fixed_dictionaries({"hints": _good_hints}, optional={"seq": st.integers(-3, 10**24)}),
                 _json.map(json.dumps), st.text(max_size=60), st.binary(max_size=60),
                 st.integers(1, 6000).map(lambda d: '{"hints": ' + "[" * d + "]" * d + "}")))
def test_api_websocket_messages(msg):
    """The page's WebSocket with any message (JSON of any shape, nested thousands deep, text, bytes, a seq up
    to 10^24): an update, or a refusal on the socket with a 4xx status and one line; the socket stays open and
    the session's hints are unchanged by a refused message."""
    client, png = _api()
    sid = client.post("/api/sessions", files={"image": ("x.png", png)}).json()["id"]
    good = [{"x": 3, "y": 4, "color": "#102030"}]
    client.put(f"/api/sessions/{sid}/hints", json={"hints": good})
    with client.websocket_connect(f"ws://127.0.0.1/api/sessions/{sid}/ws") as ws:
        if isinstance(msg, dict):
            ws.send_text(json.dumps(msg))
        elif isinstance(msg, bytes):
            ws.send_bytes(msg)
        else:
            ws.send_text(msg)
        answer = ws.receive()
        if answer.get("bytes") is not None:
            _outcome("websocket: updated")
        else:
            err = json.loads(answer["text"])
            assert 400 <= err["status"] < 500 and "\n" not in err["error"], err
            ws.send_text(json.dumps({"hints": good}))  # still open: the next good message is answered
            assert ws.receive().get("bytes") is not None
            assert client.get(f"/api/sessions/{sid}").json()["hints"] == good
            _outcome(f"websocket: refused {err['status']}")
    client.delete(f"/api/sessions/{sid}")
