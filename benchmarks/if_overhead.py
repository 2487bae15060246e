"""What an ONNX ``If`` costs on each engine: A-ColViT's conditional graph against the same graph straight-line.

    python -m tinct.benchmarks.if_overhead --model acolvit-tiny-0.5 --threads 1 --rounds 30 \\
        --json docs/data/if-overhead-zen4.json

For gate patterns all off, half (the ``0.5`` pattern of ``tinct bench latency --gates``) and all on, two graphs
of the same FP32 export, batch 1, one input (a fixture photo, 10 hints), timed round-robin by the latency
scheduler: the ``If`` graph with every condition made a graph input (so the pattern is chosen, not decided) and
the straight-line graph of the chosen branches (each ``If`` replaced by its branch's nodes: what OpenVINO makes
of a pattern-specialized graph, :mod:`tinct.runtime.backends.openvino_gates`). Their difference over the number of
``If`` ops is the cost of one ``If``. A micro case repeats it with one-op bodies (24 ``If`` of one Mul / Identity
on A-ColViT-T's token tensor) against the 24 Muls alone.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tinct.benchmarks import env as envmod
from tinct.benchmarks.latency.inputs import model_inputs
from tinct.benchmarks.latency.patterns import gate_pattern
from tinct.quantization.conditional import if_nodes
from tinct.runtime.catalog import prebuilt_model
from tinct.runtime.errors import TinctError, thread_count
from tinct.runtime.timing import Case, Timed, run_cases

KIND = "if-overhead"


def with_condition_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each ``If``'s condition replaced by a bool graph input ``cond_<k>`` (topological order)."""
    m = copy.deepcopy(model)
    for k, node in enumerate(if_nodes(m)):
        m.graph.input.append(helper.make_tensor_value_info(f"cond_{k}", TensorProto.BOOL, []))
        node.input[0] = f"cond_{k}"
    return m


def straight_line(model: onnx.ModelProto, pattern) -> onnx.ModelProto:
    """``model`` with each ``If`` replaced by the nodes of the branch ``pattern`` picks (names are unique in a
    tinct export, node names get the ``If``'s as prefix; a branch's output is renamed to the ``If``'s)."""
    m = copy.deepcopy(model)
    ifs = if_nodes(m)
    if len(ifs) != len(pattern):
        raise TinctError(f"{len(ifs)} If nodes, a pattern of {len(pattern)}")
    chosen = dict(zip((id(n) for n in ifs), pattern))
    nodes = []
    for node in m.graph.node:
        if node.op_type != "If":
            nodes.append(node)
            continue
        branch = "then_branch" if chosen[id(node)] else "else_branch"
        body = next(a.g for a in node.attribute if a.name == branch)
        rename = {o.name: n for o, n in zip(body.output, node.output)}
        for b in body.node:
            b = copy.deepcopy(b)
            b.input[:] = [rename.get(i, i) for i in b.input]
            b.output[:] = [rename.get(o, o) for o in b.output]
            b.name = f"{node.name}/{b.name}"  # node names repeat across branches
            nodes.append(b)
        m.graph.initializer.extend(body.initializer)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return m


def micro(n: int = 24, tokens: int = 197, dim: int = 192) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(``n`` chained ``If`` of one Mul / Identity with condition inputs, the ``n`` Muls alone)."""
    shape = [1, tokens, dim]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    if_nodes_, mul_nodes, inits, conds, cur = [], [], [], [], "x"
    for k in range(n):
        w = numpy_helper.from_array(np.full((1,), 1.0001, np.float32), f"w{k}")
        then = helper.make_graph([helper.make_node("Mul", [cur, f"w{k}"], [f"t{k}"])], f"then{k}", [],
                                 [helper.make_tensor_value_info(f"t{k}", TensorProto.FLOAT, shape)], initializer=[w])
        other = helper.make_graph([helper.make_node("Identity", [cur], [f"e{k}"])], f"else{k}", [],
                                  [helper.make_tensor_value_info(f"e{k}", TensorProto.FLOAT, shape)])
        if_nodes_.append(helper.make_node("If", [f"cond_{k}"], [f"y{k}"], then_branch=then, else_branch=other))
        mul_nodes.append(helper.make_node("Mul", [cur, f"w{k}"], [f"y{k}"]))
        inits.append(w)
        conds.append(helper.make_tensor_value_info(f"cond_{k}", TensorProto.BOOL, []))
        cur = f"y{k}"
    out = helper.make_tensor_value_info(cur, TensorProto.FLOAT, shape)
    opset = [helper.make_opsetid("", 17)]
    return (helper.make_model(helper.make_graph(if_nodes_, "ifs", [x, *conds], [out]), opset_imports=opset),
            helper.make_model(helper.make_graph(mul_nodes, "muls", [x], [out], initializer=inits),
                              opset_imports=opset))


def _runner(model: onnx.ModelProto, backend: str, threads: int, feed: dict, tmp: Path, name: str):
    """A call of ``model`` on ``feed`` (batch 1, FP32) with the engine's own session, no tinct wrapper."""
    path = tmp / f"{name}.onnx"
    onnx.save(model, str(path))
    if backend == "onnxruntime":
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return lambda: sess.run(None, feed)
    import openvino as ov

    core = ov.Core()
    m = core.read_model(str(path))
    m.reshape({i: list(feed[i.get_any_name()].shape) for i in m.inputs})
    compiled = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                                              "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    return lambda: request.infer(feed)


def measure(model: str = "acolvit-tiny-0.5", threads: int = 1, rounds: int = 30, warmup: int = 5,
            backends=("onnxruntime", "openvino"), tmp: Path | None = None) -> dict:
    environment = envmod.capture()
    src = onnx.load(str(prebuilt_model(model)))
    n = len(if_nodes(src))
    if not n:
        raise TinctError(f"{model}: its export has no If nodes (an A-ColViT with dynamic gating has)")
    depth = n // 2
    x = model_inputs(1)
    conditional = with_condition_inputs(src)
    patterns = {"off": [False] * n, "0.5": [bool(b) for pair in gate_pattern("0.5", depth) for b in pair], "on": [True] * n}
    mic_if, mic_plain = micro(n)
    xt = np.random.default_rng(0).standard_normal((1, 197, 192)).astype(np.float32)
    cases, meta = [], {}
    tmpdir = Path(tmp or tempfile.mkdtemp(prefix="tinct-if-"))

    def case(backend, label, variant, make):
        c = Case(label, backend, "fp32", threads, "model", variant)
        c.setup = lambda: Timed(call=make())
        cases.append(c)

    for be in backends:
        for pname, bits in patterns.items():
            feed = {src.graph.input[0].name: x, **{f"cond_{k}": np.array(b) for k, b in enumerate(bits)}}
            meta[(be, pname)] = {"kept": sum(bits) / n}
            case(be, f"{model} If", pname, lambda be=be, feed=feed, p=pname: _runner(conditional, be, threads, feed,
                                                                                     tmpdir, f"if-{p}"))
            case(be, f"{model} straight", pname,
                 lambda be=be, bits=bits, p=pname: _runner(straight_line(src, bits), be, threads,
                                                           {src.graph.input[0].name: x}, tmpdir, f"straight-{p}"))
        for flag in (False, True):
            feed = {"x": xt, **{f"cond_{k}": np.array(flag) for k in range(n)}}
            case(be, "micro If", "mul" if flag else "identity",
                 lambda be=be, feed=feed, f=flag: _runner(mic_if, be, threads, feed, tmpdir, f"micro-if-{f}"))
        case(be, "micro straight", "mul", lambda be=be: _runner(mic_plain, be, threads, {"x": xt}, tmpdir, "micro"))
    run = run_cases(cases, rounds=rounds, warmup=warmup, gap_s=0.002)
    envmod.finish(environment)
    med = {(e["backend"], e["model_name"], e.get("variant") or ""): e for e in run.results}
    rows = []
    for be in backends:
        for pname in patterns:
            a, b = med.get((be, f"{model} If", pname)), med.get((be, f"{model} straight", pname))
            if a and b:
                rows.append(_row(be, f"{model}, gates {pname}", meta[(be, pname)]["kept"], a, b, n))
        b = med.get((be, "micro straight", "mul"))
        for body in ("identity", "mul"):
            a = med.get((be, "micro If", body))
            if a and b:
                rows.append(_row(be, f"micro: {n} If of one {body.capitalize()}", None, a, b, n))
    return {"kind": KIND, "model": model, "threads": threads, "rounds": rounds, "if_ops": n,
            "environment": environment, "rows": rows, "results": run.results, "skipped": run.skipped,
            "command": f"python -m tinct.benchmarks.if_overhead --model {model} --threads {threads} --rounds {rounds}"}


def _row(backend, what, kept, a, b, n) -> dict:
    over = a["median_ms"] - b["median_ms"]
    return {"backend": backend, "graph": what, "kept": kept, "if_ms": round(a["median_ms"], 3),
            "if_iqr_ms": round(a.get("iqr_ms", 0), 3), "straight_ms": round(b["median_ms"], 3),
            "straight_iqr_ms": round(b.get("iqr_ms", 0), 3), "overhead_ms": round(over, 3),
            "us_per_if": round(over / n * 1e3, 1), "if_over_straight": round(a["median_ms"] / b["median_ms"], 3)}


def markdown(doc: dict) -> str:
    lines = ["| engine | graph | kept | If graph ms (IQR) | straight-line ms (IQR) | If / straight | µs per If |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        kept = "–" if r["kept"] is None else f"{r['kept']:.2f}"
        lines.append(f"| {r['backend']} | {r['graph']} | {kept} | {r['if_ms']:.2f} ({r['if_iqr_ms']:.2f}) | "
                     f"{r['straight_ms']:.2f} ({r['straight_iqr_ms']:.2f}) | {r['if_over_straight']:.2f}x | "
                     f"{r['us_per_if']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinct.benchmarks.if_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="acolvit-tiny-0.5", help="a shipped A-ColViT (default acolvit-tiny-0.5)")
    p.add_argument("--threads", type=thread_count, default=1)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", metavar="OUT.json")
    a = p.parse_args(argv)
    if a.rounds < 1 or a.warmup < 0:
        p.error("--rounds must be >= 1 and --warmup >= 0")
    try:
        doc = measure(a.model, a.threads, a.rounds, a.warmup)
    except TinctError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"machine: {doc['environment'].get('cpu_line', doc['environment'].get('cpu'))}")
    print(markdown(doc))
    if a.json:
        doc["command"] += f" --json {a.json}"
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
