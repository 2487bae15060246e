"""``tinct deploy triton``: a Triton Inference Server model repository (see :mod:`export.triton`); ``tinct deploy
web``: a static site with the in-browser engine (:mod:`serve.site`).

Standard library only at module level."""

from __future__ import annotations

import argparse

from tinct.runtime.errors import bounded as _bounded

NAME = "deploy"
EXTRA = "triton"  # the extra that installs what this command needs

EPILOG = """\
examples:
  tinct deploy triton icolorit-tiny -o repo/                        # onnxruntime, batches up to 8, 1 CPU instance
  tinct deploy triton icolorit-tiny -o repo/ --backend openvino --threads 4
  tinct deploy triton build/acolvit.engine -o repo/ --kind KIND_GPU  # TensorRT plan (built on the target GPU)
  tinct deploy triton color2embed-r18 -o repo/                      # two models: -encoder and -colorizer
  tinct deploy triton --check repo/icolorit-tiny/config.pbtxt       # parse a config with Triton's schema

Each config.pbtxt is built as Triton's ModelConfig protobuf (tritonclient) and parsed back before it is
written. Not served here: no Triton server runs on the machines tinct is developed on.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("deploy", help="write a serving configuration (Triton model repository, static web site)",
                              description="Write deployment files for a serving system.")
    sub = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    t = sub.add_parser("triton", help="a Triton Inference Server model repository",
                       description="Write REPO/<name>/config.pbtxt and REPO/<name>/1/<model> for a shipped model "
                       "or an artifact (.onnx, .xml, .engine/.plan).", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("source", nargs="?", help="shipped model name or artifact file")
    t.add_argument("-o", "--output", help="the model repository folder (created if missing)")
    t.add_argument("--backend", default=None, choices=["onnxruntime", "openvino", "tensorrt"],
                   help="Triton backend (default: from the artifact: .onnx onnxruntime, .xml openvino, .engine tensorrt)")
    t.add_argument("--name", default=None, help="model name in the repository (default: the model's)")
    t.add_argument("--max-batch-size", type=_bounded(0, 1024), default=8,
                   help="largest batch Triton forms (0: no batching)")
    t.add_argument("--instances", type=_bounded(1, 64), default=1, help="model instances (instance_group count)")
    t.add_argument("--kind", default="KIND_CPU", choices=["KIND_CPU", "KIND_GPU", "KIND_AUTO"])
    t.add_argument("--threads", type=_bounded(0, 1024), default=0, help="threads per instance (0: the backend's default)")
    t.add_argument("--queue-delay-us", type=_bounded(0, 10_000_000), default=500,
                   help="dynamic batching: how long a request may wait for others")
    t.add_argument("--force", action="store_true", help="replace existing model folders")
    t.add_argument("--check", default=None, metavar="CONFIG", help="only parse this config.pbtxt with Triton's schema")
    t.set_defaults(func=run)
    w = sub.add_parser("web", help="a static site that colorizes in the browser (no server process)",
                       description="Write a static folder (HTML/JS/CSS, ONNX Runtime Web, the models) that any static "
                       "file server can host: open a photo, click hints, download the result, all on the visitor's "
                       "CPU. Hint models only (iColoriT, A-ColViT).", epilog=WEB_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("models", nargs="+", metavar="MODEL", help="shipped model name or hint-model .onnx (repeatable)")
    w.add_argument("-o", "--output", required=True, metavar="SITE", help="the site folder (created; must be empty)")
    w.add_argument("--force", action="store_true", help="replace a non-empty SITE")
    w.set_defaults(func=run_web)


WEB_EPILOG = """\
examples:
  tinct deploy web icolorit-tiny -o site/                       # one model
  tinct deploy web icolorit-tiny acolvit-tiny-0.5 -o site/      # a choice of models in the page
  python -m http.server -d site/ 8080                           # works (one thread: no COOP/COEP headers)

The host must send Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp for
threads (site/_headers, site/README.md). ONNX Runtime Web comes from the package (vendored at install), no CDN.
"""


def run_web(args) -> int:
    from tinct.serve.site import build_site

    doc = build_site(args.models, args.output, force=args.force)
    names = ", ".join(m["model"] for m in doc["models"])
    print(f"{args.output}: {names} with ONNX Runtime Web {doc['onnxruntime_web']}; host it with COOP/COEP headers "
          "for threads (see its README.md)")
    return 0


def run(args) -> int:
    from pathlib import Path

    from tinct.deploy.triton import check_config, deploy_triton
    from tinct.runtime.errors import InputError

    if args.check:
        path = Path(args.check)
        if not path.is_file():
            raise InputError(f"{path} does not exist")
        cfg = check_config(path.read_text(errors="replace"))
        print(f"{path}: a valid Triton ModelConfig ({cfg.name}, {cfg.backend or cfg.platform}, "
              f"{len(cfg.input)} input(s), {len(cfg.output)} output(s), max_batch_size {cfg.max_batch_size})")
        return 0
    if not args.source or not args.output:
        raise InputError("give a model or artifact and -o REPO (or --check CONFIG)")
    dirs = deploy_triton(args.source, args.output, backend=args.backend, name=args.name,
                         max_batch_size=args.max_batch_size, instances=args.instances, kind=args.kind,
                         threads=args.threads, queue_delay_us=args.queue_delay_us, force=args.force)
    for d in dirs:
        files = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
        print(f"{d}: {', '.join(files)}")
    print("config.pbtxt checked against Triton's ModelConfig schema; client pre/post-processing in each README.md")
    return 0
