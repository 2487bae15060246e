"""OpenVINO backend: IR (.xml + .bin) or, with ``--backend openvino``, an ONNX file directly.

The inference precision is ALWAYS set explicitly: OpenVINO's CPU plugin silently defaults to
bf16 on CPUs with AVX512-BF16/AMX (measured: ~54 dB PSNR vs fp32), so an fp32 artifact gets
``INFERENCE_PRECISION_HINT=f32`` unless bf16/f16 is asked for (or recorded by ``tinct build``).
``PERFORMANCE_HINT=LATENCY``; ``INFERENCE_NUM_THREADS`` from ``threads``; a pool of infer requests, one per
concurrent caller (thread-safe). With the LATENCY hint the CPU plugin runs one stream, so concurrent callers'
inferences take turns: 4 threads sharing one engine (1 thread each) gave 1.3x the updates/s of one thread on
2 cores, where ONNX Runtime gave 2.0x (``tinct bench soak``, docs/reliability.md).

Static batch: when only the batch dimension of the inputs is dynamic (every iColoriT / A-ColViT
artifact), the model is compiled for batch 1 at load and re-compiled, once per new batch size, for
other batches. With a dynamic batch OpenVINO re-runs shape inference inside every ``If`` body on
every call: measured on A-ColViT-T-0.5 INT8 (1 thread, its own gates) 8.07 ms dynamic vs 6.82 ms
static. Graphs with dynamic spatial dims (Color2Embed) stay dynamic: one compile serves every size.
For batch 1, a dynamic A-ColViT graph also loses the per-sample ``Where`` at the end of each
then-branch (:func:`fold_batch1_selects`: with one sample it always picks the new tokens).

The IR and its metadata are read and written by :mod:`runtime.backends.openvino_ir`.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from tinct.runtime.artifact import ArtifactError, check_graph
from tinct.runtime.backends.base import AUX_GATES_OUTPUT, Backend, check_io, meta_from_props, meta_summary
from tinct.runtime.backends.openvino_gates import GateSpecializer, if_ops, specialize
from tinct.runtime.backends.openvino_ir import (
    _ov,
    ov_error_line,
    patch_embedding_names,
    read_ir_props,
    with_f32_layers,
)
from tinct.runtime.cpu import require_isa
from tinct.runtime.errors import TinctError

# tinct precision names -> OpenVINO INFERENCE_PRECISION_HINT values
OV_PRECISION = {"fp32": "f32", "f32": "f32", "bf16": "bf16", "fp16": "f16", "f16": "f16"}


def _pshape(ps) -> list:
    return [d.get_length() if d.is_static else None for d in ps]


def _etype(t) -> str:
    return {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}.get(t.get_type_name(), t.get_type_name())


def _only_batch_dynamic(model) -> bool:
    """True when every input's batch dimension is dynamic and all its other dimensions are static."""
    shapes = [i.get_partial_shape() for i in model.inputs]
    return bool(shapes) and all(len(ps) > 0 and ps[0].is_dynamic and all(d.is_static for d in list(ps)[1:])
                                for ps in shapes)


def _with_batch(model, batch: int):
    m = model.clone()
    m.reshape({i: [batch] + [d.get_length() for d in list(i.get_partial_shape())[1:]] for i in m.inputs})
    return m


_PASS_THROUGH = ("Unsqueeze", "Reshape", "Squeeze", "Convert")


def fold_batch1_selects(model) -> int:
    """Batch-1 specialization of tinct's dynamic A-ColViT graphs; returns how many Selects it removed.

    Their ``If`` condition is "some sample of the batch keeps the sub-layer", and the then-branch
    ends with ``Where(keep[sample], new tokens, old tokens)`` so that each sample of a batch gets its
    own decision. With one sample the then-branch runs only when that sample keeps the sub-layer,
    so the ``Where`` always picks the new tokens: it is replaced by them (the same values, no
    arithmetic changes). Only a then-branch ``Select`` whose condition comes from a boolean body
    input and whose else-value is a body input is touched. Measured (A-ColViT-T-0.5 INT8, bf16 float
    ops, 1 thread, same run): 5.87 -> 5.66 ms."""
    n = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "If":
            continue
        body = op.get_then_body()
        params = {p.get_friendly_name() for p in body.get_parameters()}
        for node in body.get_ordered_ops():
            if node.get_type_name() != "Select":
                continue
            src = node.input(0).get_source_output().get_node()
            while src.get_type_name() in _PASS_THROUGH:
                src = src.input(0).get_source_output().get_node()
            old = node.input(2).get_source_output().get_node()
            if not (src.get_type_name() == "Parameter" and src.get_friendly_name() in params
                    and src.get_output_element_type(0).get_type_name() == "boolean"
                    and old.get_type_name() == "Parameter" and old.get_friendly_name() in params):
                continue
            new = node.input(1).get_source_output()
            for target in list(node.output(0).get_target_inputs()):
                target.replace_source_output(new)
            n += 1
        body.validate_nodes_and_infer_types()
    if n:
        model.validate_nodes_and_infer_types()
    return n


# Compile properties an artifact may record for its run time (build info "compile_config", JSON). tinct no
# longer writes any (its BF16 variants went when the AMX cause was found); IRs built by earlier versions that
# recorded SNIPPETS_MODE still load with it applied.
ALLOWED_COMPILE_CONFIG = {"SNIPPETS_MODE": ("ENABLE", "DISABLE", "IGNORE_CALLBACK")}


def compile_config_from(build: dict[str, str], name: str) -> dict[str, str]:
    raw = build.get("compile_config")
    if not raw:
        return {}
    try:
        cfg = json.loads(raw)
    except ValueError:
        raise ArtifactError(f"{name}: its build info compile_config is not JSON") from None
    if not isinstance(cfg, dict):
        raise ArtifactError(f"{name}: its build info compile_config is not a JSON object")
    for k, v in cfg.items():
        if k not in ALLOWED_COMPILE_CONFIG or v not in ALLOWED_COMPILE_CONFIG[k]:
            raise ArtifactError(f"{name}: compile_config {k}={v!r} is not a setting tinct applies "
                                f"({', '.join(ALLOWED_COMPILE_CONFIG)})")
    return {str(k): str(v) for k, v in cfg.items()}


def runtime_precisions(compiled) -> list[tuple[str, str, str]]:
    """(layer name, layer type, runtime precision) of every executed layer of a compiled model: what the
    plugin really runs, e.g. to see that the patch embedding ran in f32 under a bf16 hint."""
    out = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        out.append((op.get_friendly_name(), rt["layerType"].astype(str), rt["runtimePrecision"].astype(str)))
    return out


def _compile(core, model, device: str, config: dict, name: str, hint: str):
    if device == "CPU":
        require_isa(hint, name)
    try:
        return core.compile_model(model, device, config)
    except Exception as exc:
        raise TinctError(f"OpenVINO cannot compile {name} for {device} with precision {hint} "
                         f"({ov_error_line(exc)})") from None


# A process's first OpenVINO inferences must not start together: two threads making their first calls at
# once deadlocked the process (one in a static-init guard inside _pyopenvino, the other waiting for the GIL
# in pybind11's numpy setup; issue 15). Each backend's first call holds this lock.
_FIRST_CALL = threading.Lock()


class _RequestPool:
    """Infer requests of one compiled model, one per concurrent caller: an InferRequest holds its
    tensors, so sharing one between threads mixed their results (issue 15). Idle requests are kept
    (at most ``keep``); a caller never waits for another caller's request."""

    def __init__(self, compiled, keep: int = 8, records: list | None = None):
        self.compiled, self.keep = compiled, keep
        self._idle = [compiled.create_infer_request()]
        self._lock = threading.Lock()
        self.records = records  # profiling: each call's per-layer counters are appended here

    def infer(self, inputs):
        with self._lock:
            req = self._idle.pop() if self._idle else None
        if req is None:
            req = self.compiled.create_infer_request()
        try:
            res = req.infer(inputs, share_inputs=True, share_outputs=False)
            if self.records is not None:
                info = req.get_profiling_info()
                with self._lock:
                    self.records.extend({"name": p.node_name, "op": p.node_type, "exec": p.exec_type,
                                         "ms": p.real_time.total_seconds() * 1e3} for p in info)
            return res
        finally:
            with self._lock:
                if len(self._idle) < self.keep:
                    self._idle.append(req)


class OpenVINOBackend(Backend):
    name = "openvino"

    MAX_BATCH_SHAPES = 4  # compiled batch sizes kept per backend

    def __init__(self, path, compiled, meta, build_info, device, precision, threads, ov_version,
                 model=None, core=None, config=None, static_batch: int | None = None, folded_selects: int = 0,
                 f32_layers=(), profile: bool = False):
        self.path = path
        self.compiled = compiled
        self._records: list | None = [] if profile else None  # per-layer counters (profile=True)
        self._pool = _RequestPool(compiled, records=self._records)
        self._model, self._core, self._config = model, core, config
        self.static_batch = static_batch  # None: compiled with its dynamic shapes
        self._by_batch = {static_batch: self._pool} if static_batch else {}  # batch 1 is never evicted
        self._batch_lock = threading.Lock()
        self._called = False
        self.folded_selects = folded_selects  # per-sample Where nodes removed by the batch-1 specialization
        self.f32_layers = list(f32_layers)  # layers a bf16 compile was asked to keep in f32
        self.meta = meta
        self.build_info = build_info
        self.device = device
        self.precision = precision
        self.threads = threads
        self.ov_version = ov_version
        self.input_names = [i.get_any_name() for i in compiled.inputs]
        self.output_names = [o.get_any_name() for o in compiled.outputs]

    @classmethod
    def load(cls, path, device: str = "CPU", precision: str | None = None, threads: int = 0,
             core=None, profile: bool = False, specialize_gates: bool = True) -> OpenVINOBackend:
        ov = _ov()
        path = Path(path)
        if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
            raise ArtifactError(f"{path.name}: the IR's weights {path.with_suffix('.bin').name} are missing")
        core = core or ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ArtifactError(f"{path.name}: OpenVINO cannot read it ({first[:200]})") from None
        props, build = read_ir_props(model)
        meta = meta_from_props(props, path.name)

        check_graph(path.name, meta, Counter(op.get_type_name() for op in model.get_ordered_ops()),
                    schema=props.get("tinct.schema"))
        check_io(path.name,
                 [(i.get_any_name(), _pshape(i.get_partial_shape()), _etype(i.get_element_type()))
                  for i in model.inputs],
                 [(o.get_any_name(), _pshape(o.get_partial_shape()), _etype(o.get_element_type()))
                  for o in model.outputs])
        device = (device or "CPU").upper()
        if precision in (None, "auto"):
            hint = build.get("inference_precision", "f32")
        elif precision == "int8":
            if meta.precision != "int8":
                raise TinctError(f"{path.name} is a {meta.precision} artifact: INT8 needs a quantized artifact "
                                 "('tinct quantize'); --precision selects fp32, bf16 or fp16 here")
            # int8 comes from the graph's FakeQuantize/QDQ; the rest runs at the precision recorded by
            # 'tinct quantize --ov-float-precision' (f32 unless bf16 was chosen)
            hint = build.get("inference_precision", "f32")
        elif precision in OV_PRECISION:
            hint = OV_PRECISION[precision]
        else:
            raise TinctError(f"unknown precision {precision!r} for OpenVINO (fp32, bf16, fp16)")
        f32_layers = []
        if hint == "bf16":  # the patch embedding stays f32 (see patch_embedding_names)
            model = with_f32_layers(core, model)
            f32_layers = patch_embedding_names(model)
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                  **compile_config_from(build, path.name)}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if profile:  # the CPU plugin's per-layer performance counters, read by profile_records()
            config["PERF_COUNT"] = True
        static_batch = 1 if _only_batch_dynamic(model) else None
        to_compile, folded = model, 0
        if static_batch:
            to_compile = _with_batch(model, 1)
            if meta.gating == "dynamic":  # tinct's If export: any-sample condition + per-sample Where
                folded = fold_batch1_selects(to_compile)
        compiled = _compile(core, to_compile, device, config, path.name, hint)
        backend = cls(path, compiled, meta, build, device, hint, int(threads), ov.__version__,
                      model=model, core=core, config=config, static_batch=static_batch, folded_selects=folded,
                      f32_layers=f32_layers, profile=profile)
        if (specialize_gates and static_batch and meta.gating == "dynamic" and if_ops(to_compile)
                and AUX_GATES_OUTPUT in backend.output_names):  # see runtime.backends.openvino_gates
            backend._specializer = GateSpecializer(
                len(if_ops(to_compile)), lambda pattern: backend._compile_pool(specialize(to_compile, pattern)))
        return backend

    _specializer: GateSpecializer | None = None

    def _compile_pool(self, model) -> _RequestPool:
        """``model`` compiled like this backend's own graph, as a request pool."""
        return _RequestPool(_compile(self._core, model, self.device, self._config, self.path.name, self.precision),
                            records=self._records)

    def _pool_for(self, inputs: dict[str, np.ndarray]) -> _RequestPool:
        if not self.static_batch:
            return self._pool
        batch = int(np.shape(next(iter(inputs.values())))[0])
        with self._batch_lock:
            pool = self._by_batch.get(batch)
            if pool is None:
                if len(self._by_batch) >= self.MAX_BATCH_SHAPES:
                    self._by_batch.pop(next(k for k in self._by_batch if k != self.static_batch))
                compiled = _compile(self._core, _with_batch(self._model, batch), self.device, self._config,
                                    self.path.name, self.precision)
                pool = self._by_batch[batch] = _RequestPool(compiled, records=self._records)
        return pool

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Thread-safe: concurrent callers get their own infer requests (see :class:`_RequestPool`)."""
        pool = self._pool_for(inputs)
        run = pool.infer
        if self._specializer is not None and pool is self._pool:  # batch 1 of a dynamic A-ColViT
            def run(feed):
                return self._specializer.infer(feed, pool.infer)
        if not self._called:
            with _FIRST_CALL:
                res = run(inputs)
                self._called = True
        else:
            res = run(inputs)
        return {o.get_any_name(): np.asarray(v) for o, v in res.items()}

    def profile_records(self) -> list[dict]:
        """Per-layer records of every call since the load (``profile=True``), then cleared. Keys: name (the
        executed layer, a fused layer named after its main node), op (its layer type), exec (the kernel), ms.
        An ``If`` is one layer: the plugin does not report the layers of its bodies."""
        if self._records is None:
            raise TinctError(f"{self.path.name}: opened without profile=True")
        out = list(self._records)
        self._records.clear()
        return out

    def fused_layers(self) -> dict[str, list[str]]:
        """Executed layer name -> the types of the original operations fused into it (from the runtime model)."""
        types = {op.get_friendly_name(): op.get_type_name() for op in self._model.get_ordered_ops()}
        out = {}
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            rt = op.get_rt_info()
            names = rt["originalLayersNames"].astype(str) if "originalLayersNames" in rt.keys() else ""
            out[op.get_friendly_name()] = [types.get(n, "?") for n in names.split(",") if n]
        return out

    def io(self):
        c = self.compiled
        return ([(i.get_any_name(), _pshape(i.get_partial_shape()), _etype(i.get_element_type())) for i in c.inputs],
                [(o.get_any_name(), _pshape(o.get_partial_shape()), _etype(o.get_element_type())) for o in c.outputs])

    def describe(self) -> dict:
        try:
            t = self.compiled.get_property("INFERENCE_PRECISION_HINT")
            actual = t.get_type_name() if hasattr(t, "get_type_name") else str(t)
        except Exception:
            actual = self.precision
        try:
            nthreads = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        except Exception:
            nthreads = self.threads
        return {
            "backend": self.name, "device": self.device, "precision": self.meta.precision,
            "inference_precision": actual, "threads": nthreads or "default",
            "performance_hint": "LATENCY", "versions": {"openvino": self.ov_version},
            "shapes": f"static, batch {sorted(self._by_batch)}" if self.static_batch else "dynamic",
            "batch1_folded_selects": self.folded_selects,
            "gate_specialization": self._specializer.describe() if self._specializer else None,
            # what the plugin really runs them in (expected: f32 under a bf16 hint)
            "f32_layers": {name: prec for name, _t, prec in runtime_precisions(self.compiled)
                           if name in self.f32_layers},
            "compile_config": {k: v for k, v in self._config.items() if k in ALLOWED_COMPILE_CONFIG}
            if self._config else {},
            "artifact": str(self.path), "build": self.build_info, "meta": meta_summary(self.meta),
        }
