"""Does skipping sub-layers save time? A-ColViT-T with forced gate patterns on ONNX Runtime,
OpenVINO and PyTorch eager (FP32, one thread, batch 1), interleaved round-robin in one process.

    python -m tinct.export.measure_skipping [--seconds 60] [--threads 1] [--model SOURCE]

Gates are forced through the model's own gate Linears (weights 0, biases +-8), so the exported
graph is the ordinary dynamic one (one ``If`` per sub-layer) deciding as it would for a trained
model. Patterns keep all / about half / about 30 % of the sub-layer MACs, spread evenly over the
blocks. The all-on graph is exported once (with the parity check); the other patterns are the same
graph with the gate initializers replaced, each checked again against its PyTorch model.
Prints a markdown table: median ms [IQR] and the ratio to all-on per engine.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np

PATTERNS = {"all on": 1.0, "half": 0.5, "30 % kept": 0.3}
FORCE_LOGIT = 8.0


def sublayer_macs(cfg) -> tuple[int, int]:
    """MACs per block of (attention, MLP) for the A-ColViT token count (grid^2 + policy token)."""
    n, d = cfg.grid ** 2 + 1, cfg.embed_dim
    hidden = int(d * cfg.mlp_ratio)
    return n * 4 * d * d + 2 * n * n * d, 2 * n * d * hidden


def _spread(k: int, depth: int, offset: float = 0.0) -> set[int]:
    return {int((i + offset) * depth / k) % depth for i in range(k)} if k else set()


def gate_pattern(cfg, fraction: float) -> list[list[bool]]:
    """[depth][2] keeping close to ``fraction`` of the blocks' MACs, spread evenly over depth."""
    a, m = sublayer_macs(cfg)
    depth = cfg.depth
    best = min(((na, nm) for na in range(depth + 1) for nm in range(depth + 1)),
               key=lambda p: (abs((p[0] * a + p[1] * m) / (depth * (a + m)) - fraction), -p[0]))
    keep_a, keep_m = _spread(best[0], depth), _spread(best[1], depth, 0.5)
    return [[i in keep_a, i in keep_m] for i in range(depth)]


def kept_mac_fraction(cfg, gates) -> float:
    a, m = sublayer_macs(cfg)
    return sum(ga * a + gm * m for ga, gm in gates) / (cfg.depth * (a + m))


def forced(model, gates):
    """A copy of an A-ColViT whose gate Linears always decide ``gates``."""
    import torch

    m = copy.deepcopy(model).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, (blk, g) in enumerate(zip(m.blocks, gates)):
            head = blk.layer_select.mlp_head
            # Tiny distinct weights: identical initializers would be merged by the exporter's optimizer,
            # and the gate initializers of every block must stay separate to be replaced.
            head.weight.copy_(1e-6 * torch.randn(head.weight.shape, generator=gen))
            logit = FORCE_LOGIT + 0.01 * i
            head.bias.copy_(torch.tensor([logit if k else -logit for k in g]))
    return m


def reweighted(onnx_path: Path, model, out: Path) -> Path:
    """The exported graph with its gate Linear initializers taken from ``model``."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(onnx_path))
    state = model.state_dict()
    wanted = {k for k in state if ".layer_select." in k}
    for init in proto.graph.initializer:
        key = init.name.removeprefix("model.")
        if key in wanted:
            init.CopyFrom(numpy_helper.from_array(state[key].numpy(), init.name))
            wanted.discard(key)
    if wanted:
        raise RuntimeError(f"gate initializers not found in {onnx_path}: {sorted(wanted)[:3]}")
    onnx.save_model(proto, str(out))
    return out


def build_variants(base, workdir: Path, x_check: np.ndarray) -> list[dict]:
    from tinct.export import parity
    from tinct.export.onnx_export import export_onnx

    variants, first = [], None
    for label, fraction in PATTERNS.items():
        gates = gate_pattern(base.cfg, fraction)
        model = forced(base, gates)
        path = workdir / f"{label.split()[0]}.onnx"
        if first is None:
            first = export_onnx(model, path, gating="dynamic", model_name="acolvit-tiny-forced")
        else:
            reweighted(first, model, path)
        report = parity.check_parity(parity.onnx_predictor(path), parity.torch_reference(model), x=x_check,
                                     what=label)
        variants.append({"label": label, "gates": gates, "model": model, "path": path,
                         "macs": kept_mac_fraction(base.cfg, gates), "parity": report.max_abs})
    return variants


def engines(variant: dict, x: np.ndarray, threads: int) -> dict:
    """name -> zero-argument callable running one batch-1 inference."""
    import onnxruntime as ort
    import openvino as ov
    import torch

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(variant["path"]), so, providers=["CPUExecutionProvider"])
    core = ov.Core()
    ov_model = core.read_model(str(variant["path"]))
    variant["ov_ifs"] = sum(op.get_type_name() == "If" for op in ov_model.get_ordered_ops())
    compiled = core.compile_model(ov_model, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                                    "INFERENCE_PRECISION_HINT": "f32",
                                                    "PERFORMANCE_HINT": "LATENCY"})
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")
    variant["ov_precision"] = precision.to_string() if hasattr(precision, "to_string") else str(precision)
    request = compiled.create_infer_request()
    xt = torch.from_numpy(x)
    model = variant["model"]

    def run_torch():
        with torch.inference_mode():
            return model(xt).numpy()

    fns = {"onnxruntime": lambda: sess.run(["ab"], {"x": x})[0],
           "openvino": lambda: request.infer({0: x})[compiled.output(0)],
           "eager": run_torch}
    ref = fns["onnxruntime"]()
    variant["ov_vs_ort"] = float(np.abs(fns["openvino"]() - ref).max())
    variant["eager_vs_ort"] = float(np.abs(fns["eager"]() - ref).max())
    return fns


def measure(variants: list[dict], x: np.ndarray, *, threads: int = 1, seconds: float = 60.0,
            warmup: int = 3, max_rounds: int = 300) -> dict:
    """Round-robin over every (variant, engine); -> {(label, engine): [ms, ...]}."""
    import torch

    torch.set_num_threads(threads)
    configs = [(v["label"], name, fn) for v in variants for name, fn in engines(v, x, threads).items()]
    for _ in range(warmup):
        for _, _, fn in configs:
            fn()
    times = {(label, name): [] for label, name, _ in configs}
    deadline = time.perf_counter() + seconds
    for _ in range(max_rounds):
        for label, name, fn in configs:
            t0 = time.perf_counter()
            fn()
            times[(label, name)].append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() > deadline:
            break
    return times


def table(variants: list[dict], times: dict) -> str:
    names = ["onnxruntime", "openvino", "eager"]
    head = ("| gates | kept sub-layers | kept block MACs | "
            + " | ".join(f"{n} ms [IQR] | ratio" for n in names) + " |")
    lines = [head, "|" + "---|" * (3 + 2 * len(names))]
    base = {n: float(np.median(times[(variants[0]["label"], n)])) for n in names}
    for v in variants:
        cells = []
        for n in names:
            t = np.asarray(times[(v["label"], n)])
            q1, med, q3 = np.percentile(t, [25, 50, 75])
            cells += [f"{med:.1f} [{q1:.1f}–{q3:.1f}]", f"{med / base[n]:.2f}"]
        kept = sum(map(sum, v["gates"]))
        lines.append(f"| {v['label']} | {kept}/{2 * len(v['gates'])} | {100 * v['macs']:.0f} % | "
                     + " | ".join(cells) + " |")
    rounds = len(next(iter(times.values())))
    notes = [f"{rounds} interleaved rounds, batch 1, FP32, one real photo with 10 hints."]
    for v in variants:
        notes.append(f"{v['label']}: mask {''.join(f'{a:d}{m:d}' for a, m in v['gates'])}, parity vs torch "
                     f"{v['parity']:.1e}, OpenVINO If ops {v['ov_ifs']} ({v['ov_precision']}), "
                     f"|OV-ORT| {v['ov_vs_ort']:.1e}, |eager-ORT| {v['eager_vs_ort']:.1e}")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tinct.export.measure_skipping", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="A-ColViT source (default: random acolvit-tiny, depth 12)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60.0, help="time spent in the round-robin")
    args = ap.parse_args(argv)

    import torch

    from tinct.export import parity
    from tinct.models import create_model

    if args.model:
        from tinct.models.checkpoint import load_model

        base = load_model(args.model)
    else:
        torch.manual_seed(0)
        base = create_model("acolvit-tiny").eval()
    if not hasattr(base, "forward_with_gates"):
        raise SystemExit("measure_skipping needs an A-ColViT model")
    x_all = parity.parity_inputs()
    with tempfile.TemporaryDirectory(prefix="tinct-skip-") as d:
        t0 = time.perf_counter()
        variants = build_variants(base, Path(d), x_all[::5])
        print(f"exported {len(variants)} variants in {time.perf_counter() - t0:.0f} s", flush=True)
        x = np.ascontiguousarray(x_all[len(x_all) // 3:len(x_all) // 3 + 1])  # the first photo, 10 hints
        times = measure(variants, x, threads=args.threads, seconds=args.seconds)
        print(table(variants, times))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
