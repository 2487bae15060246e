"""`tinct bench latency`."""

from __future__ import annotations

import argparse
import sys

from tinct.benchmarks.latency.common import DEFAULT_ARTIFACTS, DEFAULT_GATES, MODES, PRECISIONS, RANDOM_FLAG
from tinct.runtime.errors import thread_count

NAME = "latency"

def register(sub) -> None:
    p = sub.add_parser(
        "latency", help="latency / throughput of models x backends x precisions x threads, round-robin",
        description=__doc__.split("\n\n")[0] + "\n\nCases are timed round-robin (one call of each per round) "
        "with the PyTorch eager FP32 reference in the same run; results are medians, IQRs and ratios.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  tinct bench latency --models icolorit-tiny,acolvit-tiny-0.5 --backends "
               "onnxruntime,openvino \\\n      --precisions fp32,int8 --threads 1,2 --modes model,e2e --rounds 50 "
               "--json lat.json --artifacts .benchmarks/artifacts")
    p.add_argument("--models", default="icolorit-tiny", metavar="A,B", help="registry names (default icolorit-tiny)")
    p.add_argument("--backends", default="onnxruntime,openvino", metavar="A,B",
                   help="onnxruntime, openvino (the PyTorch eager reference is always added)")
    p.add_argument("--precisions", default="fp32", metavar="A,B", help="fp32, bf16, fp16, int8 (default fp32)")
    p.add_argument("--threads", default="1", metavar="N,M", help="intra-op thread counts (default 1)")
    p.add_argument("--modes", default="model", metavar="A,B", help=f"{', '.join(MODES)} (default model)")
    p.add_argument("--gates", default=",".join(DEFAULT_GATES), metavar="P,Q",
                   help="A-ColViT gate patterns: own, all, a kept ratio (0.5), or 2*depth bits "
                        f"(default {','.join(DEFAULT_GATES)})")
    p.add_argument("--gate-modes", default="model", metavar="A,B",
                   help="modes in which every gate pattern is measured (others: own decisions; default model)")
    p.add_argument("--rounds", type=int, default=50, help="timed rounds (one call of every case each; default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    p.add_argument("--batch", type=int, default=8, help="throughput mode: images per call (default 8)")
    p.add_argument("--order", choices=("shuffle", "rotate", "fixed"), default="shuffle",
                   help="order of the cases within a round (default shuffle, seeded)")
    p.add_argument("--seed", type=int, default=0, help="seed of the order and of random-weight models")
    p.add_argument("--burst", type=int, default=1, metavar="N",
                   help="calls per case per round: the first untimed (it reloads what the other engines evicted "
                        "from the caches), the rest timed: warm-cache steady state, still interleaved (default 1)")
    p.add_argument("--gap-ms", type=float, default=2.0,
                   help="pause between calls so thread pools stop spinning (default 2 ms, untimed)")
    p.add_argument("--artifacts", default=DEFAULT_ARTIFACTS, metavar="DIR",
                   help="where exported/quantized/compiled artifacts are cached (default "
                        f"{DEFAULT_ARTIFACTS}, git-ignored)")
    p.add_argument("--profile", action="store_true",
                   help="after timing, profile each CPU engine's model call (OpenVINO performance counters, ONNX "
                        "Runtime's profiler, torch.profiler): time per layer type, printed and in the JSON")
    p.add_argument("--json", dest="json_out", metavar="OUT.json", help="write the latency result here")
    p.add_argument("--no-gpu", action="store_true", help="do not add GPU cases even when CUDA is present")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _threads(text: str) -> int:
    try:
        return thread_count(text)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"--threads {text}: {exc}") from None


def run(args) -> int:
    # deferred: the suite and its models need the bench and export extras (tinct.cli)
    from tinct.benchmarks import env as envmod
    from tinct.benchmarks.latency.artifacts import ModelStore, torch_available
    from tinct.benchmarks.latency.output import markdown_table, result_document, write_json
    from tinct.benchmarks.latency.patterns import gate_pattern
    from tinct.benchmarks.latency.plan import parse_list, plan_cases
    from tinct.benchmarks.latency.ratios import add_efficiency, add_ratios, add_skipping
    from tinct.benchmarks.profile import profile_table
    from tinct.runtime.errors import TinctError
    from tinct.runtime.timing import run_cases

    try:
        models = parse_list(args.models, what="model")
        backends = parse_list(args.backends, ("pytorch", "onnxruntime", "openvino", "tensorrt"), "backend")
        precisions = parse_list(args.precisions, PRECISIONS, "precision")
        threads = [_threads(t) for t in parse_list(args.threads, what="thread count")]
        modes = parse_list(args.modes, MODES, "mode")
        gate_modes = parse_list(args.gate_modes, MODES, "mode")
        gates = parse_list(args.gates, what="gate pattern")
        for g in gates:
            gate_pattern(g, 12)
    except ValueError as exc:
        raise TinctError(str(exc)) from None
    from tinct.models.registry import REGISTRY

    unknown = [m for m in models if m not in REGISTRY]
    if unknown:
        raise TinctError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(REGISTRY))}")
    if not models or not modes or not threads or any(t < 1 for t in threads) or args.rounds < 1 or args.batch < 1:
        raise TinctError("need at least one model, mode, thread count >= 1, --rounds >= 1 and --batch >= 1")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    env = envmod.capture()
    store = ModelStore(args.artifacts, seed=args.seed, log=log)
    cases = plan_cases(store, models, backends, precisions, threads, modes, gates, args.batch,
                       gpu=False if args.no_gpu else None, gate_modes=gate_modes,
                       profile=args.profile)
    notes = []
    weights = {m: store.weights_label(m) for m in models}
    for m, w in weights.items():
        if w == RANDOM_FLAG:
            notes.append(f"{m}: no weights/{m}.safetensors here -> {RANDOM_FLAG}: a seeded random init of the "
                         "same architecture; A-ColViT 'own' decisions of random weights are not the trained ones")
            log(f"latency: {m}: {RANDOM_FLAG}")
    if not torch_available():
        notes.append("torch is not installed: no PyTorch eager reference; speedup_vs_eager is null")
    log(f"latency: {len(cases)} cases, {args.warmup} warm-up + {args.rounds} timed rounds, order {args.order}"
        + (f", bursts of {args.burst} (first untimed)" if args.burst > 1 else ""))
    run = run_cases(cases, rounds=args.rounds, warmup=args.warmup, order=args.order, seed=args.seed,
                    gap_s=args.gap_ms / 1e3, progress=not args.no_progress, log=log, burst=args.burst)
    envmod.finish(env)
    add_ratios(run.results)
    add_skipping(run.results)
    add_efficiency(run.results, log=log)
    config = {k: getattr(args, k) for k in ("models", "backends", "precisions", "threads", "modes", "gates",
                                            "gate_modes", "rounds", "warmup", "batch", "order", "seed", "gap_ms", "burst",
                                            "artifacts", "profile")}
    doc = result_document(run, env, config, notes, weights)
    for n in notes:
        print(f"note: {n}")
    print(f"machine: {env.get('cpu_line', env.get('cpu'))}, {env.get('cpu_count')} logical cores")
    print(markdown_table(run.results, run.skipped, run.failed))
    if args.profile:
        print("\nWhere the time goes (share of the profiled model call per layer type; "
              "docs/performance.md explains the categories):\n")
        print(profile_table(run.results))
    la, lb = env.get("loadavg_start"), env.get("loadavg_end")
    if la and lb:
        print(f"\nload average start {la[0]:.2f}, end {lb[0]:.2f} (cpu count {env.get('cpu_count')})")
    if args.json_out:
        write_json(doc, args.json_out)
        print(f"wrote {args.json_out}")
    return 0 if run.results else 1
