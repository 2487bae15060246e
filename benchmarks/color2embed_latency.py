"""Color2Embed latency at a given resolution: PyTorch eager FP32 vs ONNX Runtime FP32 / INT8, interleaved.

    python -m benchmarks.color2embed_latency --size 256 --threads 2 --rounds 20 --json out.json

Until a trained Color2Embed is shipped this measures the architecture (``color2embed-r18``) with
random weights: latency does not depend on the weights, accuracy does (INT8 is built with the guard
disabled and says so). Measures the colorizer graph (L + embedding -> ab), which runs on every image;
the colour encoder runs once per reference (its time is reported separately).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def measure(size: int = 256, threads: int = 2, rounds: int = 20, warmup: int = 3, seed: int = 0) -> dict:
    import onnxruntime as ort
    import torch

    from export.color2embed_export import export_color2embed
    from models.registry import create_model
    from quantization.cli import quantize

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model = create_model("color2embed-r18").eval()
    tmp = Path(tempfile.mkdtemp(prefix="tinct-c2e-lat-"))
    enc_path, col_path = export_color2embed(model, tmp / "c2e", model_name="color2embed-r18")
    int8_path, _ = quantize(col_path, tmp / "c2e-colorizer-int8.onnx", precision="int8", calib_size=32,
                            max_psnr_drop=float("inf"), max_mean_ab_err=float("inf"), guard_images=4)

    rng = np.random.default_rng(seed)
    l_n = rng.uniform(-0.5, 0.5, (1, 1, size, size)).astype(np.float32)
    ref = rng.uniform(0, 1, (1, 3, size, size)).astype(np.float32)

    def session(path):
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
        return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])

    enc, col, col8 = session(enc_path), session(col_path), session(int8_path)
    emb = enc.run(None, {"ref": ref})[0]
    lt, et = torch.from_numpy(l_n), torch.from_numpy(emb)
    cases = {
        "pytorch eager fp32": lambda: model.colorize(lt, et),
        "onnxruntime fp32": lambda: col.run(None, {"l_n": l_n, "emb": emb}),
        "onnxruntime int8": lambda: col8.run(None, {"l_n": l_n, "emb": emb}),
        "encoder onnxruntime fp32 (once per reference)": lambda: enc.run(None, {"ref": ref}),
    }
    times = {k: [] for k in cases}
    with torch.no_grad():
        for r in range(warmup + rounds):
            for name, fn in cases.items():  # round-robin: one call of each case per round
                t = time.perf_counter()
                fn()
                if r >= warmup:
                    times[name].append((time.perf_counter() - t) * 1e3)
    result = {"size": size, "threads": threads, "rounds": rounds, "weights": "random (latency only)", "results": {}}
    eager = float(np.median(times["pytorch eager fp32"]))
    for name, v in times.items():
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        result["results"][name] = {"median_ms": round(float(med), 2), "iqr_ms": round(float(q3 - q1), 2),
                                   "min_ms": round(float(min(v)), 2), "vs_eager": round(eager / float(med), 2)}
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.color2embed_latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    res = measure(a.size, a.threads, a.rounds)
    print(f"| Color2Embed colorizer {a.size}² ({a.threads} threads) | median ms | IQR | min | vs eager |")
    print("|---|---|---|---|---|")
    for name, r in res["results"].items():
        print(f"| {name} | {r['median_ms']} | {r['iqr_ms']} | {r['min_ms']} | {r['vs_eager']}× |")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
