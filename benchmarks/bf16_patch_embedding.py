"""What keeping the patch embedding in f32 costs and buys under OpenVINO BF16, interleaved on this CPU.

    python -m tinct.benchmarks.bf16_patch_embedding --model icolorit-tiny --threads 1 --rounds 30 \\
        --json docs/data/bf16-patch-embedding-zen4.json

Cases, timed round-robin by the latency scheduler on one input (a fixture photo, 10 hints): ONNX Runtime
FP32, OpenVINO FP32, OpenVINO BF16 as the plugin compiles it by itself ("plain": what tinct ran before
the AMX fix, built here only for this comparison) and OpenVINO BF16 as tinct runs it (the patch
embedding kept f32). For each: mean |Δab| (Lab units) against ONNX Runtime FP32 on the parity photos
with 10 hints, and the runtime precision of the patch embedding. On an Intel AMX CPU plain bf16 is
wrong (OpenVINO's AMX bf16 convolution, see ``benchmarks/repro_openvino_amx_bf16.py``); elsewhere the
two BF16 rows agree and the table is the fix's cost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinct.benchmarks import env as envmod
from tinct.runtime.backends import open_backend
from tinct.runtime.backends.openvino_backend import runtime_precisions
from tinct.runtime.backends.openvino_ir import convert, patch_embedding_names
from tinct.runtime.catalog import prebuilt_model
from tinct.runtime.color import AB_NORM
from tinct.runtime.cpu import missing_isa
from tinct.runtime.errors import TinctError, thread_count
from tinct.runtime.timing import Case, Timed, run_cases
from tinct.verify.compare import OutputDiff
from tinct.verify.probes import parity_inputs


def _plain_bf16(onnx_path: Path, threads: int):
    """OpenVINO's own bf16 compile of the ONNX (no f32 layers), batch 1: a ``run_x`` and the compiled model."""
    import openvino as ov

    model = convert(onnx_path)
    model.reshape({i: [1] + [d.get_length() for d in list(i.get_partial_shape())[1:]] for i in model.inputs})
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY",
                                                      "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    return (lambda x: next(iter(request.infer({0: x}).values())).copy()), compiled


def measure(model: str = "icolorit-tiny", threads: int = 1, rounds: int = 30, warmup: int = 5) -> dict:
    why = missing_isa("bf16")
    if why:
        raise TinctError(f"this CPU cannot run OpenVINO bf16: {why}")
    environment = envmod.capture()
    src = prebuilt_model(model)
    ref = open_backend(src, "onnxruntime", threads=threads)
    engines = {
        ("openvino", "fp32"): open_backend(src, "openvino", precision="fp32", threads=threads),
        ("openvino", "bf16"): open_backend(src, "openvino", precision="bf16", threads=threads),
    }
    plain_run, plain_compiled = _plain_bf16(src, threads)
    runs = {("onnxruntime", "fp32"): ref.run_x, **{k: b.run_x for k, b in engines.items()},
            ("openvino", "bf16-plain"): plain_run}
    patch = set(patch_embedding_names(engines[("openvino", "fp32")]._model))
    compiled = {("openvino", "bf16"): engines[("openvino", "bf16")].compiled, ("openvino", "bf16-plain"): plain_compiled,
                ("openvino", "fp32"): engines[("openvino", "fp32")].compiled}
    xs = parity_inputs(hint_counts=(10,))
    fidelity = {}
    for key, run in runs.items():
        diff = OutputDiff()
        for i in range(len(xs)):
            diff.add(ref.run_x(xs[i:i + 1]), run(xs[i:i + 1]))
        fidelity[key] = {"mean_ab_err": round(diff.mean_abs * AB_NORM, 5), "nonfinite": diff.nonfinite}
        if key in compiled:
            fidelity[key]["patch_embedding"] = sorted({p for n, _t, p in runtime_precisions(compiled[key]) if n in patch})
    x = xs[:1]

    def case(key):
        return Case(model, key[0], key[1], threads, setup=lambda: Timed(call=lambda: runs[key](x)))

    run = run_cases([case(k) for k in runs], rounds=rounds, warmup=warmup, burst=4, gap_s=0.002)
    by = {(r["backend"], r["precision"]): r for r in run.results}
    base = by[("onnxruntime", "fp32")]["median_ms"]
    rows = [{"backend": k[0], "precision": k[1], "median_ms": round(by[k]["median_ms"], 3),
             "iqr_ms": round(by[k]["iqr_ms"], 3), "vs_ort_fp32": round(base / by[k]["median_ms"], 3),
             **fidelity[k]} for k in runs if k in by]
    tinct_bf16, plain = by[("openvino", "bf16")]["median_ms"], by[("openvino", "bf16-plain")]["median_ms"]
    return {"model": model, "threads": threads, "rounds": rounds, "rows": rows,
            "bf16_tinct_over_plain": round(tinct_bf16 / plain, 4), "environment": envmod.finish(environment),
            "command": "python -m tinct.benchmarks.bf16_patch_embedding " + " ".join(sys.argv[1:])}


def markdown(doc: dict) -> str:
    lines = ["| engine | median ms (IQR) | vs ORT FP32 | mean \\|Δab\\| vs ORT FP32 | patch embedding runs in |",
             "|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['backend']} {r['precision']} | {r['median_ms']:.2f} ({r['iqr_ms']:.2f}) | "
                     f"{r['vs_ort_fp32']:.2f}x | {r['mean_ab_err']:.4f} | {', '.join(r.get('patch_embedding', [])) or '-'} |")
    lines.append(f"\nBF16 with the patch embedding in f32 / plain BF16: {doc['bf16_tinct_over_plain']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="icolorit-tiny", help="a shipped hint model (default icolorit-tiny)")
    ap.add_argument("--threads", type=thread_count, default=1)
    ap.add_argument("--rounds", type=int, default=30, choices=range(1, 10001), metavar="1..10000")
    ap.add_argument("--json", default=None, help="write the result here")
    args = ap.parse_args(argv)
    try:
        doc = measure(args.model, threads=args.threads or 1, rounds=args.rounds)
    except TinctError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.model}, {args.threads or 1} thread(s), {args.rounds} interleaved rounds; "
          f"{doc['environment']['cpu_line']}\n")
    print(markdown(doc))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
