"""``tinct build``: an ONNX artifact compiled into an engine a backend runs (the runners are
:mod:`tinct.runtime.backends`). ``tinct doctor``, ``tinct colorize`` and the benchmarks call these too.

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

import json
import shutil
import tempfile
from pathlib import Path

from tinct.runtime.artifact import atomic_path, sha256_file
from tinct.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from tinct.runtime.backends.openvino_backend import OV_PRECISION, OpenVINOBackend
from tinct.runtime.backends.openvino_ir import build_info, commit_ir, convert, restamp_ir, save_ir
from tinct.runtime.backends.tensorrt_backend import _check, gpu_info, import_cudart, import_trt, pack_engine
from tinct.runtime.cpu import cpu_record, require_isa
from tinct.runtime.errors import TinctError
from tinct.verify.parity import BF16_SELF_CHECK_MAX_MEAN_AB, bf16_self_check


def _source(onnx_path: str | Path):
    """Validate the ONNX (readable, tinct metadata, I/O contract); return (path, meta, props, sha256)."""
    onnx_path = Path(onnx_path)
    if onnx_path.suffix.lower() != ".onnx":
        raise TinctError(f"{onnx_path.name}: 'tinct build' takes a .onnx artifact")
    if not onnx_path.is_file():
        raise TinctError(f"artifact {onnx_path} does not exist")
    src = OnnxRuntimeBackend.load(onnx_path, optimization="disable")
    props = {k: v for k, v in src.session.get_modelmeta().custom_metadata_map.items() if k.startswith("tinct.")}
    return onnx_path, src.meta, props, sha256_file(onnx_path)


def _check_out(out: Path, suffixes: tuple[str, ...]) -> None:
    if out.suffix.lower() not in suffixes:
        raise TinctError(f"output {out.name}: expected a {' or '.join(suffixes)} file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise TinctError(f"output directory {parent} does not exist")


def build_openvino(onnx_path, out, device: str = "CPU", precision: str = "fp32", threads: int = 0,
                   check: bool = True, log=None) -> Path:
    """ONNX -> IR (see the module docstring). BF16 on CPU: the IR keeps the patch embedding in f32
    (:func:`runtime.backends.openvino_backend.patch_embedding_names`, written by ``save_ir``) and is
    written only when its outputs agree with ONNX Runtime FP32 on the probes
    (:func:`tinct.verify.parity.bf16_self_check`)."""
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
    bf16_cpu = hint == "bf16" and device.upper() == "CPU"
    if bf16_cpu:
        require_isa("bf16", onnx_path.name)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent if str(out.parent) else "."))
    try:
        build = build_info(onnx_path, hint, sha, device.upper())
        (tmpdir / "ir").mkdir()
        (tmpdir / "final").mkdir()
        tmp_xml = save_ir(convert(onnx_path), tmpdir / "ir" / out.name, props, build)
        if bf16_cpu:
            mean_ab, nonfinite = bf16_self_check(tmp_xml, onnx_path, threads)  # the probes vs ORT FP32
            ok = nonfinite == 0 and mean_ab <= BF16_SELF_CHECK_MAX_MEAN_AB
            line = f"mean |Δab| {mean_ab:.3f}" + (f", {nonfinite} NaN/inf" if nonfinite else "")
            if log:
                log(f"build: bf16 {line} vs ONNX Runtime FP32 ({'kept' if ok else 'refused'})")
            if not ok:
                raise TinctError(f"{onnx_path.name}: BF16 does not agree with FP32 on this CPU ({line}; limit "
                                 f"{BF16_SELF_CHECK_MAX_MEAN_AB:g}); nothing written. Build fp32, or quantize to int8")
            # record the check and the machine it ran on in the IR
            tmp_xml = restamp_ir(tmp_xml, tmpdir / "final" / out.name, extra_build={
                "bf16_self_check_mean_ab": f"{mean_ab:.4f}", "verified_on": json.dumps(cpu_record())})
        elif check:  # read back and compile what was written before it replaces anything

            OpenVINOBackend.load(tmp_xml, device=device, precision=None, threads=threads).close()
        commit_ir(tmp_xml, out)
        return out
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def check_trt_int8(meta, name: str) -> None:
    """TensorRT's explicit quantization takes signed INT8 Q/DQ with zero point 0 only; refuse the
    U8-asymmetric Q/DQ of the ONNX Runtime / OpenVINO routes before anything is built."""

    if meta.precision != "int8":
        return
    acts = str((meta.extra.get("quantization") or {}).get("activations", ""))
    if not acts.startswith("int8 symmetric"):  # as recorded by 'tinct quantize --backend tensorrt'
        raise TinctError(f"{name}: its INT8 activations are {acts or 'of unknown scheme'}, but TensorRT takes signed "
                         f"INT8 Q/DQ with zero point 0 only; quantize for it with 'tinct quantize --backend tensorrt'")


def build_tensorrt(onnx_path, out, precision: str = "fp32", workspace_mib: int = 1024,
                   timing_cache: str | Path | None = None, profile: tuple[int, int, int] = (1, 1, 1),
                   device: int = 0) -> Path:

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
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
