"""``tinct bench load``: concurrent interactive sessions against ``tinct serve``, over loopback HTTP.

Starts a server (``tinct serve --port 0`` in a child process) unless ``--url`` names one. Each of
``--sessions`` clients uploads a photo (a fixture photo at ``--size``), then makes ``--updates`` hint
edits one after the other (each moves one of its hints by a seeded random step, as a drag does) and
finally deletes its session; all clients run at once. Reported: round-trip latency per update
(p50/p95/p99/max), the server's own model and post-processing times, updates/s, errors (any non-200
reply), and the server's RSS (from ``/api/health``) before the load, after it and after the sessions
are gone. Bounded: at most 64 sessions x 1,000 updates, and ``--timeout`` seconds in all.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from tinct.benchmarks import env as envmod
from tinct.benchmarks.latency.inputs import drag, fixture_photos, parse_size, photo
from tinct.benchmarks.limits import LOAD_MAX_SESSIONS, LOAD_MAX_UPDATES
from tinct.runtime.artifact import atomic_path
from tinct.runtime.errors import InputError, TinctError

MAX_SESSIONS, MAX_UPDATES = LOAD_MAX_SESSIONS, LOAD_MAX_UPDATES


def start_server(*options: str) -> tuple[subprocess.Popen, str, Path]:
    """``tinct serve --port 0 OPTIONS`` in a child process: (process, ``http://127.0.0.1:PORT``, its log file)."""

    log = Path(tempfile.mkstemp(prefix="tinct-serve-", suffix=".log")[1])
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "tinct.cli.main", "serve", "--port", "0", "--log-level",
                                 "warning", *options], stdout=f, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", log.read_text())
        if m:
            return proc, m.group(1), log
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise TinctError(f"tinct serve did not start: {log.read_text().strip().splitlines()[-1:]}")


def stop_server(proc: subprocess.Popen, log: Path | None = None) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    if log is not None:
        log.unlink(missing_ok=True)


def _photo(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo(fixture_photos()[0], size)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _client(k: int, base: str, image: bytes, size, n_hints: int, updates: int, seed: int, deadline: float):
    import httpx

    rng = np.random.default_rng([seed, k + 1])  # k = -1: the warm-up client
    w, h = size
    out = {"latency_ms": [], "model_ms": [], "post_ms": [], "errors": []}
    with httpx.Client(base_url=base, timeout=120) as c:
        r = c.post("/api/sessions", files={"image": (f"client{k}.jpg", image, "image/jpeg")})
        if r.status_code != 200:
            out["errors"].append(f"create: {r.status_code} {r.text[:200]}")
            return out
        sid = r.json()["id"]
        hints = {}
        while len(hints) < n_hints:
            x, y = int(rng.integers(w)), int(rng.integers(h))
            hints[(x, y)] = "#%02x%02x%02x" % tuple(int(v) for v in rng.integers(0, 256, 3))
        for i in range(updates):
            if time.monotonic() > deadline:
                out["errors"].append("timeout")
                break
            (x, y), col = list(hints.items())[int(rng.integers(len(hints)))]
            nx, ny = drag(rng, x, y, size)
            if (nx, ny) not in hints:
                del hints[(x, y)]
                hints[(nx, ny)] = col
            body = {"hints": [{"x": a, "y": b, "color": c} for (a, b), c in hints.items()], "seq": i}
            t = time.perf_counter()
            r = c.put(f"/api/sessions/{sid}/hints", json=body)
            ms = (time.perf_counter() - t) * 1e3
            if r.status_code != 200:
                out["errors"].append(f"update {i}: {r.status_code} {r.text[:200]}")
                continue
            j = r.json()
            out["latency_ms"].append(ms)
            out["model_ms"].append(j["timings"].get("model", 0.0))
            out["post_ms"].append(j["timings"].get("post", 0.0))
        r = c.delete(f"/api/sessions/{sid}")
        if r.status_code != 200:
            out["errors"].append(f"delete: {r.status_code}")
    return out


def run_load(base: str, *, sessions: int, updates: int, size, n_hints: int = 10, seed: int = 0,
             timeout: float = 600.0) -> dict:
    """Run the load against ``base`` (``http://host:port``) and return the record (see the module doc)."""

    import httpx

    def health() -> dict:
        return httpx.get(base + "/api/health", timeout=30).json()

    image = _photo(size)
    deadline = time.monotonic() + timeout
    warm = _client(-1, base, image, size, n_hints, 3, seed, deadline)  # engines opened, allocator warm
    if warm["errors"]:
        raise TinctError(f"the server failed a warm-up session: {warm['errors'][0]}")
    rss_before = health().get("rss_mb")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        results = list(pool.map(lambda k: _client(k, base, image, size, n_hints, updates, seed, deadline),
                                range(sessions)))
    wall = time.perf_counter() - t0
    after = health()
    lat = np.array([v for r in results for v in r["latency_ms"]], float)
    errors = [e for r in results for e in r["errors"]]
    pct = (lambda q: float(np.percentile(lat, q))) if lat.size else (lambda q: None)
    return {
        "sessions": sessions, "updates_per_session": updates, "image_size": list(size), "hints": n_hints,
        "updates_ok": int(lat.size), "errors": len(errors), "error_samples": errors[:5], "wall_s": round(wall, 2),
        "updates_per_s": round(lat.size / wall, 2) if wall else None,
        "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99), "max_ms": float(lat.max()) if lat.size else None,
        "server_model_median_ms": float(np.median([v for r in results for v in r["model_ms"]])) if lat.size else None,
        "server_post_median_ms": float(np.median([v for r in results for v in r["post_ms"]])) if lat.size else None,
        "rss_before_mb": rss_before, "rss_after_mb": after.get("rss_mb"),
        "sessions_left": after.get("sessions", {}).get("sessions"),
    }


def run_command(args) -> int:
    for name, v, hi in (("--sessions", args.sessions, MAX_SESSIONS), ("--updates", args.updates, MAX_UPDATES),
                        ("--hints", args.hints, 1000)):
        if not 1 <= v <= hi:
            raise InputError(f"{name} {v}: use 1..{hi}")
    if args.seed < 0:
        raise InputError(f"--seed {args.seed}: use a non-negative number")
    if not 1 <= args.timeout <= 86400:
        raise InputError(f"--timeout {args.timeout}: use 1..86400 seconds")

    size = parse_size(args.size)
    env = envmod.capture()
    proc = log = None
    base = args.url.rstrip("/") if args.url else None
    if base is None:
        proc, base, log = start_server("--model", args.model, "--backends", args.backend, "--threads", str(args.threads),
                                       "--max-sessions", str(max(16, args.sessions + 1)))
    try:
        r = run_load(base, sessions=args.sessions, updates=args.updates, size=size, n_hints=args.hints,
                     seed=args.seed, timeout=args.timeout)
    finally:
        if proc is not None:
            stop_server(proc, log)
    envmod.finish(env)
    r.update(server=args.url or f"tinct serve --model {args.model} --backends {args.backend} --threads {args.threads}")
    print(f"machine: {env.get('cpu_line', env.get('cpu'))}, {env.get('cpu_count')} logical cores")
    print(markdown_table([r]))
    if args.json_out:

        with atomic_path(Path(args.json_out)) as tmp:
            tmp.write_text(json.dumps({"kind": "load", "schema": 1, "environment": env, "results": [r]}, indent=1))
        print(f"wrote {args.json_out}")
    for e in r["error_samples"]:
        print(f"load: error: {e}", file=sys.stderr)
    return 1 if r["errors"] else 0


def markdown_table(results: list[dict]) -> str:
    head = ["sessions x updates", "photo", "updates/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "server model ms",
            "server post ms", "errors", "server RSS before → after MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    for r in results:
        lines.append("| " + " | ".join([
            f"{r['sessions']} x {r['updates_per_session']}", "x".join(map(str, r["image_size"])), f(r["updates_per_s"]),
            f(r["p50_ms"]), f(r["p95_ms"]), f(r["p99_ms"]), f(r["max_ms"]), f(r["server_model_median_ms"]),
            f(r["server_post_median_ms"]), str(r["errors"]), f"{f(r['rss_before_mb'])} → {f(r['rss_after_mb'])}"]) + " |")
    return "\n".join(lines)
