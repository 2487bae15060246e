"""``tinct bench soak``: many interactive updates on full-resolution sessions: memory growth and latency drift.

One backend is opened per backend name; ``--sharing N`` runs N threads on it, each with its own
:class:`~tinct.runtime.colorizer.Session` on a 1920x1080 fixture photo (what a server does). Every update
moves one of the session's hints by a seeded random step and renders the full-resolution result
(:meth:`Session.colorize`), as a user dragging a hint does. After ``--warmup`` updates per thread
(caches, allocator pools, first-call initialisation) the process RSS is the baseline; then
``--updates`` updates are timed (split over the threads). The result per case:

- RSS growth from the baseline to the end, and the slope of RSS over the run (MB per 1,000 updates,
  a least-squares fit over samples taken every ``--rss-every`` updates: robust to one late spike);
- the median update of the first and of the last ``--window`` updates (in completion order) and their
  ratio: drift; plus median/IQR/p90 over all of them.

A case fails the gate (exit 1, like ``tinct bench compare``) when RSS grows by more than
``--max-rss-growth`` MB or the drift exceeds ``--max-drift``. Linux RSS comes from ``/proc/self/statm``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinct.benchmarks import env as envmod
from tinct.benchmarks.latency.inputs import drag, fixture_photos, parse_size, photo, user_hints
from tinct.benchmarks.latency.plan import parse_list
from tinct.benchmarks.limits import SOAK_MAX_SHARING, SOAK_MAX_UPDATES
from tinct.runtime.artifact import atomic_path
from tinct.runtime.backends import open_backend
from tinct.runtime.catalog import DEFAULT_MODEL, prebuilt_model
from tinct.runtime.colorizer import Colorizer
from tinct.runtime.errors import InputError, TinctError
from tinct.runtime.memory import rss_mb
from tinct.runtime.timing import stats

SIZE = (1920, 1080)
N_HINTS = 10
MAX_UPDATES, MAX_SHARING = SOAK_MAX_UPDATES, SOAK_MAX_SHARING


class _Walker:
    """One thread's session and its hint moves (seeded: the same run moves the same hints)."""

    def __init__(self, colorizer, image, seed: int):
        self.rng = np.random.default_rng(seed)
        self.h, self.w = image.shape[:2]
        self.session = colorizer.session(image)
        self.session.set_hints(user_hints(image, N_HINTS, seed=seed))
        self.pos = [(h.x, h.y) for h in self.session.hints]

    def step(self) -> tuple[float, float, float]:
        """Move one hint by up to 40 px, render the full result: (total, model, post) ms."""
        i = int(self.rng.integers(len(self.pos)))
        x, y = self.pos[i]
        taken = set(self.pos)
        for _ in range(8):
            nx, ny = drag(self.rng, x, y, (self.w, self.h))
            if (nx, ny) not in taken:
                break
        else:
            nx, ny = x, y  # boxed in: recolour in place (still a model run)
        c = tuple(int(v) for v in self.rng.integers(0, 256, 3))
        t = time.perf_counter()
        self.session.move_hint((x, y), (nx, ny), color=c)
        self.session.colorize()
        total = (time.perf_counter() - t) * 1e3
        self.pos[i] = (nx, ny)
        tm = self.session.timings
        return total, tm.get("model", 0.0), tm.get("post", 0.0)


def soak_case(backend, image, *, sharing: int, updates: int, warmup: int, window: int, rss_every: int,
              seed: int = 0, progress=None) -> dict:
    """Run one case (see the module docstring) and return its record."""

    colorizer = Colorizer(backend)
    walkers = [_Walker(colorizer, image, seed + k) for k in range(sharing)]
    share = [updates // sharing + (k < updates % sharing) for k in range(sharing)]
    records: list[list[tuple[float, float, float, float]]] = [[] for _ in range(sharing)]
    rss: list[tuple[int, float]] = []
    done = [0]
    lock = threading.Lock()
    warm = threading.Barrier(sharing + 1)
    go = threading.Event()
    errors: list[BaseException] = []

    def work(k: int) -> None:
        w = walkers[k]
        try:
            for _ in range(warmup):
                w.step()
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)
            warm.abort()
            return
        try:
            warm.wait()
        except threading.BrokenBarrierError:
            return
        go.wait()
        try:
            for _ in range(share[k]):
                total, model, post = w.step()
                records[k].append((time.perf_counter(), total, model, post))
                with lock:
                    done[0] += 1
                    n = done[0]
                    if n % rss_every == 0:
                        rss.append((n, rss_mb()))
                if progress is not None:
                    progress(1)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(sharing)]
    for t in threads:
        t.start()
    try:
        warm.wait()
    except threading.BrokenBarrierError:
        pass
    base = rss_mb()
    rss.append((0, base))
    t0 = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    end = rss_mb()
    rss.append((done[0], end))
    rows = sorted(r for rec in records for r in rec)  # completion order across threads
    total = [r[1] for r in rows]
    win = min(window, len(total) // 2) or 1
    first, last = float(np.median(total[:win])), float(np.median(total[-win:]))
    n, mb = np.array([r[0] for r in rss], float), np.array([r[1] for r in rss], float)
    slope = float(np.polyfit(n, mb, 1)[0] * 1000) if len(set(n)) > 1 else 0.0
    return {
        "sharing": sharing, "updates": len(total), "warmup_per_thread": warmup, "window": win,
        "wall_s": round(wall, 2), "updates_per_s": round(len(total) / wall, 2) if wall else None,
        "latency": stats(total),
        "model_median_ms": float(np.median([r[2] for r in rows])),
        "post_median_ms": float(np.median([r[3] for r in rows])),
        "first_window_median_ms": first, "last_window_median_ms": last, "drift": last / first - 1,
        "rss_baseline_mb": round(base, 2), "rss_end_mb": round(end, 2), "rss_growth_mb": round(end - base, 2),
        "rss_max_mb": round(float(mb.max()), 2), "rss_slope_mb_per_1000": round(slope, 3),
        "rss_samples": [[int(a), round(b, 2)] for a, b in rss],
        "postprocess": walkers[0].session.kernel,
    }


def run_command(args) -> int:  # noqa: C901 - flags checked one by one, then the run
    try:
        backends = parse_list(args.backends, ("onnxruntime", "openvino"), "backend")
        sharing = [int(s) for s in parse_list(args.sharing, what="thread count")]
    except ValueError as exc:
        raise InputError(str(exc).replace("invalid literal for int() with base 10", "--sharing: not a number")) from None
    if args.seed < 0:
        raise InputError(f"--seed {args.seed}: use a non-negative number")
    for name, v, lo, hi in (("--updates", args.updates, 1, MAX_UPDATES), ("--warmup", args.warmup, 0, 100_000),
                            ("--window", args.window, 1, MAX_UPDATES), ("--rss-every", args.rss_every, 1, MAX_UPDATES),
                            *(("--sharing", s, 1, MAX_SHARING) for s in sharing)):
        if not lo <= v <= hi:
            raise InputError(f"{name} {v}: use {lo}..{hi}")
    if not backends or not sharing:
        raise InputError("need at least one backend and one --sharing value")

    size = parse_size(args.size)
    if args.engine:
        engine = Path(args.engine)
        if not engine.is_file():
            raise InputError(f"--engine {engine}: no such file")
    else:

        engine = prebuilt_model(DEFAULT_MODEL)
    image = photo(fixture_photos()[0], size)
    env = envmod.capture()

    def log(m: str) -> None:
        print(m, file=sys.stderr, flush=True)

    results, failures = [], []
    for name in backends:
        try:
            backend = open_backend(engine, name, threads=args.threads)
        except TinctError as exc:
            log(f"soak: {name}: skipped: {exc}")
            results.append({"backend": name, "skipped": str(exc)})
            continue
        for n in sharing:
            bar = None
            if not args.no_progress:

                bar = tqdm(total=args.updates, desc=f"soak {name} x{n}", unit="upd", file=sys.stderr,
                           mininterval=1.0)
            try:
                r = soak_case(backend, image, sharing=n, updates=args.updates, warmup=args.warmup,
                              window=args.window, rss_every=args.rss_every, seed=args.seed,
                              progress=bar.update if bar else None)
            finally:
                if bar:
                    bar.close()
            r.update(backend=name, precision=backend.meta.precision, threads=args.threads,
                     engine=str(engine), image_size=list(size))
            bad = []
            if r["rss_growth_mb"] > args.max_rss_growth:
                bad.append(f"RSS grew {r['rss_growth_mb']:.1f} MB > {args.max_rss_growth} MB")
            if abs(r["drift"]) * 100 > args.max_drift:
                bad.append(f"median drifted {100 * r['drift']:+.1f} % (> {args.max_drift} %)")
            r["gate"] = "fail: " + "; ".join(bad) if bad else "pass"
            if bad:
                failures.append(f"{name} x{n}: " + "; ".join(bad))
            results.append(r)
        del backend
    envmod.finish(env)
    print(f"machine: {env.get('cpu_line', env.get('cpu'))}, {env.get('cpu_count')} logical cores")
    print(markdown_table(results))
    doc = {"kind": "soak", "schema": 1, "environment": env, "results": results,
           "config": {k: getattr(args, k) for k in ("engine", "backends", "sharing", "threads", "updates", "warmup",
                                                    "window", "rss_every", "max_rss_growth", "max_drift", "size",
                                                    "seed")}}
    if args.json_out:

        with atomic_path(Path(args.json_out)) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))
        print(f"wrote {args.json_out}")
    for f in failures:
        print(f"soak: FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


def markdown_table(results: list[dict]) -> str:
    head = ["backend", "threads sharing it", "updates", "median ms ± IQR", "p90 ms", "first 1k / last 1k median ms",
            "drift", "RSS after warm-up MB", "RSS growth MB", "slope MB/1k upd", "gate"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['backend']} | skipped: {r['skipped']} |" + " |" * (len(head) - 2))
            continue
        s = r["latency"]
        lines.append("| " + " | ".join([
            f"{r['backend']} {r['precision'] or ''}".strip(), str(r["sharing"]), str(r["updates"]),
            f"{s['median_ms']:.1f} ± {s['iqr_ms']:.1f}", f"{s['p90_ms']:.1f}",
            f"{r['first_window_median_ms']:.1f} / {r['last_window_median_ms']:.1f}", f"{100 * r['drift']:+.1f} %",
            f"{r['rss_baseline_mb']:.0f}", f"{r['rss_growth_mb']:+.1f}", f"{r['rss_slope_mb_per_1000']:+.2f}",
            r["gate"]]) + " |")
    return "\n".join(lines)
