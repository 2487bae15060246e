"""The TensorRT runner's thread safety, on a fake TensorRT + CUDA runtime (no GPU here): every concurrent
caller gets its own execution context, stream and buffers, and outputs never alias a buffer the next caller
writes. The fake executes "out = 2 * in + context id * 0" on byte buffers at real addresses (ctypes), with
a sleep inside execute so that callers overlap; sharing a context or returning views would mix results."""

from __future__ import annotations

import ctypes
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest


class FakeCuda:
    class cudaMemcpyKind:  # noqa: N801 - cuda-python's name
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost = 1, 2

    def __init__(self):
        self.mem: dict[int, np.ndarray] = {}
        self.freed = 0
        self.streams = 0
        self.live_streams = self.max_live_streams = 0  # one stream per execution context alive
        self._lock = threading.Lock()

    def _alloc(self, n):
        a = np.zeros(n, np.uint8)
        self.mem[a.ctypes.data] = a
        return 0, a.ctypes.data

    cudaMalloc = cudaMallocHost = _alloc

    def cudaFree(self, p):
        self.freed += 1
        return (0,)

    cudaFreeHost = cudaFree

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        ctypes.memmove(dst, src, n)
        return (0,)

    def cudaStreamCreate(self):
        with self._lock:
            self.streams += 1
            self.live_streams += 1
            self.max_live_streams = max(self.max_live_streams, self.live_streams)
        return 0, object()

    def cudaStreamSynchronize(self, s):
        return (0,)

    def cudaStreamDestroy(self, s):
        with self._lock:
            self.live_streams -= 1
        return (0,)

    def cudaSetDevice(self, d):
        return (0,)


class FakeContext:
    def __init__(self, engine):
        self.engine, self.addr, self.busy = engine, {}, threading.Lock()
        engine.contexts += 1

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr

    def set_input_shape(self, name, shape):
        self.n = shape[0]

    def execute_async_v3(self, stream):
        if not self.busy.acquire(blocking=False):
            raise AssertionError("one execution context used by two callers at once")
        try:
            count = self.n * 2 * 4 * 4
            src = np.ctypeslib.as_array((ctypes.c_float * count).from_address(self.addr["x"]))
            time.sleep(0.002)  # callers overlap here
            dst = np.ctypeslib.as_array((ctypes.c_float * count).from_address(self.addr["ab"]))
            dst[:] = 2 * src
            return True
        finally:
            self.busy.release()


class FakeEngine:
    num_io_tensors = 2

    def __init__(self):
        self.contexts = 0

    def get_tensor_name(self, i):
        return ("x", "ab")[i]

    def get_tensor_mode(self, n):
        return "in" if n == "x" else "out"

    def get_tensor_dtype(self, n):
        return np.float32

    def get_tensor_shape(self, n):
        return (-1, 2, 4, 4)

    def create_execution_context(self):
        return FakeContext(self)


@pytest.fixture
def fake_trt(monkeypatch):
    from tinct.runtime.backends import tensorrt_backend as tb

    cuda, engine = FakeCuda(), FakeEngine()
    trt = SimpleNamespace(__version__="10.0.0", Logger=SimpleNamespace(WARNING=0),
                          TensorIOMode=SimpleNamespace(INPUT="in", OUTPUT="out"), nptype=lambda t: t,
                          Runtime=lambda logger: SimpleNamespace(deserialize_cuda_engine=lambda b: engine))
    trt.Logger = lambda level: None
    trt.Logger.WARNING = 0
    props = {"tinct.model": "fake", "tinct.architecture": "icolorit", "tinct.config": "{}", "tinct.precision": "fp32"}
    monkeypatch.setattr(tb, "import_trt", lambda: trt)
    monkeypatch.setattr(tb, "import_cudart", lambda: cuda)
    monkeypatch.setattr(tb, "read_engine_file", lambda p: ({"props": props, "profile": {"max": 2}}, memoryview(b"E")))
    monkeypatch.setattr(tb, "check_engine_header", lambda *a, **k: None)
    monkeypatch.setattr(tb, "gpu_info", lambda c, d=0: ("fake GPU", "9.0"))
    monkeypatch.setattr(tb, "meta_from_props", lambda props, where: SimpleNamespace(**{"static_gates": None}))
    return tb, cuda, engine


def test_each_concurrent_caller_gets_its_own_context_and_copies(fake_trt, tmp_path):
    tb, cuda, engine = fake_trt
    b = tb.TensorRTBackend.load(tmp_path / "m.engine")
    assert engine.contexts == 1  # made at load: a broken engine fails there
    xs = [np.full((1, 2, 4, 4), float(k), np.float32) for k in range(64)]
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda x: b.infer({"x": x})["ab"], xs))
    for k, out in enumerate(outs):
        assert np.array_equal(out, 2 * xs[k]), k  # no result mixed with another caller's
    # contexts made on demand: more than one, and never more alive at once than concurrent callers (a freed
    # idle context may be made again later, so the count of creations is not bounded, the live count is)
    assert engine.contexts > 1 and cuda.max_live_streams <= 8
    first = b.infer({"x": xs[1]})["ab"]
    b.infer({"x": xs[2]})
    assert np.array_equal(first, 2 * xs[1])  # the returned array is not the reused buffer
    with pytest.raises(tb.TinctError, match="max batch 2"):
        b.infer({"x": np.zeros((3, 2, 4, 4), np.float32)})
    b.close()
    assert cuda.freed == 4 * engine.contexts  # every context's device and host buffers (2 tensors each)
