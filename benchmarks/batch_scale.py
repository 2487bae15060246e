"""In-process vs Ray for ``tinct batch`` (issue 18's table): ``python -m tinct.benchmarks.batch_scale``.

Writes the first ``--photos`` training photos of the corpus (``tinct data fetch``) as JPEG (quality 95) into
a temporary folder, then colorizes them with the same engine in three ways, one after another, each into a
fresh output folder: in this process (one engine, ``--threads`` threads), a local Ray with 1 worker of
``--threads`` threads, and a local Ray with ``--threads`` workers of 1 thread; then the in-process run again
(to show drift over the measurement). The Ray wall times include starting the actors and their engines;
starting the local Ray itself is reported on its own (once, before the first Ray run). Output: a table and
JSON with the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from tinct.data.photos import load_train_photos
from tinct.runtime.catalog import DEFAULT_MODEL, prebuilt_model
from tinct.runtime.cpu import cpu_record, describe_cpu
from tinct.serve.batch import EngineSpec, plan, run_local
from tinct.serve.ray_batch import init, run_ray


def _photos(n: int, dest: Path) -> list[Path]:
    arrays = load_train_photos()[:n]
    if len(arrays) < n:
        raise SystemExit(f"only {len(arrays)} training photos in the cache; run 'tinct data fetch'")
    out = []
    for i, a in enumerate(arrays):
        p = dest / f"{i:04d}.jpg"
        Image.fromarray(a).save(p, quality=95)
        out.append(p)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--engine", default=None, help="artifact (default: the shipped icolorit-tiny ONNX)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    engine = args.engine or str(prebuilt_model(DEFAULT_MODEL))
    results = []
    with tempfile.TemporaryDirectory(prefix="tinct-batch-scale-") as td:
        td = Path(td)
        (td / "in").mkdir()
        photos = _photos(args.photos, td / "in")

        mp = sorted(Image.open(p).size[0] * Image.open(p).size[1] / 1e6 for p in photos)

        def local(label):
            p = plan(td / "in", td / f"out-{len(results)}")
            s = run_local(p, EngineSpec(path=engine, opts={"threads": args.threads}), progress=False)
            return {"runner": label, "workers": 1, "threads": args.threads, "images": len(s.ok),
                    "failed": len(s.failed), "wall_s": round(s.seconds, 2), "images_per_s": round(s.images_per_s(), 2)}

        def on_ray(workers, threads):
            p = plan(td / "in", td / f"out-{len(results)}")
            t0 = time.perf_counter()
            s = run_ray(p, EngineSpec(path=engine, opts={"threads": threads}), address="local", workers=workers,
                        threads=threads, progress=False)
            wall = time.perf_counter() - t0
            return {"runner": "ray local", "workers": workers, "threads": threads, "images": len(s.ok),
                    "failed": len(s.failed), "wall_s": round(wall, 2), "pipeline_s": round(s.seconds, 2),
                    "images_per_s": round(len(s.ok) / wall, 2)}

        results.append(local("in-process"))
        print(results[-1], file=sys.stderr)
        t0 = time.perf_counter()
        init("local")
        ray_start = time.perf_counter() - t0
        results.append(on_ray(1, args.threads))
        print(results[-1], file=sys.stderr)
        results.append(on_ray(args.threads, 1))
        print(results[-1], file=sys.stderr)
        results.append(local("in-process (again)"))
        print(results[-1], file=sys.stderr)
    cpu = cpu_record()
    out = {"engine": engine, "photos": args.photos, "megapixels": {"median": round(mp[len(mp) // 2], 3),
           "max": round(mp[-1], 3)}, "ray_init_s": round(ray_start, 2), "cpu": cpu, "results": results,
           "command": "python -m tinct.benchmarks.batch_scale " + " ".join(argv or sys.argv[1:])}
    print(f"CPU: {describe_cpu(cpu)}; {args.photos} photos (median {out['megapixels']['median']} MP); "
          f"local Ray start {ray_start:.1f} s")
    print(f"{'runner':<20} {'workers x threads':>18} {'wall s':>8} {'images/s':>9}")
    for r in results:
        print(f"{r['runner']:<20} {r['workers']:>9} x {r['threads']:<6} {r['wall_s']:>8.1f} {r['images_per_s']:>9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
