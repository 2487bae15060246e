"""Markdown tables from the result files in ``docs/data``: one renderer per kind of file. Used by
:mod:`tinct.benchmarks.docs`, which finds the blocks to fill and writes the line above each table that says where
and how its files were measured.

Kinds (:func:`kind_of`, from the file's ``schema``/``kind`` or its shape): ``latency`` (``tinct bench latency``),
``accuracy`` (``tinct bench accuracy``), ``color2embed-latency``, ``bf16-patch-embedding``, ``serve-rtt``,
``serve-load`` (``tinct bench load``), ``soak`` (``tinct bench soak``), ``batch-scale``, ``train-speed``
(``tinct train --speed``) and ``if-overhead`` (``python -m tinct.benchmarks.if_overhead``). The suites' own renderers are reused where they exist (latency, soak, load, bf16
patch embedding); the others are here. A renderer takes every file of a block (all of one kind) and the block's
options (unknown options are refused by the caller, from :data:`RENDERERS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tinct.benchmarks import bf16_patch_embedding, if_overhead, load, soak
from tinct.benchmarks.accuracy import SCHEMA as ACCURACY_SCHEMA
from tinct.benchmarks.latency.common import SCHEMA as LATENCY_SCHEMA
from tinct.benchmarks.latency.output import markdown_table as latency_markdown_table
from tinct.benchmarks.profile import profile_table
from tinct.runtime.errors import InputError


@dataclass(frozen=True)
class Source:
    """One result file of a block: its path as the marker names it, its JSON, its link from the Markdown file."""

    path: str
    doc: dict
    link: str

    @property
    def md_link(self) -> str:
        return f"[{Path(self.path).name}]({self.link})"


def kind_of(doc) -> str | None:
    """The kind of a result file (see the module doc), None when it is none of them."""
    if not isinstance(doc, dict):
        return None
    if doc.get("schema") == LATENCY_SCHEMA:
        return "latency"
    if doc.get("schema") == ACCURACY_SCHEMA:
        return "accuracy"
    if doc.get("kind") in ("serve-rtt", "soak", if_overhead.KIND, "browser-latency", "browser-guard"):
        return doc["kind"]
    if doc.get("kind") == "load":
        return "serve-load"
    shapes = (("bf16-patch-embedding", ("rows", "bf16_tinct_over_plain")),
              ("color2embed-latency", ("int8_guard", "results", "size")),
              ("batch-scale", ("ray_init_s", "results")), ("train-speed", ("cases", "bf16_over_fp32")))
    return next((kind for kind, keys in shapes if all(k in doc for k in keys)), None)


# ----------------------------------------------------------------------------- shared helpers

def _table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
                      *("| " + " | ".join(r) + " |" for r in rows)])


def _merge(parts: list[tuple[Source, str]]) -> str:
    """Tables of the same renderer, one per file, as one table with a first column naming each file; lines
    that are not table rows become notes under it, each naming its file."""
    if len(parts) == 1:
        return parts[0][1]
    head, rows, notes = None, [], []
    for src, md in parts:
        lines = md.splitlines()
        tab = [ln for ln in lines if ln.startswith("|")]
        head = head or ["| data " + tab[0], "|---" + tab[1]]
        rows += [f"| {src.md_link} " + ln for ln in tab[2:]]
        notes += [f"{src.md_link}: {ln.strip()}" for ln in lines if ln.strip() and not ln.startswith("|")]
    return "\n\n".join(["\n".join(head + rows), *notes])


def _list_opt(opts: dict, key: str) -> list[str] | None:
    return [v for v in opts[key].split(",") if v] if key in opts else None


def _x(v) -> str:
    return "–" if v is None else f"{v:.2f}×"


def _stat(s: dict | None, digits: int = 1) -> str:
    return "–" if not s else f"{s['median_ms']:.{digits}f} ({s['iqr_ms']:.{digits}f})"


# ----------------------------------------------------------------------------- the simple kinds

def render_soak(sources: list[Source], opts: dict) -> str:
    return _merge([(s, soak.markdown_table(s.doc["results"])) for s in sources])


def render_serve_load(sources: list[Source], opts: dict) -> str:
    return _merge([(s, load.markdown_table(s.doc["results"])) for s in sources])


def render_bf16(sources: list[Source], opts: dict) -> str:
    return _merge([(s, bf16_patch_embedding.markdown(s.doc)) for s in sources])


def _batch_table(doc: dict) -> str:
    base = doc["results"][0]["images_per_s"]
    rows = [[r["runner"], f"{r['workers']} × {r['threads']}", f"{r['wall_s']:.1f}", f"{r['images_per_s']:.2f}",
             f"{r['images_per_s'] / base:.2f}"] for r in doc["results"]]
    mp = doc.get("megapixels") or {}
    note = (f"{doc['photos']} photos (median {mp.get('median')} MP, largest {mp.get('max')} MP), engine "
            f"{Path(doc['engine']).name}; starting the local Ray took {doc['ray_init_s']:.1f} s before the first "
            "Ray run (not in the Ray rows' wall time).")
    return _table(["runner", "workers × threads", "wall s", "images/s", "vs the first row"], rows) + "\n\n" + note


def render_batch(sources: list[Source], opts: dict) -> str:
    return _merge([(s, _batch_table(s.doc)) for s in sources])


def render_train_speed(sources: list[Source], opts: dict) -> str:
    def case(doc, p):
        c = next((c for c in doc["cases"] if c["precision"] == p), None)
        return "not run" if c is None else f"{c['img_s']:.2f} ({c['median_ms']:.0f} ± {c['iqr_ms']:.0f} ms/step)"

    rows = [[s.doc["model"], str(s.doc["batch"]), str(s.doc["threads"]), case(s.doc, "fp32"), case(s.doc, "bf16"),
             _x(s.doc.get("bf16_over_fp32"))] for s in sources]
    head = ["model", "batch", "threads", "FP32 img/s (median ± IQR)", "bf16 autocast img/s (median ± IQR)",
            "bf16 / FP32"]
    return _table(head, rows)


_NAMES = (("pytorch eager", "PyTorch eager"), ("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO"),
          ("fp32", "FP32"), ("int8", "INT8"), ("fp16", "FP16"), ("bf16", "BF16"))


def _pretty(text: str) -> str:
    for raw, nice in _NAMES:
        text = re.sub(rf"\b{raw}\b", nice, text)
    return text


def _c2e_table(doc: dict) -> str:
    guard = {}
    for engine, text in (doc.get("int8_guard") or {}).items():
        m = re.search(r"@tps ([+-]?[\d.]+), @other ([+-]?[\d.]+) dB", text)
        guard[engine] = f"{m.group(1)} / {m.group(2)} dB" if m else text
    rows = []
    for case, r in doc["results"].items():
        dpsnr = next((v for engine, v in guard.items() if case.startswith("colorizer") and case.endswith(engine)), "–")
        rows.append([_pretty(case), _stat(r), _x(r.get("vs_eager")), dpsnr])
    full = "x".join(map(str, doc.get("full_resolution") or []))
    note = (f"{doc.get('weights')}, {doc['size']}² model input, {doc['threads']} threads, {doc['rounds']} interleaved "
            f"rounds; end to end = a {full} photo to a {full} result with the reference's embedding cached. ΔPSNR: "
            "the INT8 guard against its FP32 parent on the validation split, with the photo's own TPS-warped "
            "reference / another photo's.")
    return _table(["case", "median ms (IQR)", "vs eager", "ΔPSNR own / other ref."], rows) + "\n\n" + note


def render_if_overhead(sources: list[Source], opts: dict) -> str:
    return _merge([(s, if_overhead.markdown(s.doc)) for s in sources])


def render_c2e(sources: list[Source], opts: dict) -> str:
    return _merge([(s, _c2e_table(s.doc)) for s in sources])


def render_serve_rtt(sources: list[Source], opts: dict) -> str:
    if len(sources) == 1:
        d = sources[0].doc
        wire, via = d.get("wire", "rgba"), d.get("via", "?")
        rows = [("the same `Session` update in-process (set_hints + preview, no HTTP)", d["in_process"]),
                (f"the update inside the server (set_hints + preview + {wire} preview encoding)", d["server"]),
                (f"round trip in the page, {wire} previews over {via} (sent → drawn)", d["browser"])]
        table = _table(["update", "median ms", "IQR ms", "p90 ms", "n"],
                       [[what, f"{s['median_ms']:.1f}", f"{s['iqr_ms']:.1f}", f"{s['p90_ms']:.1f}", str(s["runs"])]
                        for what, s in rows])
        return table + "\n\n" + _rtt_note(d)
    head = ["data", "previews", "in-process ms (IQR)", "in the server ms (IQR)", "round trip ms (IQR)",
            "round trip / in-process", "model ms: server / in-process", "preview encoding ms"]
    rows = []
    for s in sources:
        d, p = s.doc, s.doc.get("parts") or {}
        model = f"{p['model']['median_ms']:.1f} / {p['in_process_model']['median_ms']:.1f}" if p else "–"
        rows.append([s.md_link, f"{d.get('wire', 'rgba')} over {d.get('via', '?')}", _stat(d["in_process"]),
                     _stat(d["server"]), _stat(d["browser"]), f"{d['ratio']:.2f}×", model,
                     f"{p['encode']['median_ms']:.1f}" if p else "–"])
    return _table(head, rows) + "\n\n" + " ".join(dict.fromkeys(_rtt_note(s.doc, ratio=False) for s in sources))


def _rtt_note(d: dict, ratio: bool = True) -> str:
    size, shown = "x".join(map(str, d["image_size"])), "x".join(map(str, d.get("preview") or []))
    text = f"{d['model']}, {d['threads']} thread(s); a {size} photo shown at {shown}."
    return (f"Round trip / in-process update: {d['ratio']:.2f}×. " if ratio else "") + text


def render_browser_latency(sources: list[Source], opts: dict) -> str:
    head = ["model", "threads", "in the browser: model ms (IQR)", "native: model ms (IQR)", "model: browser / native",
            "post ms: browser / native", "update: browser / native", "cold start ms: download + session"]
    parts = []
    for s in sources:
        rows = [[c["model"] + ("" if c.get("precision", "fp32") == "fp32" else f" {c['precision']}"), str(c["threads"]) + ("" if c["cross_origin_isolated"] else " (not isolated)"),
                 _stat(c["browser_model"]), _stat(c["native_model"]), f"{c['ratio_model']:.2f}×",
                 f"{c['browser_post']['median_ms']:.1f} / {c['native_post']['median_ms']:.1f}", f"{c['ratio_update']:.2f}×",
                 f"{c['cold_start_ms']['download']:.0f} + {c['cold_start_ms']['create']:.0f}"] for c in s.doc["cases"]]
        size = "x".join(map(str, s.doc["image_size"]))
        parts.append((s, _table(head, rows) + f"\n\nA {size} photo; {s.doc['clicks']} clicks, two updates each, the "
                      f"first {s.doc['warmup_updates']} of each side left out; native: ONNX Runtime in-process, same "
                      "threads and preview size."))
    return _merge(parts)


def render_browser_guard(sources: list[Source], opts: dict) -> str:
    head = ["artifact", "precision", "ΔPSNR @1 / @10 / @50 dB", "max abs Δab", "gate agreement", "budget dB", "guard",
            "run in the browser ms (IQR)"]
    rows = []
    for s in sources:
        d, r = s.doc, s.doc["report"]
        delta = " / ".join(f"{r['delta_psnr'][k]:+.3f}" for k in ("1", "10", "50"))
        gates = f"{r['gate_agreement']:.4f}" if r.get("gate_agreement") is not None else "–"
        rows.append([d["artifact"], d["precision"], delta, f"{r['max_ab_err']:.2f}", gates, str(d["budget_db"]),
                     "passed" if d["passed"] else "FAILED", _stat(d["browser_run"])])
    return _table(head, rows) + f"\n\n{sources[0].doc['report']['images']} photos; parent: the native FP32 artifact."


# ----------------------------------------------------------------------------- accuracy

METRICS = {"psnr": ("PSNR", 2), "bpsnr": ("B-PSNR", 2), "pev": ("PEV", 1), "ssim": ("SSIM", 4),
           "ciede2000": ("CIEDE2000", 2), "lpips": ("LPIPS-VGG", 4), "lpips_alex": ("LPIPS-Alex", 4)}


def render_accuracy(sources: list[Source], opts: dict) -> str:
    """One row per file: the model (weights' sha256 prefix), then each metric at each hint count."""
    metrics = _list_opt(opts, "metrics") or ["psnr"]
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise InputError(f"metrics={','.join(bad)}: use {', '.join(METRICS)}")
    counts = sorted({int(k) for s in sources for k in s.doc.get("counts") or []})
    hints = [int(k) for k in _list_opt(opts, "hints") or []] or counts
    head = ["model", "weights", *(f"{METRICS[m][0]} @{k}" for m in metrics for k in hints)]
    rows = []
    for s in sources:
        art = s.doc.get("artifact") or {}
        model = art.get("model") or art.get("path") or "?"
        if art.get("kind") == "engine":
            model += f" ({art.get('backend')} {art.get('precision')})"
        cells = []
        for m in metrics:
            values, digits = s.doc.get(m) or {}, METRICS[m][1]
            cells += [f"{values[str(k)]:.{digits}f}" if values.get(str(k)) is not None else "" for k in hints]
        rows.append(([s.md_link] if len(sources) > 1 else []) + [model, (art.get("source_sha256") or "–")[:8]] + cells)
    notes = []
    sets = {f"{(s.doc.get('dataset') or {}).get('name')}, {(s.doc.get('dataset') or {}).get('n_images')} images"
            for s in sources}
    notes.append("Dataset: " + "; ".join(sorted(sets)) + ".")
    gray = {round(s.doc["gray_baseline_psnr"], 2) for s in sources if s.doc.get("gray_baseline_psnr") is not None}
    if "psnr" in metrics and gray:
        notes.append("Gray baseline (ab = 0): " + " / ".join(f"{g:.2f}" for g in sorted(gray)) + " dB PSNR.")
    return _table((["data"] if len(sources) > 1 else []) + head, rows) + "\n\n" + " ".join(notes)


# ----------------------------------------------------------------------------- latency

ENGINES = {("pytorch", "fp32"): "PyTorch eager FP32", ("onnxruntime", "fp32"): "ONNX Runtime FP32",
           ("onnxruntime", "int8"): "ONNX Runtime INT8 (Q/DQ)", ("onnxruntime", "fp16"): "ONNX Runtime FP16",
           ("openvino", "fp32"): "OpenVINO FP32", ("openvino", "bf16"): "OpenVINO BF16",
           ("openvino", "int8"): "OpenVINO INT8", ("openvino", "int8-bf16"): "OpenVINO INT8, bf16 float ops",
           ("openvino", "fp16"): "OpenVINO FP16", ("tensorrt", "fp16"): "TensorRT FP16",
           ("tensorrt", "int8"): "TensorRT INT8"}


def engine_label(e: dict) -> str:
    label = ENGINES.get((e["backend"], e["precision"]), f"{e['backend']} {e['precision']}")
    return label if e.get("device", "cpu") == "cpu" else f"{label} ({e['device']})"


def _model_label(e: dict) -> str:
    kept = e.get("kept_ratio")
    name = e.get("model_name") or e["model"]
    return name if kept is None else f"{name} (kept {kept:.2f})"


def _workload(e: dict) -> str:
    mode = e.get("mode", "model")
    if mode == "model":
        return "model only, 224²"
    if mode == "throughput":
        return f"throughput, batch {e.get('batch')}"
    size, out = e.get("image_size"), e.get("output_size")
    if not size:
        return mode
    photo = f"{size[0]}×{size[1]} photo"
    if mode == "e2e":
        return f"{photo}, one-shot colorize"
    if out and list(out) != list(size):
        return f"{photo}, {out[0]}×{out[1]} preview update"
    return f"{photo}, full-resolution update"


def _delta_psnr(e: dict | None) -> str:
    fid = (e or {}).get("fidelity") or {}
    if fid.get("delta_psnr10") is None:
        return "–"
    if (e["backend"], e["precision"]) == ("onnxruntime", "fp32") and fid.get("reference") == "ONNX Runtime FP32":
        return "0 (reference)"
    return f"{fid['delta_psnr10']:+.3f}"


_RATIOS = {"eager": ("vs eager", lambda e: _x(e.get("speedup_vs_eager"))),
           "ort": ("vs ORT FP32", lambda e: _x(e.get("speedup_vs_ort_fp32"))),
           "efficiency": ("efficiency", lambda e: "–" if e.get("efficiency") is None else f"{100 * e['efficiency']:.0f} %"),
           "dpsnr": ("ΔPSNR@10 dB", _delta_psnr)}


def _pivot_threads(results: list[dict], opts: dict, digits: int) -> str:
    threads = sorted({e["threads"] for e in results if e.get("threads") is not None})
    rows: dict[tuple, dict] = {}
    for e in results:
        rows.setdefault((_workload(e), _model_label(e), engine_label(e)), {})[e.get("threads")] = e
    show_workload = len({k[0] for k in rows}) > 1
    show_post = any(e.get("post_share") is not None for e in results)
    t0 = threads[0] if threads else None
    wanted = _list_opt(opts, "ratios") or list(_RATIOS)
    if wanted != ["none"] and (bad := [r for r in wanted if r not in _RATIOS]):
        raise InputError(f"ratios={','.join(bad)}: use {', '.join(_RATIOS)} or none")
    ratios = [r for r in wanted if r in _RATIOS
              and any(_RATIOS[r][1](by.get(t0) or {"backend": "", "precision": ""}) != "–" for by in rows.values())]
    head = (["workload"] if show_workload else []) + ["model", "engine"]
    for t in threads:
        head.append(f"{t} thread{'s' if t != 1 else ''} ms (IQR)")
        head += [f"post ({t} t)"] if show_post else []
    head += [_RATIOS[r][0] + ("" if r == "dpsnr" else f" ({t0} t)") for r in ratios]
    out = []
    for (work, model, engine), by in rows.items():
        cells = ([work] if show_workload else []) + [model, engine]
        for t in threads:
            e = by.get(t)
            cells.append("–" if e is None else f"{e['median_ms']:.{digits}f} ({e.get('iqr_ms', 0):.{digits}f})")
            if show_post:
                post = (e or {}).get("stages_median_ms", {}).get("post")
                cells.append("–" if post is None or e.get("post_share") is None
                             else f"{post:.1f} ms ({e['post_share']:.0%})")
        first = by.get(t0) or next(iter(by.values()))
        cells += [_RATIOS[r][1](first) for r in ratios]
        out.append(cells)
    return _table(head, out)


def _pivot_gates(results: list[dict], opts: dict, digits: int) -> str:
    several = len({e.get("threads") for e in results}) > 1
    engines, rows = [], {}
    for e in results:
        col = engine_label(e) + (f" ({e.get('threads')} t)" if several else "")
        engines += [col] if col not in engines else []
        kept = e.get("kept_ratio")
        label = "–" if kept is None else f"{kept:.2f}"
        label += {"all": " (all)", "own": " (own decisions)"}.get(e.get("variant"), "")
        rows.setdefault((e.get("model_name") or e["model"], label), {})[col] = e
    show_model = len({k[0] for k in rows}) > 1
    head = (["model"] if show_model else []) + ["kept", *engines]
    out = [([m] if show_model else []) + [label] + [f"{by[c]['median_ms']:.{digits}f}" if c in by else "–"
                                                     for c in engines] for (m, label), by in rows.items()]
    return _table(head, out)


def _skipping(results: list[dict], path: str) -> str:
    rows = [e for e in results if e.get("skipping_paid") is not None]
    if not rows:
        raise InputError(f"{path}: no A-ColViT entry with its iColoriT in the same run")
    head = ["model", "workload", "engine", "threads", "kept", "ms (IQR)", "iColoriT ms", "speedup", "MAC ratio",
            "speedup / MAC ratio", "specialized calls"]
    out = []
    for e in rows:
        g = e.get("gate_specialization") or {}
        spec = f"{g['hits']}/{g['calls']}" if g.get("calls") else "–"
        out.append([e.get("model_name") or e["model"], _workload(e), engine_label(e), str(e.get("threads")),
                    f"{e['kept_ratio']:.2f}", f"{e['median_ms']:.2f} ({e.get('iqr_ms', 0):.2f})",
                    f"{e['median_ms'] * e['speedup_vs_dense']:.2f}", f"{e['speedup_vs_dense']:.2f}×",
                    f"{e['mac_ratio']:.2f}×", f"{e['skipping_paid']:.2f}", spec])
    return _table(head, out)


def _keep(e: dict, opts: dict) -> bool:
    for key, value in (("models", e.get("model_name") or e["model"]), ("backends", e["backend"]),
                       ("precisions", e["precision"]), ("modes", e.get("mode", "model")),
                       ("threads", str(e.get("threads")))):
        allowed = _list_opt(opts, key)
        if allowed is not None and value not in allowed:
            return False
    return True


def _skipped(skipped: list[dict], opts: dict) -> str:
    """Skipped cases (none of the block's filters excluding them), grouped by reason."""
    by_reason: dict[str, list[str]] = {}
    for e in skipped:
        if e.get("device", "cpu") == "cpu" and _keep(e, opts):
            what = f"{engine_label(e)}" + (f" {e['threads']} t" if e.get("threads") is not None else "")
            by_reason.setdefault(e["reason"], []).append(what)
    return "".join(f"\n\nNot run: {'; '.join(dict.fromkeys(w))}: {r}" for r, w in by_reason.items())


def render_latency(sources: list[Source], opts: dict) -> str:
    """``pivot=threads``: one row per model x engine, a "ms (IQR)" column per thread count, then the ratios at
    the lowest thread count; ``pivot=gates``: one row per A-ColViT gate pattern, one column per engine (median
    ms); ``pivot=skipping``: A-ColViT against the same engine's iColoriT (realized speedup, MAC ratio, their
    quotient); ``pivot=profile``: where the time goes (``--profile`` runs: each layer type's share); no pivot: the suite's
    own table. Filters: models, backends, precisions, modes, threads; ``ratios=`` picks
    the ratio columns (eager, ort, efficiency, dpsnr, or none); ``digits=`` the ms decimals; ``skipped=yes`` lists
    the cases the run skipped, with the reason."""
    pivot = opts.get("pivot", "none")
    if pivot not in ("threads", "gates", "profile", "skipping", "none"):
        raise InputError(f"pivot={pivot}: use threads, gates, profile, skipping or none")
    if opts.get("skipped", "no") not in ("yes", "no"):
        raise InputError(f"skipped={opts['skipped']}: use yes or no")
    digits = opts.get("digits", "2")
    if not digits.isdigit() or int(digits) > 4:
        raise InputError(f"digits={digits}: use 0..4")
    parts = []
    for s in sources:
        results = [e for e in s.doc.get("results") or [] if _keep(e, opts)]
        if not results:
            raise InputError(f"{s.path}: no result matches the block's filters")
        if pivot == "profile":
            md = profile_table(results)
        elif pivot == "skipping":
            md = _skipping(results, s.path)
        elif pivot == "none":
            md = latency_markdown_table(results, s.doc.get("skipped") or (), s.doc.get("failed") or ())
        else:
            md = (_pivot_threads if pivot == "threads" else _pivot_gates)(results, opts, int(digits))
            failed = [f for f in s.doc.get("failed") or [] if _keep({**f, "backend": f.get("backend", "")}, opts)]
            if failed:
                md += "\n\nFAILED the fidelity check (not timed): " + "; ".join(
                    f"{f.get('model')} {engine_label(f)} {f.get('threads')} t: {f.get('reason')}" for f in failed)
            if opts.get("skipped", "no") == "yes":
                md += _skipped(s.doc.get("skipped") or [], opts)
        parts.append((s, md))
    return _merge(parts)


# kind -> (renderer, the options it takes)
RENDERERS = {
    "latency": (render_latency, {"pivot", "models", "backends", "precisions", "modes", "threads", "ratios", "digits",
                                 "skipped"}),
    "accuracy": (render_accuracy, {"metrics", "hints"}),
    "color2embed-latency": (render_c2e, set()),
    "bf16-patch-embedding": (render_bf16, set()),
    "serve-rtt": (render_serve_rtt, set()),
    "browser-latency": (render_browser_latency, set()),
    "browser-guard": (render_browser_guard, set()),
    "serve-load": (render_serve_load, set()),
    "soak": (render_soak, set()),
    "batch-scale": (render_batch, set()),
    "train-speed": (render_train_speed, set()),
    if_overhead.KIND: (render_if_overhead, set()),
}
