"""ONNX Runtime backend: CPU by default, CUDA / TensorRT execution providers when asked and present.

Options: ``providers`` (list of names or ``"auto"``: TensorRT, CUDA, then CPU as available),
``threads`` (intra-op threads; 0 = ORT's default), ``disabled_optimizers`` (e.g.
``["QDQPropagationTransformer"]``, needed for Q/DQ branches spliced into ``If`` nodes: ORT 1.31
aborts otherwise), ``optimization`` ("all" default, "extended", "basic", "disable").
One InferenceSession per backend, reused for every call; outputs come back as fresh arrays.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tinct.runtime.artifact import (
    ArtifactError,
    ArtifactMeta,
    check_graph,
    onnx_graph_summary,
    read_onnx_props,
)
from tinct.runtime.backends.base import Backend, check_io, meta_from_props, meta_summary
from tinct.runtime.errors import TinctError

_OPT_LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}
_PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                     "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider"}


def _resolve_providers(providers) -> list[str]:
    avail = ort.get_available_providers()
    if providers is None:
        return ["CPUExecutionProvider"]
    if providers == "auto":
        pref = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
        return [p for p in pref if p in avail]
    if isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    out = []
    for p in providers:
        full = _PROVIDER_ALIASES.get(p.lower(), p)
        if full not in avail:
            raise TinctError(f"ONNX Runtime execution provider {full} is not available here "
                             f"(available: {', '.join(avail)})")
        out.append(full)
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")
    return out


def _shape(s) -> list:
    return [d if isinstance(d, int) else None for d in s]


# ONNX Runtime 1.31+ aborts the whole process (an STL assertion, not an exception) when its
# QDQPropagationTransformer meets Q/DQ inside If branches (tinct's INT8 A-ColViT graphs). The quantizer
# records the workaround in the artifact (extra.runtime_options.onnxruntime.disabled_optimizers) and the
# runtime applies it; artifacts from before that record are recognised by int8 + dynamic gating.
QDQ_IF_DISABLED = ["QDQPropagationTransformer"]


def recorded_disabled_optimizers(path: Path) -> list[str] | None:
    """The optimizers an artifact says ONNX Runtime must not run (read with optimizations off, which is
    safe for any graph); None when it needs none or cannot be read (the real load reports that)."""

    try:
        meta = ArtifactMeta.from_props(read_onnx_props(path), where=path.name)
    except (ArtifactError, TinctError):
        return None
    extra = meta.extra if isinstance(meta.extra, dict) else {}
    opts = ((extra.get("runtime_options") or {}).get("onnxruntime") or {}) if isinstance(
        extra.get("runtime_options"), dict) else {}
    recorded = opts.get("disabled_optimizers")
    if isinstance(recorded, list) and all(isinstance(x, str) for x in recorded):
        return recorded or None
    if meta.precision == "int8" and meta.gating == "dynamic":
        return list(QDQ_IF_DISABLED)
    return None


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: Path, session: ort.InferenceSession, meta, threads: int, opt: str,
                 disabled_optimizers: list[str]):
        self.path = path
        self.session = session
        self.meta = meta
        self.threads = threads
        self.optimization = opt
        self.disabled_optimizers = disabled_optimizers
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    @classmethod
    def load(cls, path, providers=None, threads: int = 0, disabled_optimizers=None,
             optimization: str = "all", precision: str | None = None, device: str | None = None,
             profile: bool = False) -> OnnxRuntimeBackend:
        path = Path(path)
        if disabled_optimizers is None and optimization != "disable":
            disabled_optimizers = recorded_disabled_optimizers(path)
        if precision not in (None, "fp32", "auto"):
            raise TinctError(f"ONNX Runtime runs the precision stored in the graph; --precision {precision} "
                             "needs an artifact exported/quantized at that precision (or --backend openvino)")
        if device and device.upper() not in ("CPU", "CUDA", "GPU"):
            raise TinctError(f"ONNX Runtime device {device!r}: use CPU, or CUDA via providers")
        if device and device.upper() in ("CUDA", "GPU") and providers is None:
            providers = ["CUDAExecutionProvider"]
        so = ort.SessionOptions()
        so.graph_optimization_level = _OPT_LEVELS[optimization]
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        # no busy-waiting after a run: the session's post-processing threads run right after the model and
        # ONNX Runtime's spinning threads slowed them (measured: docs/performance.md, "Interactive update at photo resolution")
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        profile_dir = None
        if profile:  # ONNX Runtime's own profiler: a JSON trace per session, read by profile_records()
            profile_dir = Path(tempfile.mkdtemp(prefix="tinct-ort-profile-"))
            so.enable_profiling = True
            so.profile_file_prefix = str(profile_dir / "profile")
        disabled = list(disabled_optimizers or [])
        kwargs = {"providers": _resolve_providers(providers)}
        if disabled:
            kwargs["disabled_optimizers"] = disabled
        try:
            session = ort.InferenceSession(str(path), sess_options=so, **kwargs)
        except Exception as exc:  # ORT raises its own pybind exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"{path.name}: ONNX Runtime cannot load it ({first[:200]})") from None
        props = dict(session.get_modelmeta().custom_metadata_map)
        meta = meta_from_props(props, path.name)

        fp16 = meta.precision == "fp16"
        graph = onnx_graph_summary(path)
        check_graph(path.name, meta, graph["ops"], schema=props.get("tinct.schema"),
                    low_precision_weights=bool(graph["initializer_types"].get(10)) if fp16 else None)
        check_io(path.name,
                 [(i.name, _shape(i.shape), _TYPES.get(i.type, i.type)) for i in session.get_inputs()],
                 [(o.name, _shape(o.shape), _TYPES.get(o.type, o.type)) for o in session.get_outputs()])
        backend = cls(path, session, meta, int(threads), optimization, disabled)
        backend._profile_dir = profile_dir
        return backend

    _profile_dir: Path | None = None

    def profile_records(self) -> list[dict]:
        """Per-node records of every call since the load (``profile=True``); ends the session's profiling.
        Keys: name, op, ms, and ts/tid (microseconds, thread) to tell nested subgraph nodes of an ``If``."""
        if self._profile_dir is None:
            raise TinctError(f"{self.path.name}: opened without profile=True")
        trace = Path(self.session.end_profiling())
        try:
            events = json.loads(trace.read_text())
        finally:
            shutil.rmtree(self._profile_dir, ignore_errors=True)
            self._profile_dir = None
        return [{"name": e["name"].removesuffix("_kernel_time"), "op": e.get("args", {}).get("op_name", "?"),
                 "ms": e["dur"] / 1e3, "ts": e["ts"], "tid": e.get("tid", 0)}
                for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outs))

    def io(self):
        s = self.session
        return ([(i.name, _shape(i.shape), _TYPES.get(i.type, i.type)) for i in s.get_inputs()],
                [(o.name, _shape(o.shape), _TYPES.get(o.type, o.type)) for o in s.get_outputs()])

    def describe(self) -> dict:
        prov = self.session.get_providers()
        return {
            "backend": self.name, "device": prov[0].replace("ExecutionProvider", ""),
            "providers": prov, "precision": self.meta.precision,
            "threads": self.threads or "default", "optimization": self.optimization,
            "disabled_optimizers": self.disabled_optimizers,
            "versions": {"onnxruntime": ort.__version__}, "artifact": str(self.path),
            "meta": meta_summary(self.meta),
        }
