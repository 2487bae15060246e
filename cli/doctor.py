"""`tinct doctor [ARTIFACT]`: what this machine can run, and does an artifact work on it.

Reports CPU features relevant to the engines (AVX-512, VNNI, BF16, AMX; after any
ONEDNN_MAX_CPU_ISA cap), ONNX Runtime's execution providers, OpenVINO's devices, TensorRT / CUDA
availability.

- An FP32 ONNX: builds and runs every available backend on a fixture (a synthetic 640x480 scene +
  hints, or --image/--hints) and compares each with ONNX Runtime CPU fp32: max |ab| error and median ms.
- A derived artifact (quantized ONNX, OpenVINO IR): **re-verifies it on this machine**: the guard of
  ``tinct quantize`` against its FP32 parent (``--parent``, else the .onnx next to it whose sha256 the
  artifact records), with the budget of its precision; exit 0 when it passes, 1 when it does not.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import tempfile
from pathlib import Path

from tinct.runtime.cpu import cpu_flags, cpu_name, has_native_bf16
from tinct.runtime.errors import thread_count

NAME = "doctor"
EXTRA = "tensorrt"  # the extra that installs what this command needs

def register(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="check the environment; compare backends on an FP32 ONNX or "
                                             "re-verify a quantized/compiled artifact on this machine")
    p.add_argument("onnx", nargs="?", default=None, metavar="ARTIFACT",
                   help="FP32 ONNX (compare backends) or a derived .onnx/.xml (re-verify against its parent)")
    p.add_argument("--parent", default=None, metavar="FP32.onnx", help="the FP32 parent of a derived artifact "
                   "(default: the .onnx next to it whose sha256 it records)")
    p.add_argument("--guard-images", type=int, default=None, metavar="N",
                   help="re-verify on the first N validation images (default all)")
    p.add_argument("--image", default=None, help="image to use instead of the synthetic fixture")
    p.add_argument("--hints", default=None, help="hints JSON for --image")
    p.add_argument("--threads", type=thread_count, default=0)
    p.add_argument("--repeat", type=int, default=5)
    p.set_defaults(func=run)


def environment() -> list[tuple[str, str]]:
    import os

    import numpy as np
    import onnxruntime as ort

    from tinct.runtime.cpu import describe_cpu

    rows = [("python", platform.python_version()), ("numpy", np.__version__),
            ("cpu", f"{cpu_name()} ({os.cpu_count()} logical cores)"), ("isa", describe_cpu())]
    flags = cpu_flags()
    rows.append(("cpu flags", " ".join(f"{k}{'+' if v else '-'}" for k, v in flags.items()) or "unknown"))
    rows.append(("onnxruntime", f"{ort.__version__}; providers: {', '.join(ort.get_available_providers())}"))
    if importlib.util.find_spec("openvino"):
        try:
            import openvino as ov
            core = ov.Core()
            devs = []
            for d in core.available_devices:
                try:
                    caps = ",".join(core.get_property(d, "OPTIMIZATION_CAPABILITIES"))
                except Exception:
                    caps = "?"
                devs.append(f"{d} [{caps}]")
            rows.append(("openvino", f"{ov.__version__}; devices: {'; '.join(devs) or 'none'}"))
        except Exception as exc:  # a broken install is reported, not fatal
            rows.append(("openvino", f"installed but failed: {str(exc).splitlines()[0][:120]}"))
    else:
        rows.append(("openvino", "not available (pip install 'tinct[openvino]')"))
    if importlib.util.find_spec("tensorrt"):
        try:
            import tensorrt as trt
            rows.append(("tensorrt", trt.__version__))
        except Exception as exc:
            rows.append(("tensorrt", f"installed but failed to import: {str(exc).splitlines()[0][:120]}"))
    else:
        rows.append(("tensorrt", "not available (pip install 'tinct[tensorrt]' on a machine with an NVIDIA GPU)"))
    rows.append(("cuda", _cuda_line()))
    return rows


def _cuda_line() -> str:
    if importlib.util.find_spec("cuda") is None:
        smi = shutil.which("nvidia-smi")
        return "cuda-python not available" + (" (nvidia-smi present)" if smi else "; no nvidia-smi")
    try:
        from tinct.runtime.backends.tensorrt_backend import gpu_info, import_cudart
        cudart = import_cudart()
        err, n = cudart.cudaGetDeviceCount()
        if int(err) != 0 or n == 0:
            return f"cuda-python present, no usable GPU ({err})"
        name, cc = gpu_info(cudart, 0)
        return f"{n} GPU(s); cuda:0 {name} (sm {cc})"
    except Exception as exc:
        return f"cuda-python present but failed: {str(exc).splitlines()[0][:120]}"


def fixture(image_path=None, hints_path=None):
    """(uint8 image, hints) for the comparison: a given image or a synthetic scene with a few hints."""
    import numpy as np

    from tinct.runtime.hints import UserHint, load_user_hints
    from tinct.runtime.image import load_image

    if image_path:
        img = load_image(image_path)
        h, w = img.shape[:2]
        hints = load_user_hints(hints_path, (w, h)) if hints_path else []
        return img, hints
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    g = 0.5 + 0.3 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + 0.2 * (yy / h)
    img = np.clip(np.stack([g, g * 0.9 + 0.05, 1.0 - g * 0.7], -1) * 255, 0, 255).astype(np.uint8)
    hints = [UserHint(40, 30, (70, 140, 220)), UserHint(600, 440, (90, 160, 60)), UserHint(320, 240, (200, 60, 40))]
    return img, hints


def compare(onnx_path, image, hints, threads=0, repeat=5) -> list[dict]:
    """Every available engine of an FP32 ONNX against ONNX Runtime CPU on the fixture
    (:func:`tinct.verify.recheck.compare_engines`)."""
    import onnxruntime as ort

    from tinct.runtime.backends import available_backends, open_backend
    from tinct.runtime.colorizer import Colorizer
    from tinct.runtime.postprocess import ONE_SHOT
    from tinct.verify.recheck import compare_engines

    ref_backend = open_backend(onnx_path, "onnxruntime", threads=threads)
    session = Colorizer(ref_backend).session(image, postprocess=ONE_SHOT)
    session.set_hints(hints)
    session.colorize()
    x = session.x.copy()
    skipped, candidates = [], []
    tmp = Path(tempfile.mkdtemp(prefix="tinct-doctor-"))
    try:
        for prov in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
            if prov in ort.get_available_providers():
                candidates.append((f"onnxruntime {prov[:-17]}", lambda p=prov: open_backend(
                    onnx_path, "onnxruntime", providers=[p], threads=threads)))
        avail = available_backends()
        if "openvino" in avail:
            def ov_build(precision):
                from tinct.deploy.build import build_openvino

                xml = build_openvino(onnx_path, tmp / f"model-{precision}.xml", precision=precision, check=False)
                return open_backend(xml, threads=threads)
            candidates.append(("openvino CPU f32 (IR)", lambda: ov_build("fp32")))
            if has_native_bf16():
                candidates.append(("openvino CPU bf16 (IR)", lambda: ov_build("bf16")))
        else:
            skipped.append({"backend": "openvino", "skipped": "not available (pip install 'tinct[openvino]')"})
        if "tensorrt" in avail:
            def trt_build():
                from tinct.deploy.build import build_tensorrt

                return open_backend(build_tensorrt(onnx_path, tmp / "model.engine"))
            candidates.append(("tensorrt", trt_build))
        else:
            skipped.append({"backend": "tensorrt", "skipped": "not available (TensorRT is not installed)"})
        results = compare_engines(ref_backend, candidates, x, repeat=repeat)
    finally:
        ref_backend.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return results[:1] + skipped + results[1:]


def reverify(artifact: Path, parent: Path | None, guard_images: int | None = None) -> int:
    """The guard of the artifact's precision, on this machine (:func:`tinct.verify.recheck.recheck`);
    0 passed, 1 failed."""
    from tinct.cli.info import verification_lines
    from tinct.runtime.cpu import describe_cpu
    from tinct.verify.recheck import recheck

    r = recheck(artifact, parent, guard_images)
    print(f"\nre-verifying {r.artifact.name} ({r.meta.precision}, runs as {r.inference_precision}) "
          f"against {r.parent.name} on {describe_cpu()}")
    for line in verification_lines(r.meta, r.build):
        if line.startswith("verified"):
            print(f"  recorded: {line.split(None, 1)[1]}")
    print(f"  here:     {r.report.line()}")
    budget, mean_ab = r.budget
    if not r.passed:
        print(f"FAILED on this machine ({r.criteria} budget {budget:g} dB, mean |Δab| {mean_ab:g}): {r.failure}")
        return 1
    print(f"PASSED on this machine ({r.criteria} budget {budget:g} dB, mean |Δab| {mean_ab:g})")
    return 0


def run(args) -> int:
    for k, v in environment():
        print(f"{k:<12} {v}")
    if not args.onnx:
        return 0
    from tinct.verify.recheck import is_derived

    if is_derived(Path(args.onnx)) or args.parent:
        return reverify(Path(args.onnx), args.parent, args.guard_images)
    image, hints = fixture(args.image, args.hints)
    print(f"\ncomparing backends on {args.onnx} ({image.shape[1]}x{image.shape[0]} image, {len(hints)} hints; "
          "max |ab| error vs ONNX Runtime CPU, normalized units; median ms of the model call)")
    for r in compare(args.onnx, image, hints, threads=args.threads, repeat=args.repeat):
        if "skipped" in r:
            print(f"  {r['backend']:<34} {r['skipped']}")
        else:
            print(f"  {r['backend']:<34} max_abs {r['max_abs']:.2e}  {r['ms']:7.1f} ms")
    return 0
