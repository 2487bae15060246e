"""`tinct info ARTIFACT`: metadata, tensors, precision, If-node count and sha256 of an artifact."""

from __future__ import annotations

from pathlib import Path

NAME = "info"
EXTRA = "runtime"  # the extra that installs what this command needs

def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="show an artifact's metadata and tensors")
    p.add_argument("artifact")
    p.add_argument("--backend", default=None, help="force a backend (e.g. openvino for a .onnx)")
    p.set_defaults(func=run)


def if_nodes_in_file(path: str | Path):
    """Number of ONNX ``If`` nodes (nested ones included), or None when ``onnx`` is not installed."""
    try:
        import onnx
    except ImportError:
        return None

    from tinct.runtime.artifact import count_if_nodes as count_in_graph

    return count_in_graph(onnx.load(str(path), load_external_data=False).graph)


def verification_lines(meta, build: dict) -> list[str]:
    """Where this artifact's accuracy was verified (guard, bf16 self-check, auto), and auto's table."""
    import json

    from tinct.runtime.cpu import describe_cpu

    out = []
    guard = (meta.extra or {}).get("guard") if isinstance(meta.extra, dict) else None
    if isinstance(guard, dict) and isinstance(guard.get("verified_on"), dict):
        v = guard["verified_on"]
        libs = ", ".join(f"{k} {v[k]}" for k in ("onnxruntime", "openvino") if k in v)
        d10 = (guard.get("delta_psnr") or {}).get("10")
        out.append(f"verified   guard on {describe_cpu(v.get('cpu') or {})} ({libs})"
                   + (f": ΔPSNR@10 {d10:+.3f} dB" if isinstance(d10, (int, float)) else ""))
    for key, what in (("verified_on", "bf16 self-check"), ("auto_verified_on", "auto")):
        if build.get(key):
            try:
                rec = json.loads(build[key])
                cpu_rec = rec.get("cpu", rec)
                out.append(f"verified   {what} on {describe_cpu(cpu_rec)}")
            except (ValueError, AttributeError):
                out.append(f"verified   {what}: unreadable record")
    if build.get("auto_candidates"):
        try:
            from tinct.deploy.auto import format_table

            table = json.loads(build["auto_candidates"])
            out.append(f"auto       chose {build.get('auto_choice')} at {build.get('auto_threads')} thread(s):")
            out += ["  " + r for r in format_table(table).splitlines()]
        except (ValueError, ImportError, KeyError, TypeError):
            out.append(f"auto       chose {build.get('auto_choice')} (candidate table unreadable)")
    return out


def run(args) -> int:
    from tinct.runtime.artifact import sha256_file
    from tinct.runtime.backends import open_backend

    path = Path(args.artifact)
    backend = open_backend(path, args.backend, **({"optimization": "disable"} if path.suffix == ".onnx"
                                                   and args.backend in (None, "onnxruntime", "ort") else {}))
    try:
        meta = backend.meta
        d = backend.describe()
        ins, outs = backend.io()
    finally:
        backend.close()
    print(f"artifact   {path}")
    print(f"sha256     {sha256_file(path)}")
    print(f"size       {path.stat().st_size / 1e6:.2f} MB" + (
        f" (+ {path.with_suffix('.bin').stat().st_size / 1e6:.2f} MB .bin)" if path.suffix == ".xml" else ""))
    print(f"summary    {meta.summary()}")
    print(f"backend    {d['backend']} ({', '.join(f'{k} {v}' for k, v in d['versions'].items())})")
    print(f"precision  {meta.precision}" + (f", run as {d['inference_precision']}" if "inference_precision" in d
                                            else ""))
    if d.get("f32_layers"):  # layers a bf16 compile keeps f32, as the plugin really runs them
        print("f32 layers " + ", ".join(f"{n} (runs {p})" for n, p in d["f32_layers"].items()))
    for kind, items in (("input", ins), ("output", outs)):
        for n, shape, dtype in items:
            print(f"{kind:<10} {n} {shape} {dtype}")
    if path.suffix.lower() == ".onnx":
        n_if = if_nodes_in_file(path)
        print(f"If nodes   {'n/a (onnx not installed)' if n_if is None else n_if}")
    print("metadata:")
    for k, v in sorted(meta.to_props().items()):
        print(f"  {k} = {v}")
    for line in verification_lines(meta, d.get("build") or {}):
        print(line)
    if d.get("build"):
        print("build:")
        for k, v in sorted(d["build"].items()):
            print(f"  {k} = {v}")
    return 0
