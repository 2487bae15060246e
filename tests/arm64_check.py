"""What the arm64 leg runs on each machine (inside the emulated arm64 root, and on the x86-64 host for the
reference): tinct's installed runtime only (numpy, Pillow, onnxruntime, openvino; no torch, no onnx).

    python arm64_check.py OUT_DIR [--models a,b] [--openvino] [--threads N]

Writes ``OUT_DIR/outputs.npz``: each shipped hint model's ab on real photos with real hints (the probes: the
sample photos with 10 hints), Color2Embed's embedding and ab at 64x64, and (``--openvino``) icolorit-tiny's ab
from OpenVINO FP32; and ``OUT_DIR/versions.json``. The PNGs of ``tinct colorize`` are made by the test itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

from tinct.runtime.backends import open_backend
from tinct.runtime.catalog import prebuilt_files, prebuilt_model
from tinct.runtime.color import rgb_to_lab_n
from tinct.runtime.postprocess import resize_rgb
from tinct.verify.probes import parity_images, parity_inputs

HINT_MODELS = ("icolorit-tiny", "acolvit-tiny-0.5", "acolvit-tiny-0.3")
C2E = "color2embed-r18"
C2E_SIZE = 64


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--models", default=",".join((*HINT_MODELS, C2E)))
    ap.add_argument("--openvino", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x = parity_inputs(hint_counts=(10,))[:2]  # two sample photos, 10 hints each
    arrays: dict[str, np.ndarray] = {}
    for name in args.models.split(","):
        if name == C2E:
            enc_path, col_path = prebuilt_files(name)
            rgb, _ = parity_images()
            small = np.stack([resize_rgb(im, (C2E_SIZE, C2E_SIZE)) for im in rgb[:2]])
            with open_backend(enc_path, threads=args.threads) as enc, open_backend(col_path, threads=args.threads) as col:
                ref = np.ascontiguousarray(np.moveaxis(small[::-1].astype(np.float32) / 255.0, -1, 1))
                emb = enc.infer({"ref": ref})["emb"]
                l_n = np.ascontiguousarray(rgb_to_lab_n(small)[..., 0][:, None], np.float32)
                arrays[f"{name}/emb"] = np.array(emb)
                arrays[f"{name}/ab"] = np.array(col.infer({"l_n": l_n, "emb": emb})["ab"])
            continue
        with open_backend(prebuilt_model(name), threads=args.threads) as b:
            arrays[name] = np.array(b.run_x(x))
        print(f"{name}: ab {arrays[name].shape}", flush=True)
    if args.openvino:
        with open_backend(prebuilt_model("icolorit-tiny"), "openvino", precision="fp32", threads=args.threads) as b:
            arrays["icolorit-tiny/openvino"] = np.array(b.run_x(x))
        print("icolorit-tiny on OpenVINO FP32: done", flush=True)
    np.savez(out / "outputs.npz", **arrays)
    (out / "versions.json").write_text(json.dumps(_versions(), indent=1))
    return 0


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"machine": platform.machine(), "python": platform.python_version()}
    for pkg in ("tinct", "numpy", "Pillow", "onnxruntime", "openvino", "numba"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
