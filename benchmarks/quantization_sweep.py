"""The quantization recipe sweep behind the defaults: latency and ΔPSNR@10 of one model's variants.

``python -m tinct.benchmarks.quantization_sweep MODEL.onnx [--calib-size 32] [--rounds 40] [--sweep]``

Variants: ONNX Runtime FP32 and INT8 (Q/DQ), OpenVINO FP32 / BF16 (explicit INFERENCE_PRECISION_HINT),
OpenVINO INT8 via NNCF (iColoriT only) and via the Q/DQ ONNX, timed by the one latency scheduler
(:func:`tinct.benchmarks.latency.run_cases`: interleaved, shuffled, 1 thread, batch 1).
``--sweep`` also tries several Q/DQ recipes (which op types are quantized, per-channel or not) and
prints ΔPSNR@10 (guard protocol, ``--guard-images`` images) next to the latencies. Fixed A-ColViT
gate patterns: ``tinct bench latency --gates``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort

from tinct.quantization.builders import stamp_onnx
from tinct.quantization.calibration import CalibrationSet
from tinct.quantization.conditional import if_nodes
from tinct.runtime.artifact import read_onnx_meta, sha256_file
from tinct.runtime.backends.openvino_ir import build_info, save_ir
from tinct.runtime.cpu import has_native_bf16
from tinct.runtime.timing import Case, Timed, run_cases
from tinct.verify import guard
from tinct.verify.predictors import ArtifactPredictor


def interleave(variants, x, rounds: int, warmup: int = 5) -> list[tuple[str, float, float]]:
    """(label, median ms, IQR ms) per (label, path, kind, hint) variant, through the one scheduler."""

    def case(label, path, kind, hint):
        def setup():
            pred = _open(path, kind, hint)
            return Timed(call=lambda: pred(x))
        return Case(label, "openvino" if kind == "ov" else "onnxruntime", info={"label": label}, setup=setup)

    run = run_cases([case(*v) for v in variants], rounds=rounds, warmup=warmup)
    by = {e["label"]: e for e in run.results}
    return [(v[0], by[v[0]]["median_ms"], by[v[0]]["iqr_ms"]) for v in variants if v[0] in by]


def _open(path: Path, kind: str, hint: str | None) -> ArtifactPredictor:
    return ArtifactPredictor.open(path, threads=1, backend="openvino" if kind == "ov" else "onnxruntime",
                                  precision=hint if kind == "ov" else None)


def _stamp_int8(path: Path, parent) -> None:
    """The sweep's Q/DQ graphs carry their parent's metadata: claim int8, as ``tinct quantize`` does."""
    stamp_onnx(path, dataclasses.replace(parent, precision="int8").to_props())


def print_table(rows, title, extra=None):
    print(f"\n{title}")
    print("| variant | median ms | IQR ms |" + (" ΔPSNR@10 dB | max Δab |" if extra else ""))
    print("|---|---|---|" + ("---|---|" if extra else ""))
    base = rows[0][1]
    for name, med, iqr in rows:
        e = extra.get(name) if extra else None
        tail = (f" {e[0]:+.3f} | {e[1]:.2f} |" if e else " – | – |") if extra else ""
        print(f"| {name} | {med:.2f} ({base / med:.2f}x) | {iqr:.2f} |{tail}")


SWEEP = {  # name -> (quantized op types, per_channel)
    "MatMul+Conv (default)": (("MatMul", "Conv"), True),
    "MatMul only": (("MatMul",), True),
    "MatMul+Conv per-tensor": (("MatMul", "Conv"), False),
    "MatMul+Conv+Add": (("MatMul", "Conv", "Add"), True),
    "ORT default set (+Add,Mul,Softmax,LN,...)": (("MatMul", "Conv", "Add", "Mul", "Softmax",
                                                    "LayerNormalization", "Transpose", "Reshape", "Gather"), True),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--calib-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--guard-images", type=int, default=16)
    ap.add_argument("--no-nncf", action="store_true")
    args = ap.parse_args(argv)


    from tinct.quantization.openvino_int8 import nncf_int8

    ort.set_default_logger_severity(3)
    src = Path(args.model)
    parent = read_onnx_meta(src)
    dynamic = bool(if_nodes(onnx.load(str(src), load_external_data=False)))
    calib = CalibrationSet.from_source(size=args.calib_size)
    names, images, where = guard.guard_images(args.guard_images)
    x = calib[len(calib) // 2]
    with tempfile.TemporaryDirectory(prefix="tinct-measure-") as tmp:
        tmp = Path(tmp)
        q8 = tmp / "int8.onnx"
        if dynamic:
            from tinct.quantization.conditional import quantize_conditional

            quantize_conditional(src, q8, calib)
        else:
            from tinct.quantization.onnx_int8 import quantize_model

            quantize_model(src, q8, calib.ort_reader())
        _stamp_int8(q8, parent)
        variants = [("ORT FP32", src, "ort", None), ("ORT INT8 Q/DQ", q8, "ort", None),
                    ("OV FP32", src, "ov", "f32")]
        if has_native_bf16():
            variants.append(("OV BF16", src, "ov", "bf16"))
        variants.append(("OV INT8 (Q/DQ ONNX)", q8, "ov", "f32"))
        if not dynamic and not args.no_nncf:
            qm, _ = nncf_int8(src, calib)
            save_ir(qm, tmp / "nncf.xml", dataclasses.replace(parent, precision="int8").to_props(),
                    build_info(src, "f32", sha256_file(src)))
            variants.append(("OV INT8 (NNCF)", tmp / "nncf.xml", "ov", "f32"))
        extra = {}
        if args.sweep and not dynamic:
            from tinct.quantization.onnx_int8 import quantize_model

            for name, (ops, pc) in SWEEP.items():
                p = tmp / f"sweep{len(extra)}.onnx"
                quantize_model(src, p, calib.ort_reader(), quantize_ops=ops, per_channel=pc)
                _stamp_int8(p, parent)
                rep = guard.compare(_open(src, "ort", None), _open(p, "ort", None), images, names, where, counts=(10,))
                extra[f"ORT {name}"] = extra[f"OV {name}"] = (rep.delta[10], rep.max_ab_err)
                variants += [(f"ORT {name}", p, "ort", None), (f"OV {name}", p, "ov", "f32")]
        for label, path, _, hint in variants:
            if label.startswith(("ORT INT8", "OV INT8", "OV BF16")):
                rep = guard.compare(_open(src, "ort", None), _open(path, "ov" if hint else "ort", hint), images,
                                    names, where, counts=(10,))
                extra[label] = (rep.delta[10], rep.max_ab_err)
        title = f"{src.name}: 1 thread, batch 1, {args.rounds} interleaved rounds"
        print_table(interleave(variants, x, args.rounds), title, extra)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
