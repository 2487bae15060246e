"""`tinct build IN.onnx --backend openvino|tensorrt -o OUT`: compile an ONNX artifact for a backend.

OpenVINO: ``ov.convert_model`` + ``ov.save_model(compress_to_fp16=False)`` (weights stay fp32);
the ONNX's ArtifactMeta props and the build settings go into the IR's ``rt_info`` (layout in
:mod:`runtime.backends.openvino_backend`), including the inference precision to use at run time
(f32 unless --precision bf16/fp16), so the runtime never falls back to OpenVINO's bf16 default.

TensorRT (10/11): network from the ONNX via ``trt.OnnxParser`` with the STRONGLY_TYPED flag (the
graph's own types decide: FP16 comes from an fp16-exported ONNX, INT8 from explicit Q/DQ; no
calibrators, no FP16/INT8 builder flags), an optimization profile over the batch dimension, a
workspace limit and an optional timing cache; written as the tinct header + engine (layout in
:mod:`runtime.backends.tensorrt_backend`).

Outputs are written to a temporary name in the target directory and renamed into place only
after the build succeeded (and, for IR, was read back): a failure never leaves a half-written file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("build", help="compile an ONNX artifact to an OpenVINO IR or a TensorRT engine",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("onnx", help="tinct ONNX artifact")
    p.add_argument("--backend", required=True, choices=["openvino", "tensorrt"])
    p.add_argument("-o", "--output", required=True, help="OUT.xml (OpenVINO) or OUT.engine / OUT.plan (TensorRT)")
    p.add_argument("--device", default=None, help="OpenVINO device recorded for run time (CPU, GPU, NPU, AUTO)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16", "int8"])
    p.add_argument("--threads", type=int, default=0, help="OpenVINO: threads used to check the IR compiles")
    p.add_argument("--workspace", type=int, default=1024, metavar="MiB", help="TensorRT workspace limit")
    p.add_argument("--timing-cache", default=None, metavar="FILE", help="TensorRT timing cache (read and updated)")
    p.add_argument("--min-batch", type=int, default=1)
    p.add_argument("--opt-batch", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=1)
    p.add_argument("--no-check", action="store_true", help="OpenVINO: skip compiling the IR after saving")
    p.set_defaults(func=run)


def run(args) -> int:
    from runtime.errors import TinctError

    if not (1 <= args.min_batch <= args.opt_batch <= args.max_batch):
        raise TinctError("batch profile must satisfy 1 <= --min-batch <= --opt-batch <= --max-batch")
    if args.backend == "openvino":
        out = build_openvino(args.onnx, args.output, device=args.device or "CPU", precision=args.precision,
                             threads=args.threads, check=not args.no_check)
    else:
        out = build_tensorrt(args.onnx, args.output, precision=args.precision, workspace_mib=args.workspace,
                             timing_cache=args.timing_cache,
                             profile=(args.min_batch, args.opt_batch, args.max_batch))
    print(f"built {out} ({args.backend}, {args.precision})")
    return 0


def _source(onnx_path: str | Path):
    """Validate the ONNX (readable, tinct metadata, I/O contract); return (path, meta, props, sha256)."""
    from runtime.backends.base import sha256_file
    from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from runtime.errors import TinctError

    onnx_path = Path(onnx_path)
    if onnx_path.suffix.lower() != ".onnx":
        raise TinctError(f"{onnx_path.name}: 'tinct build' takes a .onnx artifact")
    if not onnx_path.is_file():
        raise TinctError(f"artifact {onnx_path} does not exist")
    src = OnnxRuntimeBackend.load(onnx_path, optimization="disable")
    props = {k: v for k, v in src.session.get_modelmeta().custom_metadata_map.items() if k.startswith("tinct.")}
    return onnx_path, src.meta, props, sha256_file(onnx_path)


def _check_out(out: Path, suffixes: tuple[str, ...]) -> None:
    from runtime.errors import TinctError

    if out.suffix.lower() not in suffixes:
        raise TinctError(f"output {out.name}: expected a {' or '.join(suffixes)} file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise TinctError(f"output directory {parent} does not exist")


def build_openvino(onnx_path, out, device: str = "CPU", precision: str = "fp32", threads: int = 0,
                   check: bool = True) -> Path:
    from runtime.backends.openvino_backend import OV_PRECISION, OpenVINOBackend, _ov, write_ir_props
    from runtime.errors import TinctError

    ov = _ov()
    out = Path(out)
    _check_out(out, (".xml",))
    onnx_path, meta, props, sha = _source(onnx_path)
    if precision == "int8":
        if meta.precision != "int8":
            raise TinctError(f"{onnx_path.name} is {meta.precision}: INT8 comes from a quantized artifact "
                             "('tinct quantize'), not from the build")
        hint = "f32"
    else:
        hint = OV_PRECISION[precision]
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TinctError(f"OpenVINO cannot convert {onnx_path.name} ({first[:200]})") from None
    write_ir_props(model, props, {
        "inference_precision": hint, "device": device.upper(), "openvino_version": ov.__version__,
        "source_onnx": onnx_path.name, "source_onnx_sha256": sha,
    })
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent if str(out.parent) else "."))
    try:
        tmp_xml = tmpdir / out.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        if check:  # read back and compile what was written before it replaces anything
            OpenVINOBackend.load(tmp_xml, device=device, precision=None, threads=threads)
        os.replace(tmp_xml.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(tmp_xml, out)  # the .xml last: a visible .xml always has its .bin
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out


def check_trt_int8(meta, name: str) -> None:
    """TensorRT's explicit quantization takes signed INT8 Q/DQ with zero point 0 only; refuse the
    U8-asymmetric Q/DQ of the ONNX Runtime / OpenVINO routes before anything is built."""
    from runtime.errors import TinctError

    if meta.precision != "int8":
        return
    acts = str((meta.extra.get("quantization") or {}).get("activations", ""))
    if not acts.startswith("int8 symmetric"):  # as recorded by 'tinct quantize --backend tensorrt'
        raise TinctError(f"{name}: its INT8 activations are {acts or 'of unknown scheme'}, but TensorRT takes signed "
                         f"INT8 Q/DQ with zero point 0 only; quantize for it with 'tinct quantize --backend tensorrt'")


def build_tensorrt(onnx_path, out, precision: str = "fp32", workspace_mib: int = 1024,
                   timing_cache: str | Path | None = None, profile: tuple[int, int, int] = (1, 1, 1),
                   device: int = 0) -> Path:
    from runtime.backends.tensorrt_backend import _check, gpu_info, import_cudart, import_trt, pack_engine
    from runtime.errors import TinctError

    out = Path(out)
    _check_out(out, (".engine", ".plan"))
    onnx_path, meta, props, sha = _source(onnx_path)
    if precision != meta.precision:
        raise TinctError(f"{onnx_path.name} is an {meta.precision} graph; TensorRT builds strongly typed "
                         f"networks, so a {precision} engine needs a {precision} ONNX ('tinct export "
                         f"--precision {precision}' or 'tinct quantize')")
    check_trt_int8(meta, onnx_path.name)
    trt = import_trt()
    cudart = import_cudart()
    _check(cudart.cudaSetDevice(device))
    gpu_name, cc = gpu_info(cudart, device)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif precision != "fp32":
        raise TinctError(f"TensorRT {trt.__version__} has no strongly typed networks; tinct needs TensorRT >= 10")
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TinctError(f"TensorRT cannot parse {onnx_path.name}: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    opt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        t = network.get_input(i)
        rest = tuple(int(d) for d in t.shape[1:])
        opt_profile.set_shape(t.name, (profile[0],) + rest, (profile[1],) + rest, (profile[2],) + rest)
    config.add_optimization_profile(opt_profile)
    cache_bytes = b""
    if timing_cache and Path(timing_cache).is_file():
        cache_bytes = Path(timing_cache).read_bytes()
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TinctError(f"TensorRT failed to build an engine from {onnx_path.name} (see the log above)")
    header = {
        "tensorrt_version": trt.__version__, "gpu_name": gpu_name, "compute_capability": cc,
        "precision": precision, "source_onnx": str(onnx_path.resolve()), "source_onnx_sha256": sha,
        "profile": {"min": profile[0], "opt": profile[1], "max": profile[2]},
        "workspace_mib": int(workspace_mib), "props": props,
    }
    _atomic_write(out, pack_engine(header, memoryview(serialized)))
    if timing_cache:
        _atomic_write(Path(timing_cache), memoryview(config.get_timing_cache().serialize()))
    return out


def _atomic_write(path: Path, data) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
