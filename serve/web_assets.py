"""The browser engine's third-party files: ONNX Runtime Web from the npm registry, pinned by version and by the
registry's sha512, vendored into the package at install time (``make install`` runs
``python -m tinct.serve.web_assets``; nothing comes from a CDN when a page runs).

Only the files a plain (no bundler) page needs for the WebAssembly execution provider with threads are kept:
the ESM entry ``ort.wasm.min.mjs``, the runtime's loader ``ort-wasm-simd-threaded.mjs`` (also each worker
thread's script) and its ``.wasm``, its ``package.json`` (which declares the licence) and a ``LICENSES.txt``
written here (:data:`NOTICE`). ``manifest()`` lists them with their sha256;
``tinct serve`` and ``tinct deploy web`` read them from :data:`VENDOR_DIR`.

Standard library only: a tarball over HTTPS, checked, then read with :mod:`tarfile` (no npm needed)."""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

from tinct.runtime.artifact import atomic_path, sha256_file
from tinct.runtime.errors import InputError

PACKAGE = "onnxruntime-web"
VERSION = "1.31.1"
INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
TARBALL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
LICENSE = "MIT"
FILES = ("dist/ort.wasm.min.mjs", "dist/ort-wasm-simd-threaded.mjs", "dist/ort-wasm-simd-threaded.wasm", "package.json")
# The tarball has no licence file: its package.json declares MIT and each script's header carries the notice.
NOTICE = f"""ONNX Runtime Web {VERSION} ({PACKAGE} on the npm registry, {TARBALL})
Copyright (c) Microsoft Corporation. All rights reserved.
Licensed under the MIT License (SPDX: MIT), as its package.json declares and each script's header says.
Source: https://github.com/microsoft/onnxruntime (js/web). Files kept here: {", ".join(n.split("/")[-1] for n in FILES)}.
The MIT License text: https://opensource.org/license/mit
"""
VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor" / PACKAGE
MANIFEST = "manifest.json"
MAX_TARBALL = 128 << 20


def _check_integrity(data: bytes) -> None:
    algo, want = INTEGRITY.split("-", 1)
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != want:
        raise InputError(f"{PACKAGE}-{VERSION}.tgz: {algo} {got} is not the pinned {want}: refusing it")


def fetch(dest: Path = VENDOR_DIR, tarball: str | None = None) -> dict:
    """Download (or read ``tarball``, a local .tgz), check the pinned sha512, extract :data:`FILES` into ``dest``
    with a manifest. Nothing is replaced unless every file was read and checked."""
    if tarball:
        data = Path(tarball).read_bytes()
    else:
        req = urllib.request.Request(TARBALL, headers={"User-Agent": "tinct"})
        with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310 - a fixed https URL
            data = r.read(MAX_TARBALL + 1)
    if len(data) > MAX_TARBALL:
        raise InputError(f"{TARBALL}: larger than {MAX_TARBALL >> 20} MiB")
    _check_integrity(data)
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name in FILES:
            member = tar.getmember(f"package/{name}")
            files[Path(name).name] = tar.extractfile(member).read()
    files["LICENSES.txt"] = NOTICE.encode()
    dest.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        with atomic_path(dest / name) as tmp:
            tmp.write_bytes(blob)
    doc = {"package": PACKAGE, "version": VERSION, "integrity": INTEGRITY, "license": LICENSE, "source": TARBALL,
           "files": {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}}
    with atomic_path(dest / MANIFEST) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def manifest(dest: Path = VENDOR_DIR, verify: bool = False) -> dict | None:
    """The vendored files' manifest, or None when they are not there (``verify``: re-hash every file)."""
    p = dest / MANIFEST
    if not p.is_file():
        return None
    doc = json.loads(p.read_text())
    if doc.get("version") != VERSION:
        return None
    for name, sha in doc["files"].items():
        f = dest / name
        if not f.is_file() or verify and hashlib.sha256(f.read_bytes()).hexdigest() != sha:
            return None
    return doc


def model_entry(path: Path, model: str, precision: str, gating: str, url: str) -> dict:
    """What a page needs to fetch, check and label one model for the in-browser engine (``engine.mjs``): the same
    fields for ``tinct serve``'s engine list and ``tinct deploy web``'s models.json."""
    return {"model": model, "precision": precision, "gating": gating, "url": url, "sha256": sha256_file(path),
            "bytes": path.stat().st_size}


def require(dest: Path = VENDOR_DIR) -> dict:
    doc = manifest(dest)
    if doc is None:
        raise InputError(f"{PACKAGE} {VERSION} is not vendored into {dest}: run `python -m tinct.serve.web_assets` "
                         "(make install does; it needs the npm registry)")
    return doc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinct.serve.web_assets", description=__doc__.split("\n\n")[0])
    p.add_argument("--tarball", default=None, help="a local onnxruntime-web .tgz instead of the registry's")
    p.add_argument("--force", action="store_true", help="fetch even when the pinned files are already there")
    a = p.parse_args(argv)
    if not a.force and manifest(verify=True) is not None and not a.tarball:
        print(f"{PACKAGE} {VERSION}: already vendored in {VENDOR_DIR}")
        return 0
    try:
        doc = fetch(tarball=a.tarball)
    except (OSError, InputError) as exc:
        print(f"tinct: cannot vendor {PACKAGE} {VERSION}: {exc}", file=sys.stderr)
        return 2
    size = sum((VENDOR_DIR / n).stat().st_size for n in doc["files"])
    print(f"{PACKAGE} {VERSION} ({LICENSE}): {len(doc['files'])} files, {size / 2**20:.1f} MiB in {VENDOR_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
