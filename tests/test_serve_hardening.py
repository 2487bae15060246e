"""``tinct serve`` against an attacker and a careless client (issue 29): decoders on a leash, one memory budget,
stalled uploads and half-sent headers dropped, only its own origin, transactions that keep their word.
Loopback only, sizes and times bounded."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from tinct.benchmarks.load import start_server, stop_server  # noqa: E402
from tinct.cli.main import main  # noqa: E402
from tinct.runtime.image import MAX_JPEG_SCANS, ImageError, decode_image, image_header, load_image  # noqa: E402
from tinct.serve.app import Limits, Security, create_app  # noqa: E402
from tinct.serve.engines import EngineSet  # noqa: E402
from tinct.serve.guard import host_allowed, same_origin  # noqa: E402
from tinct.serve.sessions import Entry, ServerBusy, SessionStore  # noqa: E402

BASE = "http://127.0.0.1:8000"
HINTS = [{"x": 10, "y": 12, "color": "#aa3311"}]


@pytest.fixture(scope="module")
def engines():
    e = EngineSet.build(["icolorit-tiny", "acolvit-tiny-0.5"], backends=["onnxruntime"], threads=1)
    yield e
    e.close()


def _client(engines, store=None, limits=None, security=None, base=BASE):
    return TestClient(create_app(engines, store, limits, security=security), raise_server_exceptions=False,
                      base_url=base)


def _png(size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares w x h and holds one zlib stream of a few zero rows: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")


def _ico_with_png(png: bytes) -> bytes:
    """An .ico whose one entry is the given PNG (Pillow decodes it inside Image.open)."""
    head = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22)
    return head + png


def _rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


# ------------------------------------------------------------------ decoders on a leash
@pytest.mark.parametrize("kind", ["ico", "gif", "tiff", "png", "eps"])
def test_bombs_are_refused_from_the_header_cheaply(kind):
    if kind == "ico":
        data, why = _ico_with_png(_png_header_only(30000, 30000)), "accepted format"
    elif kind == "gif":  # a 65535 x 65535 logical screen in 40 bytes
        data = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0) + b",\0\0\0\0\1\0\1\0\0\2\2D\1\0;"
        why = "over the limit"
    elif kind == "tiff":
        buf = io.BytesIO()
        Image.new("L", (8, 8)).save(buf, "TIFF")
        raw = bytearray(buf.getvalue())
        # rewrite ImageWidth/ImageLength (tags 256/257) to 100000 x 100000
        n = struct.unpack_from("<H", raw, struct.unpack_from("<I", raw, 4)[0])[0]
        off = struct.unpack_from("<I", raw, 4)[0] + 2
        for i in range(n):
            tag, typ = struct.unpack_from("<HH", raw, off + 12 * i)
            if tag in (256, 257):
                struct.pack_into("<HHII", raw, off + 12 * i, tag, 4, 1, 100000)
        data, why = bytes(raw), "over the limit"
    elif kind == "png":
        data, why = _png_header_only(30000, 30000), "over the limit"
    else:
        data, why = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "accepted format"
    before, t0 = _rss_mb(), time.perf_counter()
    with pytest.raises(ImageError, match=why) as e:
        decode_image(data, f"bomb.{kind}", max_pixels=40_000_000)
    assert time.perf_counter() - t0 < 1.0 and _rss_mb() - before < 100 and "\n" not in str(e.value)


def test_progressive_jpeg_scan_bombs_are_refused_before_decoding(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buf, "JPEG", progressive=True)
    good = buf.getvalue()
    assert decode_image(good, "ok.jpg").shape == (64, 64, 3)  # a normal progressive file: about 10 scans
    sos = good.rfind(b"\xff\xda")
    last_scan = good[sos:-2]  # the last scan, up to the EOI marker
    bomb = good[:-2] + last_scan * (MAX_JPEG_SCANS + 10) + b"\xff\xd9"
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="scans"):
        decode_image(bomb, "bomb.jpg")
    p = tmp_path / "bomb.jpg"
    p.write_bytes(bomb)
    with pytest.raises(ImageError, match="scans"):
        load_image(p)  # the CLI's path reads the file through mmap
    assert time.perf_counter() - t0 < 1.0


def test_the_cli_uses_the_same_loader(tmp_path, capsys):
    p = tmp_path / "bomb.ico"
    p.write_bytes(_ico_with_png(_png_header_only(30000, 30000)))
    assert main(["colorize", str(p), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "accepted format (JPEG, PNG, WebP, BMP, TIFF or GIF)" in err and "\n" not in err
    assert not (tmp_path / "o.png").exists()
    assert image_header(_png((30, 20)), "x.png") == (30, 20, "PNG")


# ------------------------------------------------------------------ one memory budget
def test_work_waits_for_memory_then_gets_503_and_idle_sessions_make_room():
    store = SessionStore(max_bytes=1000, wait_s=0.2)
    a = store.add(lambda sid: Entry(id=sid, image=np.zeros((1, 1, 3), np.uint8), engine_id="e", session=None,
                                    nbytes=600, filename="a"), 600)
    with store.hold(300, "work"):
        with pytest.raises(ServerBusy, match="memory budget"):  # 600 + 300 + 300 > 1000, and a works now
            with a.lock, store.hold(300, "more"):
                pass
        with store.hold(300, "more"):  # a is idle: dropped to make room
            assert len(store) == 0 and store.evicted == 1
    done = []
    with store.hold(900, "big"):
        waiting = store.hold(900, "waits")
        t = threading.Thread(target=lambda: done.append(waiting.__enter__() or True))
        t.start()
        time.sleep(0.05)
        assert not done  # waiting for the first to finish
    t.join(1)
    assert done and store.held == 900 and store.stats()["busy_refused"] == 1
    waiting.__exit__(None, None, None)
    assert store.held == 0
    with pytest.raises(Exception, match="--max-memory"):
        with store.hold(5000, "huge"):
            pass


def test_reference_photos_are_charged_to_their_session():
    e = EngineSet.build(["color2embed-r18"], backends=["onnxruntime"], threads=1)
    try:
        store = SessionStore()
        c = _client(e, store=store)
        sid = c.post("/api/sessions", files={"image": ("p.png", _png((96, 64)))}).json()["id"]
        before = store.nbytes
        r = c.put(f"/api/sessions/{sid}/reference?image=none", files={"reference": ("r.png", _png((300, 200)))})
        assert r.status_code == 200 and store.nbytes - before == 300 * 200 * 3
        r = c.put(f"/api/sessions/{sid}/reference?image=none", files={"reference": ("r.png", b"junk")})
        assert r.status_code == 400 and store.nbytes - before == 300 * 200 * 3  # a refused one charges nothing
    finally:
        e.close()


def test_parallel_one_shots_stay_in_the_budget_and_the_excess_gets_503(tmp_path):
    """11 one-shot requests of 2 MP at once against a 256 MiB budget: the server's peak RSS grows by less than the
    budget plus 200 MB, some are answered 503 with Retry-After, and health answers all along."""
    import requests

    proc, url, log = start_server("--model", "icolorit-tiny", "--backends", "onnxruntime", "--max-memory", "256",
                                  "--busy-wait", "0.5")
    try:
        img = Image.fromarray(np.random.default_rng(2).integers(0, 255, (1200, 1700, 3), dtype=np.uint8))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        data = buf.getvalue()
        requests.get(url + "/api/health", timeout=10)
        status = Path(f"/proc/{proc.pid}/status")

        def hwm() -> float:
            return next(int(ln.split()[1]) for ln in status.read_text().splitlines() if ln.startswith("VmHWM")) / 1e3

        def rss() -> float:
            return next(int(ln.split()[1]) for ln in status.read_text().splitlines() if ln.startswith("VmRSS")) / 1e3

        # one request first: the engines' and the kernels' own memory is not the budget's
        requests.post(url + "/api/colorize", files={"image": ("a.jpg", data)}, timeout=60)
        base = rss()

        def one(_):
            r = requests.post(url + "/api/colorize", files={"image": ("a.jpg", data)}, timeout=60)
            return r.status_code, r.headers.get("retry-after")

        with ThreadPoolExecutor(11) as pool:
            futures = [pool.submit(one, i) for i in range(11)]
            health = [requests.get(url + "/api/health", timeout=5).status_code for _ in range(3)]
            answers = [f.result() for f in futures]
        codes = [c for c, _ in answers]
        assert set(codes) <= {200, 503} and 200 in codes and 503 in codes, codes
        assert all(ra and ra.isdigit() for c, ra in answers if c == 503)
        assert health == [200, 200, 200]
        assert hwm() - base < 256 + 200, (hwm(), base)
    finally:
        stop_server(proc, log)


# ------------------------------------------------------------------ slow clients
def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    return s


def _closed_within(s: socket.socket, seconds: float) -> tuple[bool, bytes]:
    s.settimeout(seconds)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return True, got
            got += chunk
    except TimeoutError:
        return False, got


def test_stalled_uploads_and_half_sent_headers_are_dropped():
    proc, url, log = start_server("--model", "icolorit-tiny", "--backends", "onnxruntime", "--body-timeout", "1",
                                  "--header-timeout", "1", "--max-connections", "16")
    try:
        stalled = _raw(url)
        stalled.sendall(b"POST /api/colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream"
                        b"\r\nContent-Length: 4000000\r\n\r\n" + b"x" * 3_000_000)
        t0 = time.monotonic()
        closed, got = _closed_within(stalled, 5)
        assert closed and b" 408 " in got.split(b"\r\n")[0] and b"--body-timeout" in got
        assert time.monotonic() - t0 < 3
        half = _raw(url)
        half.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        closed, _ = _closed_within(half, 5)
        assert closed  # within the 1 s header timeout (+ scheduling)
        idle = [_raw(url) for _ in range(24)]  # past --max-connections 16: the extra ones are closed at once
        time.sleep(0.3)
        closed = sum(_closed_within(s, 0.2)[0] for s in idle)
        assert closed >= 8
        for s in idle:
            s.close()
        time.sleep(1.5)  # the rest time out
        import requests
        assert requests.get(url + "/api/health", timeout=5).json()["ok"] is True
    finally:
        stop_server(proc, log)
    assert "Traceback" not in log.read_text() if log.exists() else True


# ------------------------------------------------------------------ only its own origin
@pytest.mark.parametrize("host, ok", [("127.0.0.1:8000", True), ("localhost", True), ("[::1]:80", True),
                                      ("10.1.2.3", True), ("evil.example", False), ("evil.example:8000", False),
                                      ("", False), ("127.0.0.1@evil", False), ("photos.lan", True),
                                      ("localhost:80;x", False), ("[::1]x", False)])
def test_host_rule(host, ok):
    assert host_allowed(host, ("photos.lan",)) is ok


def test_same_origin_rule():
    assert same_origin("http://127.0.0.1:8000", "127.0.0.1:8000", "http")
    assert same_origin("http://localhost", "localhost:80", "http")
    assert not same_origin("null", "127.0.0.1:8000", "http")
    assert not same_origin("http://evil.example", "127.0.0.1:8000", "http")
    assert not same_origin("https://127.0.0.1:8000", "127.0.0.1:8000", "http")


def test_foreign_hosts_and_origins_are_refused(engines):
    c = _client(engines)
    assert c.get("/api/engines", headers={"host": "evil.example"}).status_code == 400
    assert c.get("/api/engines").status_code == 200
    png = _png()
    r = c.post("/api/sessions", files={"image": ("p.png", png)}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "Origin" in r.json()["error"]
    r = c.post("/api/sessions", files={"image": ("p.png", png)}, headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 403
    r = c.post("/api/sessions", files={"image": ("p.png", png)}, headers={"origin": BASE})
    assert r.status_code == 200
    sid = r.json()["id"]
    for origin in ("http://evil.example", "null"):
        with pytest.raises(Exception), c.websocket_connect(f"ws://127.0.0.1:8000/api/sessions/{sid}/ws",
                                                           headers={"origin": origin}):
            pass
    with c.websocket_connect(f"ws://127.0.0.1:8000/api/sessions/{sid}/ws", headers={"origin": BASE}) as ws:
        ws.send_text(json.dumps({"hints": HINTS, "seq": 1}))
        assert ws.receive().get("bytes")
    r = c.get("/")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert c.get("/docs").status_code == 404  # the Swagger page loads its scripts from a CDN


def test_the_token(engines):
    token = "s3cret-token-of-some-length"
    c = _client(engines, security=Security(token=token))
    assert c.get("/api/engines").status_code == 401
    assert c.get("/api/health").status_code == 200  # liveness stays open
    assert c.get("/").status_code == 200  # the page itself is no secret
    assert c.get("/api/engines", headers={"authorization": f"Bearer {token}"}).status_code == 200
    assert c.get("/api/engines", headers={"authorization": "Bearer wrong"}).status_code == 401
    r = c.get(f"/?token={token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
    assert c.get("/api/engines").status_code == 200  # the cookie now
    sid = c.post("/api/sessions", files={"image": ("p.png", _png())}).json()["id"]
    with c.websocket_connect(f"ws://127.0.0.1:8000/api/sessions/{sid}/ws") as ws:
        ws.send_text(json.dumps({"hints": HINTS}))
        assert ws.receive().get("bytes")
    bare = _client(engines, security=Security(token=token))
    with pytest.raises(Exception), bare.websocket_connect(f"ws://127.0.0.1:8000/api/sessions/{sid}/ws"):
        pass


@pytest.mark.parametrize("argv, message", [
    (["--host", "0.0.0.0"], "give --token SECRET"),
    (["--host", "0.0.0.0", "--token", "short"], "at least 16 printable characters"),
    (["--token", "a" * 20, "--no-auth"], "contradict"),
    (["--allowed-host", "http://x"], "without scheme or port"),
    (["--host", "0.0.0.0", "--ray", "local"], "give --token SECRET"),
])
def test_network_exposure_needs_a_token(capsys, argv, message):
    assert main(["serve", "--model", "icolorit-tiny", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


# ------------------------------------------------------------------ transactions that keep their word
def test_a_stale_engine_switch_changes_nothing_and_seq_is_bounded(engines):
    c = _client(engines)
    sid = c.post("/api/sessions", files={"image": ("p.png", _png())}).json()["id"]
    assert c.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS, "seq": 5}).status_code == 200
    before = c.get(f"/api/sessions/{sid}").json()
    r = c.put(f"/api/sessions/{sid}/engine", json={"engine": "acolvit-tiny-0.5 · onnxruntime fp32", "seq": 3})
    assert r.status_code == 409 and c.get(f"/api/sessions/{sid}").json() == before
    for seq in (10**23, -1, 2**53):
        r = c.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS, "seq": seq})
        assert r.status_code in (400, 422), r.text
    assert c.put(f"/api/sessions/{sid}/hints", json={"hints": HINTS, "seq": 6}).status_code == 200


def test_one_session_cannot_queue_without_bound(engines):
    c = _client(engines, limits=Limits(max_waiting=1))
    sid = c.post("/api/sessions", files={"image": ("p.png", _png())}).json()["id"]
    entry = c.app.app.state.store.get(sid) if hasattr(c.app, "app") else None
    assert entry is not None
    entry.waiting = 1  # as if one request were queued or running on it
    r = c.get(f"/api/sessions/{sid}/image")
    assert r.status_code == 503 and r.headers["retry-after"].isdigit() and "waiting" in r.json()["error"]
    entry.waiting = 0
    assert c.get(f"/api/sessions/{sid}/image").status_code == 200


def test_websocket_clients_that_leave_mid_update_leave_no_traceback():
    import websockets.sync.client as wsc

    proc, url, log = start_server("--model", "icolorit-tiny", "--backends", "onnxruntime")
    try:
        import requests
        img = io.BytesIO()
        Image.new("RGB", (1600, 1200), (90, 120, 60)).save(img, "JPEG")
        sid = requests.post(url + "/api/sessions", files={"image": ("p.jpg", img.getvalue())}, timeout=30).json()["id"]
        for k in range(3):
            ws = wsc.connect(url.replace("http", "ws") + f"/api/sessions/{sid}/ws")
            ws.send(json.dumps({"hints": HINTS, "seq": k + 1}))
            ws.close()  # before the answer
        ws = wsc.connect(url.replace("http", "ws") + f"/api/sessions/{sid}/ws")
        ws.send(json.dumps({"hints": [{"x": 5, "y": 5, "color": "#00ff00"}], "seq": 10}))
        assert isinstance(ws.recv(timeout=30), bytes)
        deep = '{"hints": ' + "[" * 5000 + "]" * 5000 + "}"
        ws.send(deep)
        err = json.loads(ws.recv(timeout=30))
        assert err["status"] == 400
        ws.close()
        time.sleep(0.5)
    finally:
        stop_server(proc)
        text = log.read_text()
        log.unlink()
    assert "Traceback" not in text and "Exception in ASGI" not in text, text
