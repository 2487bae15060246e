"""``tinct deploy web``: a static folder that colorizes in the browser with no server process.

The folder: ``index.html`` + ``site.js`` + ``site.css`` (the page), ``tinct-core.mjs``, ``engine.mjs`` and
``engine-worker.mjs`` (the same in-browser engine ``tinct serve`` offers), ``vendor/onnxruntime-web/`` (vendored by
:mod:`serve.web_assets`, licence notice included), ``models/<name>.onnx`` with ``models.json`` (each model's sha256,
which the page checks before it runs one), ``_headers`` (the cross-origin isolation headers in the format Netlify
and Cloudflare Pages read) and a ``README.md`` saying which headers a host must send and why. Written to a
temporary folder next to the target and renamed into place, so a failed build leaves nothing behind."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from tinct.runtime import __version__
from tinct.runtime.artifact import C2E_PROTOCOLS, read_onnx_meta
from tinct.runtime.catalog import prebuilt_model, shipped_models
from tinct.runtime.errors import InputError
from tinct.serve.web_assets import PACKAGE, VENDOR_DIR, VERSION, model_entry, require

STATIC = Path(__file__).resolve().parent / "static"
ENGINE_FILES = ("tinct-core.mjs", "engine.mjs", "engine-worker.mjs")
PAGE_FILES = ("index.html", "site.js", "site.css")
HEADERS = """/*
  Cross-Origin-Opener-Policy: same-origin
  Cross-Origin-Embedder-Policy: require-corp
  Cross-Origin-Resource-Policy: same-origin
  X-Content-Type-Options: nosniff
"""


def _model(source: str):
    """(path, metadata) of a shipped model's name or a hint-model .onnx."""
    path = Path(source)
    if path.suffix.lower() != ".onnx":
        names = shipped_models()
        if source not in names:
            raise InputError(f"{source}: not a shipped model ({', '.join(names)}) nor a .onnx file")
        path = prebuilt_model(source)
    if not path.is_file():
        raise InputError(f"{source}: no such ONNX file")
    meta = read_onnx_meta(path)
    if meta.architecture in C2E_PROTOCOLS:
        raise InputError(f"{source}: a Color2Embed model; the in-browser engine runs hint models (iColoriT, A-ColViT)")
    return path, meta


def _readme(models: list[dict]) -> str:
    rows = "\n".join(f"| {m['model']} | {m['file']} | {m['bytes'] / 2**20:.1f} MB | `{m['sha256'][:16]}…` |" for m in models)
    return f"""# tinct in the browser

A colorizer that runs entirely in the visitor's browser: open a photo, click hints, download the result. The model
runs with ONNX Runtime Web {VERSION} (WebAssembly) in a Web Worker on the visitor's CPU; nothing is uploaded.
Built by `tinct deploy web` (tinct {__version__}).

| model | file | size | sha256 |
|---|---|---|---|
{rows}

## Hosting

Any static file server works. For more than one thread the page must be *cross-origin isolated*, so the host must
send these headers with every file (`_headers` has them in the format Netlify and Cloudflare Pages read):

    Cross-Origin-Opener-Policy: same-origin
    Cross-Origin-Embedder-Policy: require-corp

Without them the page still works, on one thread. `.mjs` must be served as `text/javascript` and `.wasm` as
`application/wasm` (most servers do). Everything the page loads is in this folder: no CDN.

## Licences

ONNX Runtime Web: MIT, Copyright (c) Microsoft Corporation (`vendor/{PACKAGE}/LICENSES.txt`). The models: see each
model's card in `models/`.
"""


def build_site(sources: list[str], output, force: bool = False) -> dict:
    """Write the site for ``sources`` (shipped model names or hint-model .onnx files) to ``output``."""
    if not sources:
        raise InputError("give at least one model (a shipped name such as icolorit-tiny, or a .onnx file)")
    vendor = require()
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(f"-o {out}: the folder is not empty (use --force to replace it)")
    found = [_model(s) for s in sources]
    names = [p.stem for p, _ in found]
    if len(set(names)) != len(names):
        raise InputError(f"two models share a file name: {', '.join(names)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a site is read by a web server
    try:
        for name in ENGINE_FILES:
            shutil.copy2(STATIC / name, tmp / name)
        for name in PAGE_FILES:
            shutil.copy2(STATIC / "site" / name, tmp / name)
        (tmp / "vendor").mkdir()
        shutil.copytree(VENDOR_DIR, tmp / "vendor" / PACKAGE)
        (tmp / "models").mkdir()
        models = []
        for p, meta in found:
            shutil.copy2(p, tmp / "models" / p.name)
            card = p.with_suffix(".json")
            if card.is_file():
                shutil.copy2(card, tmp / "models" / card.name)
            models.append({**model_entry(p, meta.model or p.stem, meta.precision, meta.gating, f"models/{p.name}"),
                           "file": p.name})
        doc = {"tinct": __version__, "onnxruntime_web": vendor["version"], "models": models}
        (tmp / "models.json").write_text(json.dumps(doc, indent=1) + "\n")
        (tmp / "_headers").write_text(HEADERS)
        (tmp / "README.md").write_text(_readme(models))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return doc
