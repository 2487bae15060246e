"""TensorRT backend (TensorRT 10/11 Python API, cuda-python for memory and streams).

Engine file layout (written by ``tinct build --backend tensorrt``, checked here before the engine
is deserialized)::

    b"TINCTTRT"            8-byte magic
    uint32 little-endian   length of the JSON header in bytes
    JSON header            {"format": 1, "tensorrt_version", "gpu_name", "compute_capability": "8.9",
                            "precision", "source_onnx", "source_onnx_sha256", "profile": {min,opt,max},
                            "props": {ArtifactMeta props, "tinct."-prefixed}}
    serialized engine      the bytes of IHostMemory from build_serialized_network

An engine is only valid for the TensorRT version and GPU architecture it was built for: a header
that disagrees with the running TensorRT or GPU (or, given the ONNX, an ONNX whose sha256 changed)
is refused with a message that says which and that ``--rebuild`` rebuilds it.

Runner: thread-safe, one execution context per concurrent caller (TensorRT's rule: a context serves one
stream at a time), each with its own CUDA stream and device / page-locked host buffers sized for the
profile's max batch, allocated once and reused (idle contexts kept, at most ``KEEP_IDLE``); outputs are
copied out before the context goes back to the pool. Written to the TensorRT 10 API and never executed
here (no TensorRT on these machines). TensorRT and cuda-python are imported lazily (at load).
"""

from __future__ import annotations

import ctypes
import json
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinct.runtime.artifact import ArtifactError, sha256_file
from tinct.runtime.backends.base import AUX_GATES_OUTPUT, Backend, meta_from_props, meta_summary
from tinct.runtime.errors import MissingExtraError, TinctError

MAGIC = b"TINCTTRT"
HEADER_FORMAT = 1
_MAX_HEADER = 1 << 24


class StaleEngineError(ArtifactError):
    """The engine was built for another TensorRT, GPU or ONNX: rebuild it."""


# ----------------------------------------------------------------------------- file format (no TensorRT needed)

def pack_engine(header: dict, engine_bytes: bytes) -> bytes:
    h = json.dumps({"format": HEADER_FORMAT, **header}, sort_keys=True).encode()
    return MAGIC + struct.pack("<I", len(h)) + h + bytes(engine_bytes)


def read_engine_file(path: str | Path) -> tuple[dict, memoryview]:
    """(header, engine bytes). Raises ArtifactError for anything that is not a tinct engine file."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise ArtifactError(f"{path.name}: not a tinct TensorRT engine (no {MAGIC.decode()} header); "
                            "build engines with 'tinct build --backend tensorrt'")
    if len(data) < len(MAGIC) + 4:
        raise ArtifactError(f"{path.name}: truncated engine header")
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if n > _MAX_HEADER or start + n > len(data):
        raise ArtifactError(f"{path.name}: truncated or corrupt engine header")
    try:
        header = json.loads(data[start:start + n].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path.name}: corrupt engine header ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != HEADER_FORMAT:
        raise ArtifactError(f"{path.name}: unsupported engine header format {header.get('format')!r}")
    engine = memoryview(data)[start + n:]
    if not len(engine):
        raise ArtifactError(f"{path.name}: the engine file holds a header but no engine")
    return header, engine


def check_engine_header(header: dict, where: str, trt_version: str, gpu_cc: str,
                        onnx_path: str | Path | None = None) -> None:
    """Refuse an engine built for another TensorRT version, GPU architecture or source ONNX."""
    hint = "rebuild it with 'tinct build --backend tensorrt' (or pass --rebuild)"
    if header.get("tensorrt_version") != trt_version:
        raise StaleEngineError(f"{where} was built with TensorRT {header.get('tensorrt_version')}, this is "
                               f"TensorRT {trt_version}: {hint}")
    if str(header.get("compute_capability")) != str(gpu_cc):
        raise StaleEngineError(f"{where} was built for compute capability {header.get('compute_capability')} "
                               f"({header.get('gpu_name')}), this GPU is {gpu_cc}: {hint}")
    if onnx_path is not None and Path(onnx_path).is_file():
        if sha256_file(onnx_path) != header.get("source_onnx_sha256"):
            raise StaleEngineError(f"{where}: the ONNX {Path(onnx_path).name} changed since the engine was "
                                   f"built: {hint}")


# ----------------------------------------------------------------------------- CUDA helpers

def import_trt():
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingExtraError("colorize --backend tensorrt", "tensorrt", "tensorrt") from None
    return trt


def import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python layout
        except ImportError:
            raise MissingExtraError("colorize --backend tensorrt", "cuda", "tensorrt") from None
    return cudart


def _check(result):
    """cuda-python returns (err, *values): raise on error, return the values."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise TinctError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else (tuple(rest) if rest else None)


def gpu_info(cudart, device: int = 0) -> tuple[str, str]:
    props = _check(cudart.cudaGetDeviceProperties(device))
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return name, f"{props.major}.{props.minor}"


@dataclass
class _Slot:
    context: object
    stream: object
    buffers: dict  # name -> (device ptr, page-locked host view, nbytes, host ptr)


class TensorRTBackend(Backend):
    name = "tensorrt"

    @classmethod
    def load(cls, path, device: str | int | None = 0, onnx: str | Path | None = None, precision=None,
             threads: int = 0) -> TensorRTBackend:
        path = Path(path)
        header, engine_bytes = read_engine_file(path)
        meta = meta_from_props(header.get("props", {}), path.name)
        if precision not in (None, "auto", header.get("precision")):
            raise TinctError(f"{path.name} is a {header.get('precision')} engine; build another for {precision}")
        trt = import_trt()
        cudart = import_cudart()
        dev = 0 if device in (None, "", "GPU", "CUDA", "cuda") else int(str(device).split(":")[-1])
        _check(cudart.cudaSetDevice(dev))
        gpu_name, cc = gpu_info(cudart, dev)
        check_engine_header(header, path.name, trt.__version__, cc, onnx)
        self = cls.__new__(cls)
        self.trt, self.cudart = trt, cudart
        self.path, self.meta, self.header = path, meta, header
        self.gpu_name, self.compute_capability, self.device_index = gpu_name, cc, dev
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(bytes(engine_bytes))
        if self.engine is None:
            raise ArtifactError(f"{path.name}: TensorRT could not deserialize the engine")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(self.input_names) != 1 or len([n for n in self.output_names if n != AUX_GATES_OUTPUT]) != 1:
            raise ArtifactError(f"{path.name}: expected one input and one output tensor (plus optional 'gates')")
        self.max_batch = int(header.get("profile", {}).get("max", 1))
        self._lock = threading.Lock()
        self._idle: list[_Slot] = []
        self._all: list[_Slot] = []
        self._release(self._new_slot())  # the first context now: a broken engine fails at load, not at a call
        return self

    def _new_slot(self) -> _Slot:
        """An execution context with its own CUDA stream and device / page-locked host buffers (sized for the
        profile's max batch): one per concurrent caller, as TensorRT requires."""
        trt, cudart = self.trt, self.cudart
        slot = _Slot(self.engine.create_execution_context(), _check(cudart.cudaStreamCreate()), {})
        with self._lock:
            self._all.append(slot)
        for n in (*self.input_names, *self.output_names):
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(n)))
            shape = tuple(self.engine.get_tensor_shape(n))
            full = (self.max_batch,) + tuple(int(d) for d in shape[1:])
            nbytes = int(np.prod(full)) * dtype.itemsize
            dptr = _check(cudart.cudaMalloc(nbytes))
            hptr = _check(cudart.cudaMallocHost(nbytes))
            host = np.ctypeslib.as_array((ctypes.c_byte * nbytes).from_address(int(hptr))).view(dtype).reshape(full)
            slot.buffers[n] = (int(dptr), host, nbytes, int(hptr))
            slot.context.set_tensor_address(n, int(dptr))
        return slot

    def _acquire(self) -> _Slot:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new_slot()

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            if len(self._idle) < self.KEEP_IDLE:
                self._idle.append(slot)
                return
            self._all.remove(slot)
        self._free(slot)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Thread-safe: each concurrent caller runs its own execution context and stream; the outputs are
        copies (the page-locked buffers belong to the context, which the next caller reuses)."""
        cudart = self.cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        if self.device_index:  # the CUDA device is per host thread
            _check(cudart.cudaSetDevice(self.device_index))
        slot = self._acquire()
        try:
            n = None
            for name in self.input_names:
                arr = inputs[name]
                n = arr.shape[0]
                if n > self.max_batch:
                    raise TinctError(f"batch {n} exceeds the engine's max batch {self.max_batch}")
                dptr, host, _nb, _h = slot.buffers[name]
                np.copyto(host[:n], arr, casting="same_kind")
                _check(cudart.cudaMemcpyAsync(dptr, host.ctypes.data, host[:n].nbytes, h2d, slot.stream))
                slot.context.set_input_shape(name, tuple(arr.shape))
            if not slot.context.execute_async_v3(slot.stream):
                raise TinctError("TensorRT execute_async_v3 failed")
            for name in self.output_names:
                dptr, host, _nb, _h = slot.buffers[name]
                _check(cudart.cudaMemcpyAsync(host.ctypes.data, dptr, host[:n].nbytes, d2h, slot.stream))
            _check(cudart.cudaStreamSynchronize(slot.stream))
            return {name: slot.buffers[name][1][:n].copy() for name in self.output_names}
        finally:
            self._release(slot)

    def io(self):
        e = self.engine
        return ([(n, list(e.get_tensor_shape(n)), str(e.get_tensor_dtype(n))) for n in self.input_names],
                [(n, list(e.get_tensor_shape(n)), str(e.get_tensor_dtype(n))) for n in self.output_names])

    def describe(self) -> dict:
        return {"backend": self.name, "device": f"cuda:{self.device_index} {self.gpu_name} (sm {self.compute_capability})",
                "precision": self.header.get("precision"), "threads": "n/a",
                "versions": {"tensorrt": self.trt.__version__}, "artifact": str(self.path),
                "profile": self.header.get("profile"), "meta": meta_summary(self.meta)}

    KEEP_IDLE = 4  # idle execution contexts kept (each holds its buffers on the device)

    def _free(self, slot: _Slot) -> None:
        for dptr, _host, _nb, hptr in slot.buffers.values():
            self.cudart.cudaFree(dptr)
            self.cudart.cudaFreeHost(hptr)
        slot.buffers.clear()
        if slot.stream is not None:
            self.cudart.cudaStreamDestroy(slot.stream)
            slot.stream = None

    def close(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            slots, self._all, self._idle = list(getattr(self, "_all", [])), [], []
        for slot in slots:
            self._free(slot)
