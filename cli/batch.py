"""`tinct batch INPUT_DIR -o OUTPUT_DIR`: colorize a folder, in this process or on Ray.

Each image gets its hints from ``--hints-dir`` (``<stem>.json``, the format of ``tinct colorize --hints``)
or, with ``--reference REF``, the colours of one exemplar photo (Color2Embed). Without either, every
image is colorized with no hints. Finished outputs are skipped (rerun the same command to resume);
every output is written atomically; one bad file is reported with its reason and the run goes on.
With ``--ground-truth DIR`` each output's PSNR against the colour original (same name) goes into
``--csv``. ``--ray local|auto|ADDRESS`` runs the same stages as a Ray Data pipeline (:mod:`runtime.ray_batch`).
Exit status 0 when every image was colorized (or was already done), 1 when any failed.
"""

from __future__ import annotations

import os
import sys

from tinct.runtime.catalog import DEFAULT_EXEMPLAR_MODEL, DEFAULT_MODEL
from tinct.runtime.errors import bounded, thread_count

NAME = "batch"
EXTRA = "runtime"  # the extra that installs what this command needs

MAX_WORKERS = 256


def register(subparsers) -> None:
    import argparse

    p = subparsers.add_parser("batch", help="colorize a folder of images (in-process or on a Ray cluster)",
                              description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input_dir", help="folder of images (.jpg .png .bmp .tif .webp)")
    p.add_argument("-o", "--output-dir", required=True, help="where the colorized images go (same names)")
    guide = p.add_mutually_exclusive_group()
    guide.add_argument("--hints-dir", default=None, help="per-image hint files: DIR/<stem>.json")
    guide.add_argument("--reference", default=None, metavar="REF.jpg",
                       help="one exemplar photo for every image (Color2Embed: --model color2embed-r18 or --engine)")
    p.add_argument("--ground-truth", default=None, metavar="DIR",
                   help="colour originals (same names): per-image PSNR in the summary and --csv")
    p.add_argument("--csv", default=None, help="write per-image results (status, PSNR, ms, reason) here")
    p.add_argument("--format", default="png", choices=["png", "jpg"], help="output format (default png)")
    p.add_argument("--recursive", action="store_true", help="also images in subfolders (kept in the output)")
    p.add_argument("--limit", type=int, default=None, help="colorize at most N images this run")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--engine", default=None, help="artifact: .onnx, .xml (OpenVINO IR), .engine/.plan (TensorRT)")
    src.add_argument("--model", default=None, help=f"shipped model name (default {DEFAULT_MODEL})")
    p.add_argument("--backend", default=None, help="onnxruntime | openvino | tensorrt (default: from the suffix)")
    p.add_argument("--device", default=None, help="backend device (OpenVINO: CPU, GPU, NPU, AUTO)")
    p.add_argument("--precision", default=None, choices=["fp32", "fp16", "bf16", "int8", "auto"])
    p.add_argument("--size", type=int, default=None, help="with --reference: model resolution (default 256)")
    p.add_argument("--threads", type=thread_count, default=0,
                   help="threads per engine (default: all cores in-process, 1 per Ray worker)")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default 50 MP)")
    p.add_argument("--ray", default=None, metavar="local|auto|ADDRESS",
                   help="run on Ray: 'local' starts Ray here, 'auto' joins the running cluster (RAY_ADDRESS or "
                        "'ray start'), or a cluster address (HOST:PORT, ray://HOST:10001)")
    p.add_argument("--workers", type=bounded(1, MAX_WORKERS), default=None,
                   help=f"--ray: engines (actors) at once, 1..{MAX_WORKERS} (default: cluster CPUs // threads)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)


def engine_spec(args):
    """Resolve --model/--engine/--precision into what every worker opens (exported/built once, here)."""
    from pathlib import Path

    from tinct.cli.colorize import (
        backend_opts,
        check_guide,
        engine_cache_dir,
        resolve_exemplar_model,
        resolve_model,
    )
    from tinct.deploy.auto import auto_engine
    from tinct.serve.batch import EngineSpec

    check_guide(args)
    threads = args.threads or (1 if args.ray else (os.cpu_count() or 1))
    opts = backend_opts(args, threads)
    if args.reference:
        path = args.engine or resolve_exemplar_model(args.model or DEFAULT_EXEMPLAR_MODEL)
        return EngineSpec(path=str(path), backend=args.backend, opts=opts, reference=args.reference,
                          size=args.size, max_pixels=args.max_pixels), threads
    path = Path(args.engine) if args.engine else resolve_model(args.model or DEFAULT_MODEL)
    backend = args.backend
    if args.precision == "auto":
        path, backend, opts = auto_engine(path, threads, engine_cache_dir()), "openvino", {k: v for k, v in opts.items() if k != "precision"}
    return EngineSpec(path=str(path), backend=backend, opts=opts, max_pixels=args.max_pixels), threads


def run(args) -> int:
    from tinct.runtime.errors import InputError
    from tinct.serve.batch import plan, run_local

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit {args.limit} must be at least 1")
    if args.workers is not None and not args.ray:
        raise InputError("--workers applies to --ray (in-process, --threads sets the engine's threads)")
    if args.reference and not os.path.isfile(args.reference):
        raise InputError(f"reference {args.reference} does not exist or is not a file")
    p = plan(args.input_dir, args.output_dir, hints_dir=args.hints_dir, ground_truth=args.ground_truth,
             out_format=args.format, recursive=args.recursive, limit=args.limit)
    if args.csv:
        parent = os.path.dirname(os.path.abspath(args.csv))
        if not os.path.isdir(parent):
            raise InputError(f"--csv: folder {parent} does not exist")
    spec, threads = engine_spec(args)
    os.makedirs(args.output_dir, exist_ok=True)
    print(f"{len(p.todo)} to colorize, {len(p.done)} already done, in {p.input_dir} -> {p.output_dir}", file=sys.stderr)
    if args.ray:
        from tinct.serve.ray_batch import run_ray

        summary = run_ray(p, spec, address=args.ray, workers=args.workers, threads=threads, progress=args.progress)
    else:
        summary = run_local(p, spec, progress=args.progress)
    for line in summary.lines():
        print(line)
    if args.csv:
        summary.write_csv(args.csv)
        print(f"wrote {args.csv}")
    return 1 if summary.failed else 0
