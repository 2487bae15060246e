"""Color2Embed latency: PyTorch eager FP32 vs ONNX Runtime / OpenVINO FP32 and INT8, interleaved.

    python -m tinct.benchmarks.color2embed_latency --size 256 --threads 2 --rounds 20 --json out.json

The model is the shipped ``color2embed-r18`` (``--model``; ``--random`` measures the architecture
with random weights instead: latency does not depend on the weights, accuracy does). INT8 artifacts
go through ``tinct quantize`` and its accuracy guard (with ``--random`` the guard is disabled and
the result says so); a route the guard refuses is reported as skipped with its reason.

Cases, round-robin (one call of each per round): the colorizer graph (L + embedding -> ab) at
``size``², which runs for every image; the colour encoder, once per reference; and end to end at full
resolution (``--full WxH``, default 1920x1080): a new photo -> ``ExemplarSession`` with a cached
reference embedding -> full-resolution RGB (resize to ``size``, model, ab upsampling, Lab -> RGB).
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from tinct.benchmarks import env as envmod
from tinct.benchmarks.latency.inputs import fixture_photos, parse_size
from tinct.quantization.api import quantize
from tinct.quantization.recipes import Calibration, GuardPolicy, recipe_for
from tinct.runtime.backends import open_backend
from tinct.runtime.errors import TinctError, thread_count
from tinct.runtime.exemplar import ExemplarColorizer
from tinct.runtime.postprocess import resize_rgb
from tinct.runtime.timing import Case, Timed, run_cases


def _int8(col_path: Path, out: Path, backend: str, random: bool) -> tuple[Path | None, str]:
    guard = GuardPolicy(max_psnr_drop=float("inf"), max_mean_ab_err=float("inf"), images=4) if random else None
    calib = Calibration(size=32) if random else Calibration()
    try:
        path, report = quantize(col_path, out, recipe_for(col_path, precision="int8", backend=backend,
                                                          calibration=calib), guard)
    except TinctError as exc:
        return None, str(exc)
    return path, report.line()


def measure(size: int = 256, threads: int = 2, rounds: int = 20, warmup: int = 3, seed: int = 0,
            model_name: str = "color2embed-r18", random: bool = False, full: tuple[int, int] = (1920, 1080),
            backends: tuple[str, ...] = ("onnxruntime", "openvino"), gap_ms: float = 2.0) -> dict:
    import torch

    from tinct.export.color2embed_export import export_color2embed
    from tinct.models.registry import create_model

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    if random:
        model = create_model(model_name).eval()
    else:
        from tinct.models.checkpoint import load_model

        model = load_model(model_name)
    tmp = Path(tempfile.mkdtemp(prefix="tinct-c2e-lat-"))
    enc_path, col_path = export_color2embed(model, tmp / "c2e", model_name=model_name)
    artifacts, skipped, guard = {}, {}, {}
    for backend in backends:
        artifacts[(backend, "fp32")] = col_path
        suffix = ".xml" if backend == "openvino" else ".onnx"
        path, line = _int8(col_path, tmp / f"c2e-colorizer-int8-{backend}{suffix}", backend, random)
        if path is None:
            skipped[f"{backend} int8"] = line
        else:
            artifacts[(backend, "int8")] = path
            guard[f"{backend} int8"] = line

    rng = np.random.default_rng(seed)
    photos = _photos(full)
    l_n = rng.uniform(-0.5, 0.5, (1, 1, size, size)).astype(np.float32)
    enc = open_backend(enc_path, "onnxruntime", threads=threads)
    ref = photos[1]
    ref_small = np.asarray(resize_rgb(ref, (size, size)), np.float32)[None].transpose(0, 3, 1, 2) / 255.0
    emb = enc.infer({"ref": ref_small})["emb"]
    lt, et = torch.from_numpy(l_n), torch.from_numpy(emb)
    cases = {f"colorizer {size}² pytorch eager fp32": lambda: model.colorize(lt, et)}
    sessions = {}
    for (backend, prec), path in artifacts.items():
        be = open_backend(path, backend, threads=threads)
        cases[f"colorizer {size}² {backend} {prec}"] = functools.partial(be.infer, {"l_n": l_n, "emb": emb})
        if backend == "onnxruntime" or prec == "int8":
            ex = ExemplarColorizer(open_backend(enc_path, "onnxruntime", threads=threads), be, size=size)
            sessions[f"end to end {full[0]}x{full[1]} {backend} {prec}"] = ex
    cases[f"encoder {size}² onnxruntime fp32 (once per reference)"] = lambda: enc.infer({"ref": ref_small})
    for name, ex in sessions.items():
        def e2e(ex=ex):
            s = ex.session(photos[0])
            s.set_embedding(emb)
            return s.colorize()
        cases[name] = e2e

    def case(name: str, fn) -> Case:
        backend = next((b for b in ("pytorch", "onnxruntime", "openvino") if f" {b} " in f" {name} "), "pytorch")
        precision = "int8" if " int8" in name else "fp32"
        return Case(model_name, backend, precision, threads, mode=name.split(" ")[0], info={"name": name},
                    setup=lambda fn=fn: Timed(call=fn))

    with torch.no_grad():  # one scheduler for every latency number (interleaved, shuffled, gap between calls)
        run = run_cases([case(n, f) for n, f in cases.items()], rounds=rounds, warmup=warmup, seed=seed,
                        gap_s=gap_ms / 1e3)
    by_name = {e["name"]: e for e in run.results}
    eager = by_name[f"colorizer {size}² pytorch eager fp32"]["median_ms"]
    result = {"size": size, "threads": threads, "rounds": rounds, "full_resolution": list(full),
              "weights": "random (latency only; INT8 guard disabled)" if random else model_name,
              "int8_guard": guard, "skipped": {**skipped, **{e["name"]: e["reason"] for e in run.skipped}},
              "results": {}}
    for name, e in by_name.items():
        result["results"][name] = {"median_ms": round(e["median_ms"], 2), "iqr_ms": round(e["iqr_ms"], 2),
                                   "min_ms": round(e["min_ms"], 2),
                                   "vs_eager": round(eager / e["median_ms"], 2) if name.startswith("colorizer") else None}
    return result


def _photos(full: tuple[int, int]) -> list[np.ndarray]:
    """Two fixture photos at the full resolution (the image, the reference)."""

    paths = fixture_photos()
    return [np.asarray(Image.open(p).convert("RGB").resize(full, Image.BICUBIC)) for p in paths[:2]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinct.benchmarks.color2embed_latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=thread_count, default=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--model", default="color2embed-r18", help="shipped model or checkpoint (default color2embed-r18)")
    p.add_argument("--random", action="store_true", help="random weights: the architecture's latency only")
    p.add_argument("--full", default="1920x1080", metavar="WxH", help="end-to-end photo size (default 1920x1080)")
    p.add_argument("--backends", default="onnxruntime,openvino")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    w, h = parse_size(a.full, "--full")
    environment = envmod.capture()
    res = measure(a.size, a.threads, a.rounds, model_name=a.model, random=a.random, full=(w, h),
                  backends=tuple(b for b in a.backends.split(",") if b))
    res["environment"] = envmod.finish(environment)  # the CPU the numbers came from, for the docs' tables
    print(f"| Color2Embed ({res['weights']}), {a.threads} threads | median ms | IQR | min | vs eager |")
    print("|---|---|---|---|---|")
    for name, r in res["results"].items():
        ve = f"{r['vs_eager']}×" if r["vs_eager"] else "–"
        print(f"| {name} | {r['median_ms']} | {r['iqr_ms']} | {r['min_ms']} | {ve} |")
    for name, line in res["int8_guard"].items():
        print(f"guard {name}: {line}")
    for name, why in res["skipped"].items():
        print(f"skipped {name}: {why}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
