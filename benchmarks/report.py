"""``tinct bench report RESULTS.json... -o DIR``: Markdown + self-contained HTML + the JSON behind them.

Inputs are accuracy results (:mod:`benchmarks.accuracy`) and latency results, in any order.

Latency JSON schema (written by the latency suite; a bare list of entries is accepted too)::

    {"schema": "tinct.bench.latency/1", "kind": "latency",
     "environment": {...},                      # free-form, as in accuracy results
     "results": [{"model": "icolorit-tiny",     # registry name or artifact stem
                  "backend": "onnxruntime",      # pytorch | onnxruntime | openvino | tensorrt | ...
                  "precision": "fp32",           # fp32 | fp16 | bf16 | int8
                  "threads": 1,                  # intra-op threads (null on GPU)
                  "median_ms": 30.2,             # batch-1 224x224 latency, median over runs
                  "iqr_ms": 0.4,                 # inter-quartile range of the runs
                  # optional: "device", "batch", "runs", "mean_ms", "p90_ms",
                  #           "kept_ratio" (A-ColViT: fraction of blocks kept, 0..1), "gmacs"
                 }, ...]}

Outputs in DIR: ``report.md`` (plots as PNG files next to it), ``report.html`` (the same, plots
embedded as base64 PNG, no external references) and ``report.json`` (every number shown).
Tables always keep "paper: their weights and hardware" and "tinct: our weights and hardware" apart.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from tinct.benchmarks import papers
from tinct.benchmarks.gate import load_result
from tinct.benchmarks.metrics import METRICS
from tinct.runtime.errors import TinctError

PAPER_LABEL = "paper: their weights and hardware"
TINCT_LABEL = "tinct: our weights and hardware"
METRIC_TITLES = {"psnr": "PSNR (dB, higher is better)", "bpsnr": "B-PSNR (dB, higher is better)",
                 "pev": "PEV (lower is better)", "ssim": "SSIM (higher is better)",
                 "ciede2000": "CIEDE2000 (lower is better)", "lpips": "LPIPS-VGG (lower is better)",
                 "lpips_alex": "LPIPS-Alex (lower is better)"}


def _artifact_label(res: dict) -> str:
    a = res.get("artifact", {}) or {}
    name = a.get("model") or a.get("path") or "?"
    name = Path(str(name)).name  # a checkpoint or artifact path -> its file name
    extra = [str(a[k]) for k in ("backend", "precision") if a.get(k)]
    return f"{name} ({', '.join(extra)})" if extra else str(name)


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab} #{seen[lab]}")
    return out


def _fmt(v, digits=2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _md_table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- data

def collect(paths: list[str | Path]) -> dict:
    accuracy, latency, envs = [], [], []
    for p in paths:
        res = load_result(p)
        envs.append({"file": str(p), "kind": res["kind"], "environment": res.get("environment", {})})
        if res["kind"] == "accuracy":
            accuracy.append((str(p), res))
        else:
            for e in res.get("results", []):
                if "median_ms" not in e:
                    raise TinctError(f"{p}: latency entry without 'median_ms': {e}")
                latency.append({**e, "file": str(p)})
    labels = _unique([_artifact_label(r) for _, r in accuracy])
    acc = []
    for label, (path, res) in zip(labels, accuracy):
        acc.append({"label": label, "file": path, "artifact": res.get("artifact", {}),
                    "dataset": res.get("dataset", {}), "counts": res.get("counts"),
                    **{m: res[m] for m in (*METRICS, "lpips", "lpips_alex") if m in res},
                    "gray_baseline_psnr": res.get("gray_baseline_psnr")})
    return {"environments": envs, "accuracy": acc, "latency": latency,
            "papers": {"accuracy": papers.ACCURACY, "speed": papers.SPEED, "hardware": papers.HARDWARE,
                       "not_sourced": papers.NOT_SOURCED}}


def paper_comparison(data: dict) -> list[dict]:
    """Rows pairing a tinct PSNR with the papers' number for the same model, k and dataset."""
    rows = []
    for a in data["accuracy"]:
        model = a["artifact"].get("model")
        ds = a["dataset"].get("name")
        for r in papers.accuracy_rows(ds):
            if r["model"] != model:
                continue
            for k, pv in sorted(r["psnr"].items()):
                tv = a.get("psnr", {}).get(str(k))
                if tv is not None:
                    rows.append({"tinct": a["label"], "paper_row": r["label"], "source": r["source"], "k": k,
                                 "paper_psnr": pv, "tinct_psnr": tv, "delta": tv - pv})
    return rows


# ----------------------------------------------------------------------------- plots

def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def plot_psnr_vs_hints(data: dict) -> bytes | None:
    if not data["accuracy"]:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted({int(k) for a in data["accuracy"] for k in a.get("psnr", {})})
    # The papers' curves are drawn whatever our dataset is, labelled with theirs (ctest10k).
    paper_rows = list(papers.ACCURACY)
    ks = sorted(set(ks) | {k for r in paper_rows for k in r["psnr"]})
    pos = {k: i for i, k in enumerate(ks)}  # evenly spaced, as iColoriT Fig. 5
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for a in data["accuracy"]:
        pts = sorted((int(k), v) for k, v in a.get("psnr", {}).items())
        ax.plot([pos[k] for k, _ in pts], [v for _, v in pts], marker="o",
                label=f"tinct: {a['label']} [{a['dataset'].get('name')}]")
    for r in paper_rows:
        pts = sorted(r["psnr"].items())
        ax.plot([pos[k] for k, _ in pts], [v for _, v in pts], linestyle="--", marker="x",
                label=f"paper: {r['label']} ({r['source']}) [{r['dataset']}]")
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xlabel("number of hints")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("PSNR vs number of hints")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def _lat_label(e: dict) -> str:
    t = e.get("threads")
    return f"{e.get('model')}\n{e.get('backend')}/{e.get('precision')}" + (f"/{t}t" if t is not None else "")


def plot_latency(data: dict) -> bytes | None:
    # One bar per (model, backend, precision): model-only rows, 1 thread when present (stable), the
    # first occurrence when several runs measured the same case. All rows stay in the tables.
    lat = [e for e in data["latency"] if e.get("mode", "model") == "model"]
    if any(e.get("threads") == 1 for e in lat):
        lat = [e for e in lat if e.get("threads") == 1]
    seen, rows = set(), []
    for e in lat:
        key = (e.get("model"), e.get("backend"), e.get("precision"))
        if key not in seen:
            seen.add(key)
            rows.append(e)
    lat = sorted(rows, key=lambda e: (str(e.get("model")), str(e.get("backend")), str(e.get("precision"))))
    if not lat:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(min(24, max(6, 0.45 * len(lat))), 4.6))
    ax.bar(range(len(lat)), [e["median_ms"] for e in lat], yerr=[e.get("iqr_ms") or 0 for e in lat], capsize=2)
    ax.set_xticks(range(len(lat)), [_lat_label(e) for e in lat], fontsize=6, rotation=60, ha="right")
    ax.set_ylabel("median latency (ms), bar = IQR")
    threads = sorted({e.get("threads") for e in lat}, key=str)
    ax.set_title(f"model-only latency per backend / precision (batch 1, 224x224, threads {threads})")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_kept_ratio(data: dict) -> bytes | None:
    # model-only rows (end-to-end and session rows add pre/post costs that do not scale with skipping);
    # 1-thread rows when present (2-thread timings swing with the neighbours' load)
    pts = [e for e in data["latency"] if e.get("kept_ratio") is not None and e.get("mode", "model") == "model"]
    if any(e.get("threads") == 1 for e in pts):
        pts = [e for e in pts if e.get("threads") == 1]
    if not pts:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    groups: dict[str, list] = {}
    for e in pts:
        groups.setdefault(f"{e.get('backend')}/{e.get('precision')}/{e.get('threads')}t", []).append(e)
    for name, es in groups.items():
        es = sorted(es, key=lambda e: e["kept_ratio"])
        ax.plot([e["kept_ratio"] for e in es], [e["median_ms"] for e in es], marker="o", label=name)
    ax.set_xlabel("A-ColViT kept ratio (fraction of blocks run)")
    ax.set_ylabel("median latency (ms)")
    ax.set_title("A-ColViT: kept ratio vs latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


# ----------------------------------------------------------------------------- document

def _sections(data: dict) -> list[tuple[str, str, list]]:
    """(title, intro text, [(head, rows)] tables) — shared by Markdown and HTML."""
    secs = []
    env_rows = []
    for e in data["environments"]:
        env = e["environment"]
        env_rows.append([Path(e["file"]).name, e["kind"], env.get("cpu") or env.get("processor") or "-",
                         env.get("cpu_count", "-"), env.get("platform", "-"), env.get("tinct", "-"),
                         env.get("time", "-")])
    secs.append(("Environment", "Where the tinct numbers were measured.",
                 [(["file", "kind", "cpu", "cores", "platform", "tinct", "time"], env_rows)]))

    if data["accuracy"]:
        tables = []
        for m in (*METRICS, "lpips", "lpips_alex"):
            have = [a for a in data["accuracy"] if m in a]
            if not have:
                continue
            ks = sorted({int(k) for a in have for k in a[m]})
            digits = 4 if m in ("ssim", "lpips", "lpips_alex") else 2
            rows = [[a["label"], a["dataset"].get("name", "-"), a["dataset"].get("n_images", "-")]
                    + [_fmt(a[m].get(str(k)), digits) for k in ks] for a in have]
            tables.append((["artifact", "dataset", "images"] + [f"{m}@{k}" for k in ks], rows))
        secs.append((f"Accuracy — {TINCT_LABEL}",
                     "iColoriT protocol (224x224, ground-truth cell-mean hints, per-image metrics averaged).",
                     tables))
    pk = sorted({k for r in papers.ACCURACY for k in r["psnr"]})
    prow = [[r["label"], r["dataset"], r["source"]] + [_fmt(r["psnr"].get(k)) for k in pk]
            + [_fmt(r.get("gmacs"))] for r in papers.ACCURACY]
    hw = "; ".join(f"{p}: {', '.join(f'{k} {v}' for k, v in h.items())}" for p, h in papers.HARDWARE.items())
    secs.append((f"Accuracy — {PAPER_LABEL}", f"Published PSNR (dB). Hardware: {hw}.",
                 [(["model", "dataset", "source"] + [f"psnr@{k}" for k in pk] + ["GMACs"], prow)]))
    comp = paper_comparison(data)
    if comp:
        secs.append(("tinct vs paper (same model, dataset and k)",
                     "Different weights and hardware: the delta shows how far our numbers are from theirs.",
                     [(["tinct", "paper", "source", "k", "paper PSNR", "tinct PSNR", "delta"],
                       [[c["tinct"], c["paper_row"], c["source"], c["k"], _fmt(c["paper_psnr"]),
                         _fmt(c["tinct_psnr"]), f"{c['delta']:+.2f}"] for c in comp])]))
    if data["latency"]:
        rows = [[e.get("model"), e.get("backend"), e.get("precision"), e.get("threads", "-"),
                 _fmt(e["median_ms"]), _fmt(e.get("iqr_ms")), _fmt(e.get("kept_ratio")), e.get("device", "-")]
                for e in data["latency"]]
        secs.append((f"Latency — {TINCT_LABEL}", "Batch 1, 224x224, median over runs.",
                     [(["model", "backend", "precision", "threads", "median ms", "IQR ms", "kept ratio", "device"],
                       rows)]))
    srows = [[s["label"], s["source"], _fmt(s.get("cpu_ms"), 1), _fmt(s.get("gpu_ms"), 1),
              _fmt(s.get("cpu_1thread_img_per_s"), 1), _fmt(s.get("gmacs"))] for s in papers.SPEED]
    secs.append((f"Speed — {PAPER_LABEL}", f"Hardware: {hw}.",
                 [(["model", "source", "CPU ms", "GPU ms", "CPU 1-thread img/s", "GMACs"], srows)]))
    secs.append(("Paper tables not available here", "", [(["not sourced"], [[n] for n in papers.NOT_SOURCED])]))
    return secs


def render_markdown(data: dict, plots: dict[str, bytes]) -> str:
    out = ["# tinct benchmark report", ""]
    for title, intro, tables in _sections(data):
        out += [f"## {title}", ""]
        if intro:
            out += [intro, ""]
        for head, rows in tables:
            out += [_md_table(head, rows), ""]
    if plots:
        out += ["## Plots", ""]
        out += [f"![{name}]({name}.png)\n" for name in plots]
    out += ["Data behind this report: `report.json`.", ""]
    return "\n".join(out)


def render_html(data: dict, plots: dict[str, bytes]) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>tinct benchmark report</title>",
             ("<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:13px;text-align:right}td:first-child,th:first-child{text-align:left}"
             "h2{border-bottom:1px solid #ddd}</style></head><body><h1>tinct benchmark report</h1>")]
    for title, intro, tables in _sections(data):
        parts.append(f"<h2>{e(title)}</h2>")
        if intro:
            parts.append(f"<p>{e(intro)}</p>")
        for head, rows in tables:
            parts.append("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in head) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows]
            parts.append("</table>")
    if plots:
        parts.append("<h2>Plots</h2>")
        for name, png in plots.items():
            b64 = base64.b64encode(png).decode("ascii")
            parts.append(f"<figure><img alt='{e(name)}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption>{e(name)}</figcaption></figure>")
    parts.append("<h2>Data</h2><details><summary>JSON behind this report</summary><pre>"
                 + e(json.dumps(data, indent=1, default=str)) + "</pre></details></body></html>")
    return "\n".join(parts)


def write_report(paths: list[str | Path], out_dir: str | Path) -> dict[str, Path]:
    if not paths:
        raise TinctError("give at least one result JSON")
    data = collect(paths)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = {}
    for name, fn in (("psnr_vs_hints", plot_psnr_vs_hints), ("latency", plot_latency),
                     ("kept_ratio_vs_latency", plot_kept_ratio)):
        png = fn(data)
        if png:
            plots[name] = png
            (out_dir / f"{name}.png").write_bytes(png)
    data["comparison"] = paper_comparison(data)
    files = {"md": out_dir / "report.md", "html": out_dir / "report.html", "json": out_dir / "report.json"}
    files["md"].write_text(render_markdown(data, plots))
    files["html"].write_text(render_html(data, plots))
    files["json"].write_text(json.dumps(data, indent=2, default=str) + "\n")
    return files
