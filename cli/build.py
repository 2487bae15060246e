"""`tinct build IN.onnx --backend openvino|tensorrt -o OUT`: compile an ONNX artifact for a backend
(the loaders: :mod:`runtime.backends.loaders`)."""


from __future__ import annotations

import sys

from tinct.runtime.errors import bounded, thread_count

NAME = "build"
EXTRA = "openvino"  # the extra that installs what this command needs

def register(subparsers) -> None:
    p = subparsers.add_parser("build", help="compile an ONNX artifact to an OpenVINO IR or a TensorRT engine",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("onnx", help="tinct ONNX artifact")
    p.add_argument("--backend", required=True, choices=["openvino", "tensorrt"])
    p.add_argument("-o", "--output", required=True, help="OUT.xml (OpenVINO) or OUT.engine / OUT.plan (TensorRT)")
    p.add_argument("--device", default=None, help="OpenVINO device recorded for run time (CPU, GPU, NPU, AUTO)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16", "int8", "auto"],
                   help="auto (OpenVINO CPU): build fp32, bf16, int8 and int8 with bf16 float ops as this CPU "
                        "allows, guard each, time them interleaved at --threads, keep the fastest that passes")
    p.add_argument("--calib", default=None, metavar="DIR", help="--precision auto: calibration photos for INT8 "
                   "(default: the corpus' training split)")
    p.add_argument("--calib-size", type=bounded(1, 100_000), default=300, metavar="N",
                   help="--precision auto: INT8 calibration samples (default 300)")
    p.add_argument("--guard-images", type=bounded(1, 100_000), default=None, metavar="N",
                   help="--precision auto: guard each candidate on the first N validation images (default all)")
    p.add_argument("--threads", type=thread_count, default=0, help="OpenVINO: threads used to check the IR compiles")
    p.add_argument("--workspace", type=int, default=1024, metavar="MiB", help="TensorRT workspace limit")
    p.add_argument("--timing-cache", default=None, metavar="FILE", help="TensorRT timing cache (read and updated)")
    p.add_argument("--min-batch", type=int, default=1)
    p.add_argument("--opt-batch", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=1)
    p.add_argument("--no-check", action="store_true", help="OpenVINO: skip compiling the IR after saving")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinct.runtime.errors import TinctError

    if not (1 <= args.min_batch <= args.opt_batch <= args.max_batch):
        raise TinctError("batch profile must satisfy 1 <= --min-batch <= --opt-batch <= --max-batch")
    if args.precision == "auto":
        if args.backend != "openvino":
            raise TinctError("--precision auto chooses among OpenVINO CPU precisions: use --backend openvino")
        from tinct.deploy.auto import build_auto, format_table

        out, table = build_auto(args.onnx, args.output, threads=args.threads or 1, calib_dir=args.calib,
                                calib_size=args.calib_size, guard_images=args.guard_images,
                                log=lambda m: print(m, file=sys.stderr))
        print(format_table(table))
        chosen = next(t for t in table if t.get("chosen"))
        print(f"built {out} (openvino, auto -> {chosen['precision']}, {args.threads or 1} thread(s))")
        return 0
    from tinct.deploy.build import build_openvino, build_tensorrt

    if args.backend == "openvino":
        out = build_openvino(args.onnx, args.output, device=args.device or "CPU", precision=args.precision,
                             threads=args.threads, check=not args.no_check,
                             log=lambda m: print(m, file=sys.stderr))
    else:
        out = build_tensorrt(args.onnx, args.output, precision=args.precision, workspace_mib=args.workspace,
                             timing_cache=args.timing_cache,
                             profile=(args.min_batch, args.opt_batch, args.max_batch))
    print(f"built {out} ({args.backend}, {args.precision})")
    return 0
