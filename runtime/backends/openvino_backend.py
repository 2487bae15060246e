"""OpenVINO backend: IR (.xml + .bin) or, with ``--backend openvino``, an ONNX file directly.

The inference precision is ALWAYS set explicitly: OpenVINO's CPU plugin silently defaults to
bf16 on CPUs with AVX512-BF16/AMX (measured: ~54 dB PSNR vs fp32), so an fp32 artifact gets
``INFERENCE_PRECISION_HINT=f32`` unless bf16/f16 is asked for (or recorded by ``tinct build``).
``PERFORMANCE_HINT=LATENCY``; ``INFERENCE_NUM_THREADS`` from ``threads``; a pool of infer requests, one per
concurrent caller (thread-safe). With the LATENCY hint the CPU plugin runs one stream, so concurrent callers'
inferences take turns: 4 threads sharing one engine (1 thread each) gave 1.3x the updates/s of one thread on
2 cores, where ONNX Runtime gave 2.0x (``tinct bench soak``, README *Reliability*).

Static batch: when only the batch dimension of the inputs is dynamic (every iColoriT / A-ColViT
artifact), the model is compiled for batch 1 at load and re-compiled, once per new batch size, for
other batches. With a dynamic batch OpenVINO re-runs shape inference inside every ``If`` body on
every call: measured on A-ColViT-T-0.5 INT8 (1 thread, its own gates) 8.07 ms dynamic vs 6.82 ms
static. Graphs with dynamic spatial dims (Color2Embed) stay dynamic: one compile serves every size.
For batch 1, a dynamic A-ColViT graph also loses the per-sample ``Where`` at the end of each
then-branch (:func:`fold_batch1_selects`: with one sample it always picks the new tokens).

IR metadata layout (written by ``tinct build``, read here), in the model's ``rt_info``::

    <rt_info>
      <tinct>
        <meta>   one entry per ArtifactMeta prop, key WITHOUT the "tinct." prefix
                 (model, architecture, config, precision, gating, ..., all strings as in ONNX)
        <build>  layout ("1"), inference_precision (f32|bf16|f16), device, openvino_version,
                 source_onnx (file name), source_onnx_sha256
      </tinct>
    </rt_info>

An ONNX read by OpenVINO keeps its ``metadata_props`` under ``rt_info["framework"]`` with the
``tinct.`` prefix; both are accepted.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from tinct.runtime.artifact import PREFIX, ArtifactError
from tinct.runtime.backends.base import Backend, check_io, meta_from_props, meta_summary
from tinct.runtime.errors import MissingExtraError, TinctError

RT_ROOT = "tinct"
RT_LAYOUT = "1"
# tinct precision names -> OpenVINO INFERENCE_PRECISION_HINT values
OV_PRECISION = {"fp32": "f32", "f32": "f32", "bf16": "bf16", "fp16": "f16", "f16": "f16"}


def _ov():
    try:
        import openvino as ov
    except ImportError:
        raise MissingExtraError("colorize --backend openvino", "openvino", "openvino") from None
    return ov


def _rt_dict(model, path: list[str]) -> dict[str, str]:
    if not model.has_rt_info(path):
        return {}
    try:
        d = model.get_rt_info(path).astype(dict)
    except Exception:
        return {}
    out = {}
    for k, v in d.items():
        try:
            out[k] = v.astype(str)
        except Exception:
            out[k] = str(v.value) if hasattr(v, "value") else str(v)
    return out


def read_ir_props(model) -> tuple[dict[str, str], dict[str, str]]:
    """(ArtifactMeta props with the tinct. prefix, build info) from an ov.Model's rt_info."""
    meta = {PREFIX + k: v for k, v in _rt_dict(model, [RT_ROOT, "meta"]).items()}
    if not meta:
        meta = {k: v for k, v in _rt_dict(model, ["framework"]).items() if k.startswith(PREFIX)}
    return meta, _rt_dict(model, [RT_ROOT, "build"])


def write_ir_props(model, props: dict[str, str], build: dict[str, str]) -> None:
    """Store ArtifactMeta props (``tinct.``-prefixed keys) and build info in rt_info (layout above)."""
    for k, v in props.items():
        model.set_rt_info(str(v), [RT_ROOT, "meta", k.removeprefix(PREFIX)])
    for k, v in {"layout": RT_LAYOUT, **build}.items():
        model.set_rt_info(str(v), [RT_ROOT, "build", k])


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


def ov_error_line(exc: BaseException) -> str:
    """The informative line of an OpenVINO exception: its text starts with a source location
    ("Exception from src/inference/src/cpp/core.cpp:117:") and says what went wrong after it."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '", "[ GENERAL_ERROR ]"))]
    text = (useful or lines or [type(exc).__name__])[0]
    return text.removeprefix("[ GENERAL_ERROR ]").strip()[:200]


# Compile properties an artifact may record for its run time (build info "compile_config", JSON). tinct no
# longer writes any (its BF16 variants went when the AMX cause was found); IRs built by earlier versions that
# recorded SNIPPETS_MODE still load with it applied.
ALLOWED_COMPILE_CONFIG = {"SNIPPETS_MODE": ("ENABLE", "DISABLE", "IGNORE_CALLBACK")}


def compile_config_from(build: dict[str, str], name: str) -> dict[str, str]:
    import json

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


# --- BF16 on CPUs: the patch embedding stays f32 -------------------------------------------------------------
# OpenVINO 2026.4 on Intel AMX CPUs computes the ViTs' patch-embedding Convolution wrongly in bf16: one
# convolution 1 x IC x 224^2 -> 192, kernel 16, stride 16, bf16 vs f32 (primitive brgconv_avx512_amx_bf16),
# mean relative |delta| 0.0022 for IC 1/2/3/5/32 but 1.06 / 1.12 / 1.23 for IC 4 / 8 / 16 (iColoriT's input
# has 4 channels); kernels below 16 and AMX masked off are fine (Intel Xeon family 6 model 207,
# benchmarks/repro_openvino_amx_bf16.py). Every IR tinct writes marks that layer with OpenVINO's "precise"
# attribute and every bf16 compile applies the mark (an ONNX or an older IR gets it at load), so the CPU plugin
# runs it in f32 and everything else in bf16. The layer is ~2.7 % of iColoriT-T's MACs: measured on that
# Xeon, 1 thread, 11.02 ms vs 10.57 ms for plain (wrong) bf16.
PRECISE_RT_KEY = "DisablePrecisionConversion_0"  # how the IR's "precise" attribute reads back in rt_info


def patch_embedding_names(model) -> list[str]:
    """Friendly names of the patch embeddings of ``model`` (an ov.Model): top-level Convolutions that cut
    their input into non-overlapping patches (kernel == strides, every side > 1, no padding). iColoriT and
    A-ColViT have one; Color2Embed has none (its strided convolutions overlap or are 1x1)."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Convolution":
            continue
        kernel = op.input(1).get_partial_shape()
        if kernel.rank.is_dynamic or not all(d.is_static for d in list(kernel)[2:]):
            continue
        k = [d.get_length() for d in list(kernel)[2:]]
        a = op.get_attributes()
        if list(a["strides"]) == k and all(s > 1 for s in k) and not any(a["pads_begin"]) \
                and not any(a["pads_end"]):
            names.append(op.get_friendly_name())
    return names


def _is_precise(op) -> bool:
    return PRECISE_RT_KEY in op.get_rt_info().keys()


def mark_precise_ir(xml: str | Path, names) -> int:
    """Give the IR layers named ``names`` OpenVINO's "precise" runtime attribute, which makes the CPU
    plugin keep them in their original f32 under a bf16 inference precision. Done on the saved XML:
    the Python API cannot create that typed attribute (a plain rt_info entry under its key makes
    compile_model fail), and ``ov.save_model`` writes it back once it was read from an XML.
    Returns how many layers were marked."""
    import xml.etree.ElementTree as ET

    wanted = set(names)
    tree = ET.parse(str(xml))
    n = 0
    for layer in tree.getroot().iter("layer"):
        if layer.get("name") not in wanted:
            continue
        rt = layer.find("rt_info")
        if rt is None:
            rt = ET.SubElement(layer, "rt_info")
        if not any(a.get("name") == "precise" for a in rt.findall("attribute")):
            ET.SubElement(rt, "attribute", {"name": "precise", "version": "0"})
        n += 1
    tree.write(str(xml), encoding="utf-8", xml_declaration=True)
    return n


def with_f32_layers(core, model):
    """``model`` with its :func:`patch_embedding_names` carrying the "precise" mark: itself when they already do
    (an IR tinct wrote), else a copy made through an in-memory IR round trip (an ONNX, an older IR)."""
    import tempfile

    ov = _ov()
    names = set(patch_embedding_names(model))
    if all(_is_precise(op) for op in model.get_ordered_ops() if op.get_friendly_name() in names):
        return model
    with tempfile.TemporaryDirectory(prefix="tinct-ir-") as d:
        xml = Path(d) / "m.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        mark_precise_ir(xml, names)
        weights = ov.Tensor(np.fromfile(xml.with_suffix(".bin"), dtype=np.uint8))
        return core.read_model(xml.read_text(encoding="utf-8"), weights)


def runtime_precisions(compiled) -> list[tuple[str, str, str]]:
    """(layer name, layer type, runtime precision) of every executed layer of a compiled model: what the
    plugin really runs, e.g. to see that the patch embedding ran in f32 under a bf16 hint."""
    out = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        out.append((op.get_friendly_name(), rt["layerType"].astype(str), rt["runtimePrecision"].astype(str)))
    return out


def save_ir(model, out_xml: str | Path, props: dict[str, str], build: dict[str, str]) -> Path:
    """The one IR writer: tinct metadata and build info into rt_info (with the layers kept f32 under
    bf16, ``f32_layers``), ``ov.save_model`` with the weights kept as they are, then the "precise" marks
    of those layers, so any OpenVINO user of the IR (benchmark_app, Triton) gets the fix too."""
    import json

    ov = _ov()
    keep = patch_embedding_names(model)
    write_ir_props(model, props, {**build, **({"f32_layers": json.dumps(keep)} if keep else {})})
    ov.save_model(model, str(out_xml), compress_to_fp16=False)
    if keep:
        mark_precise_ir(out_xml, keep)
    return Path(out_xml)


def commit_ir(tmp_xml: str | Path, out: str | Path) -> Path:
    """Move a finished IR into place: the .bin first, the .xml last, so a visible .xml always has its .bin."""
    import os

    os.replace(Path(tmp_xml).with_suffix(".bin"), Path(out).with_suffix(".bin"))
    os.replace(tmp_xml, out)
    return Path(out)


def convert(onnx_path: str | Path):
    """``ov.convert_model`` of an ONNX file, or a one-line error naming the file."""
    ov = _ov()
    try:
        return ov.convert_model(str(onnx_path))
    except Exception as exc:
        raise TinctError(f"OpenVINO cannot convert {Path(onnx_path).name} ({ov_error_line(exc)})") from None


def restamp_ir(xml: str | Path, out_xml: str | Path, props: dict[str, str] | None = None,
               extra_build: dict[str, str] | None = None) -> Path:
    """Re-save an IR under a new name with new tinct metadata (``props``; None keeps its own) and more
    build info. Always a new file: the read model maps the old .bin, and overwriting it in place crashes."""
    if Path(out_xml).resolve() == Path(xml).resolve():
        raise ValueError("restamp_ir writes a new file")
    model = _ov().Core().read_model(str(xml))
    own_props, build = read_ir_props(model)
    build.pop("layout", None)
    try:
        return save_ir(model, out_xml, own_props if props is None else props, {**build, **(extra_build or {})})
    finally:
        del model


def require_precision_isa(hint: str, name: str) -> None:
    """Refuse, in one line naming the missing instruction set, a precision this CPU cannot run natively
    (OpenVINO itself fails with a cut message under AVX2 and emulates bf16 slowly under AVX512_CORE)."""
    from tinct.runtime.cpu import missing_isa

    why = missing_isa(hint)
    if why:
        raise TinctError(f"{name}: cannot run here: {why}; use an fp32 or int8 artifact on this CPU")


def _compile(core, model, device: str, config: dict, name: str, hint: str):
    if device == "CPU":
        require_precision_isa(hint, name)
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

    def __init__(self, compiled, keep: int = 8):
        self.compiled, self.keep = compiled, keep
        self._idle = [compiled.create_infer_request()]
        self._lock = threading.Lock()

    def infer(self, inputs):
        with self._lock:
            req = self._idle.pop() if self._idle else None
        if req is None:
            req = self.compiled.create_infer_request()
        try:
            return req.infer(inputs, share_inputs=True, share_outputs=False)
        finally:
            with self._lock:
                if len(self._idle) < self.keep:
                    self._idle.append(req)


class OpenVINOBackend(Backend):
    name = "openvino"

    MAX_BATCH_SHAPES = 4  # compiled batch sizes kept per backend

    def __init__(self, path, compiled, meta, build_info, device, precision, threads, ov_version,
                 model=None, core=None, config=None, static_batch: int | None = None, folded_selects: int = 0,
                 f32_layers=()):
        self.path = path
        self.compiled = compiled
        self._pool = _RequestPool(compiled)
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
             core=None) -> OpenVINOBackend:
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
        from collections import Counter

        from tinct.runtime.artifact import check_graph

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
        static_batch = 1 if _only_batch_dynamic(model) else None
        to_compile, folded = model, 0
        if static_batch:
            to_compile = _with_batch(model, 1)
            if meta.gating == "dynamic":  # tinct's If export: any-sample condition + per-sample Where
                folded = fold_batch1_selects(to_compile)
        compiled = _compile(core, to_compile, device, config, path.name, hint)
        return cls(path, compiled, meta, build, device, hint, int(threads), ov.__version__,
                   model=model, core=core, config=config, static_batch=static_batch, folded_selects=folded,
                   f32_layers=f32_layers)

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
                pool = self._by_batch[batch] = _RequestPool(compiled)
        return pool

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Thread-safe: concurrent callers get their own infer requests (see :class:`_RequestPool`)."""
        pool = self._pool_for(inputs)
        if not self._called:
            with _FIRST_CALL:
                res = pool.infer(inputs)
                self._called = True
        else:
            res = pool.infer(inputs)
        return {o.get_any_name(): np.asarray(v) for o, v in res.items()}

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
            # what the plugin really runs them in (expected: f32 under a bf16 hint)
            "f32_layers": {name: prec for name, _t, prec in runtime_precisions(self.compiled)
                           if name in self.f32_layers},
            "compile_config": {k: v for k, v in self._config.items() if k in ALLOWED_COMPILE_CONFIG}
            if self._config else {},
            "artifact": str(self.path), "build": self.build_info, "meta": meta_summary(self.meta),
        }
