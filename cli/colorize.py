"""`tinct colorize IMAGE --hints HINTS.json -o OUT.png`: colorize one photo with user hints.

The artifact is ``--engine FILE`` (.onnx, .xml, .engine/.plan) or ``--model NAME`` (a shipped
model: ``weights/<name>.onnx`` if prebuilt, else exported on the fly when torch is installed).
Everything is validated before the model runs (image, hints, output path); the output is written
atomically, so no output file exists after any failure.

``--reference REF.jpg`` (instead of ``--hints``) colorizes from an exemplar photo with Color2Embed:
``--engine`` is a directory from ``tinct export color2embed-r18 -o DIR`` or its ``*-colorizer.onnx``
(its encoder is found next to it); ``--size`` sets the model resolution (default 256; see
:mod:`runtime.exemplar`).
"""

from __future__ import annotations

import time
from pathlib import Path

from tinct.runtime import catalog as shipped
from tinct.runtime.catalog import DEFAULT_EXEMPLAR_MODEL, DEFAULT_MODEL
from tinct.runtime.errors import thread_count

NAME = "colorize"
EXTRA = "runtime"  # the extra that installs what this command needs

def register(subparsers) -> None:
    p = subparsers.add_parser("colorize", help="colorize an image with user hints",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("image")
    guide = p.add_mutually_exclusive_group()
    guide.add_argument("--hints", default=None, help="JSON list of {x, y, color} in image pixels (default: none)")
    guide.add_argument("--reference", default=None, metavar="REF.jpg",
                       help=f"exemplar photo whose colours to use (Color2Embed: the shipped {DEFAULT_EXEMPLAR_MODEL} "
                            "by default, or --engine DIR / OUT-colorizer.onnx from 'tinct export color2embed-r18')")
    p.add_argument("--size", type=int, default=None, help="with --reference: model resolution, a multiple of 16 "
                   "(default 256)")
    p.add_argument("-o", "--output", required=True, help="output .png or .jpg")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--engine", default=None, help="artifact: .onnx, .xml (OpenVINO IR), .engine/.plan (TensorRT)")
    src.add_argument("--model", default=None, help=f"shipped model name (default {DEFAULT_MODEL}; with --reference "
                     f"{DEFAULT_EXEMPLAR_MODEL})")
    p.add_argument("--backend", default=None, help="onnxruntime | openvino | tensorrt (default: from the suffix)")
    p.add_argument("--device", default=None, help="backend device (OpenVINO: CPU, GPU, NPU, AUTO)")
    p.add_argument("--threads", type=thread_count, default=0)
    p.add_argument("--precision", default=None, choices=["fp32", "fp16", "bf16", "int8", "auto"],
                   help="auto: the fastest OpenVINO precision that passes its guard on this CPU, chosen once per "
                        "model, CPU and thread count and cached (see 'tinct build --precision auto')")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default 50 MP)")
    p.add_argument("--rebuild", action="store_true", help="TensorRT: rebuild a stale engine from its ONNX")
    p.set_defaults(func=run)


def engine_cache_dir() -> Path:
    import os

    return Path(os.environ.get("TINCT_CACHE", Path.home() / ".cache" / "tinct")) / "engines"


def resolve_model(name: str) -> Path:
    """A shipped model's ONNX, never stale: ``weights/<name>.onnx`` (see :func:`runtime.shipped.prebuilt`), else
    ``<cache>/engines/<name>-<weights sha256[:12]>.onnx``, exported on first use (needs torch)."""
    import importlib.util

    from tinct.runtime.errors import MissingExtraError

    if shipped.prebuilt(name, [shipped.weights_dir() / f"{name}.onnx"]):
        return shipped.weights_dir() / f"{name}.onnx"
    _, digest = shipped.shipped_weights(name)
    cached = engine_cache_dir() / f"{name}-{digest[:12]}.onnx"
    if cached.is_file():
        return cached
    if importlib.util.find_spec("torch") is None:
        raise MissingExtraError("colorize --model", "torch", "export")
    from tinct.export import onnx_export

    cached.parent.mkdir(parents=True, exist_ok=True)
    print(f"exporting {name} to {cached} (first use; cached afterwards)", flush=True)
    return Path(onnx_export.export_onnx(name, cached))


def resolve_exemplar_model(name: str) -> Path:
    """A shipped Color2Embed model's colorizer ONNX (its encoder next to it): ``weights/<name>-colorizer.onnx``
    (see :func:`runtime.shipped.prebuilt`), else exported on first use into
    ``<cache>/engines/<name>-<weights sha256[:12]>-{encoder,colorizer}.onnx`` (needs torch)."""
    import importlib.util

    from tinct.runtime.errors import MissingExtraError

    pre_enc, pre_col = (shipped.weights_dir() / f"{name}-{part}.onnx" for part in ("encoder", "colorizer"))
    if shipped.prebuilt(name, [pre_enc, pre_col]):
        return pre_col
    _, digest = shipped.shipped_weights(name)
    base = engine_cache_dir() / f"{name}-{digest[:12]}"
    enc, col = Path(f"{base}-encoder.onnx"), Path(f"{base}-colorizer.onnx")
    if enc.is_file() and col.is_file():
        return col
    if importlib.util.find_spec("torch") is None:
        raise MissingExtraError("colorize --reference --model", "torch", "export")
    from tinct.export.color2embed_export import export_color2embed

    base.parent.mkdir(parents=True, exist_ok=True)
    print(f"exporting {name} to {base}-*.onnx (first use; cached afterwards)", flush=True)
    return Path(export_color2embed(name, base.with_suffix(".onnx"))[1])


def check_guide(args) -> None:
    """The model kind against the guide (shared by colorize and batch): ``--reference`` needs a Color2Embed
    model and no ``--precision auto``; hints (or none) need a hint-based model, and no ``--size``."""
    from tinct.runtime.errors import TinctError

    if getattr(args, "reference", None):
        if args.model and shipped.card_architecture(args.model) and not shipped.is_exemplar(args.model):
            raise TinctError(f"--reference needs a Color2Embed model: --model {DEFAULT_EXEMPLAR_MODEL} (the default) "
                             "or --engine DIR / OUT-colorizer.onnx from 'tinct export color2embed-r18 -o OUT'")
        if args.precision == "auto":
            raise TinctError("--precision auto is for the hint-based models; with --reference pass --engine with a "
                             "quantized colorizer ('tinct quantize') or leave --precision out")
        return
    if getattr(args, "size", None) is not None:
        raise TinctError("--size applies to --reference (Color2Embed) only")
    if getattr(args, "model", None) and shipped.is_exemplar(args.model):
        raise TinctError(f"{args.model} is an exemplar model: give a reference photo (--reference REF.jpg), not hints")


def backend_opts(args, threads: int) -> dict:
    """The backend options of ``--threads/--precision/--device`` (``threads`` as the caller resolved it)."""
    opts = {"threads": threads, "precision": args.precision}
    if args.device:
        opts["device"] = args.device
    return opts


def open_engine(args):
    from tinct.runtime.backends import open_backend
    from tinct.runtime.backends.base import resolve_backend_name

    path = Path(args.engine) if args.engine else resolve_model(args.model or DEFAULT_MODEL)
    if args.precision == "auto":
        from tinct.deploy.auto import auto_engine

        return open_backend(auto_engine(path, args.threads or 1, engine_cache_dir()), "openvino", threads=args.threads,
                            **({"device": args.device} if args.device else {}))
    opts = backend_opts(args, args.threads)
    name = resolve_backend_name(path, args.backend)
    if name == "tensorrt" and args.rebuild:
        from tinct.runtime.backends.tensorrt_backend import StaleEngineError, read_engine_file
        try:
            return open_backend(path, name, **opts)
        except StaleEngineError:
            from tinct.deploy.build import build_tensorrt
            header, _ = read_engine_file(path)
            prof = header.get("profile", {})
            build_tensorrt(header["source_onnx"], path, precision=header.get("precision", "fp32"),
                           workspace_mib=header.get("workspace_mib", 1024),
                           profile=(prof.get("min", 1), prof.get("opt", 1), prof.get("max", 1)))
    return open_backend(path, name, **opts)


def run_reference(args) -> int:
    """``--reference``: Color2Embed (encoder + colorizer artifacts, :mod:`runtime.exemplar`)."""
    from tinct.runtime.errors import TinctError
    from tinct.runtime.exemplar import DEFAULT_SIZE, open_exemplar
    from tinct.runtime.image import DEFAULT_MAX_PIXELS, check_output_path, load_image, save_image
    from tinct.runtime.postprocess import ONE_SHOT

    t0 = time.perf_counter()
    check_guide(args)
    check_output_path(args.output)
    limit = args.max_pixels if args.max_pixels is not None else DEFAULT_MAX_PIXELS
    image = load_image(args.image, limit)
    try:
        reference = load_image(args.reference, limit)
    except TinctError as exc:
        raise TinctError(f"reference: {exc}") from None
    h, w = image.shape[:2]
    engine = args.engine or resolve_exemplar_model(args.model or DEFAULT_EXEMPLAR_MODEL)
    ex = open_exemplar(engine, args.backend, size=args.size or DEFAULT_SIZE, **backend_opts(args, args.threads))
    try:
        session = ex.session(image, postprocess=ONE_SHOT)
        session.set_reference(reference)
        save_image(args.output, session.colorize())
    finally:
        ex.close()
    d, t = ex.backend.describe(), session.timings
    print(f"{args.output}: {w}x{h}, reference {args.reference}, {ex.backend.meta.model} ({d.get('precision')}) on "
          f"{d['backend']} {d.get('device', '')} at {ex.size}: encoder {t['embed']:.1f} ms, model {t['model']:.1f} ms, "
          f"post {t['post']:.1f} ms, total {(time.perf_counter() - t0) * 1e3:.0f} ms")
    return 0


def run(args) -> int:
    if getattr(args, "reference", None):
        return run_reference(args)
    check_guide(args)
    from tinct.runtime.colorizer import Colorizer
    from tinct.runtime.hints import load_user_hints
    from tinct.runtime.image import DEFAULT_MAX_PIXELS, check_output_path, load_image, save_image
    from tinct.runtime.postprocess import ONE_SHOT

    t0 = time.perf_counter()
    check_output_path(args.output)
    image = load_image(args.image, args.max_pixels if args.max_pixels is not None else DEFAULT_MAX_PIXELS)
    h, w = image.shape[:2]
    hints = load_user_hints(args.hints, (w, h)) if args.hints else []
    backend = open_engine(args)
    try:
        session = Colorizer(backend).session(image, postprocess=ONE_SHOT)
        session.set_hints(hints)
        rgb = session.colorize()
        save_image(args.output, rgb)
    finally:
        backend.close()
    d = backend.describe()
    t = session.timings
    print(f"{args.output}: {w}x{h}, {len(hints)} hints, {backend.meta.model} ({d.get('precision')}) on "
          f"{d['backend']} {d.get('device', '')}: model {t['model']:.1f} ms, pre {t['prepare'] + t['hints']:.1f} ms, "
          f"post {t['post']:.1f} ms, total {(time.perf_counter() - t0) * 1e3:.0f} ms")
    return 0
