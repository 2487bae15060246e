"""A Triton Inference Server model repository from tinct artifacts (``tinct deploy triton``).

For each graph (one for iColoriT / A-ColViT, two for Color2Embed: ``<name>-encoder`` and
``<name>-colorizer``) it writes ``REPO/<name>/config.pbtxt`` and ``REPO/<name>/1/<model file>``:

- ``onnxruntime``: ``model.onnx`` (the artifact, copied);
- ``openvino``: ``model.xml`` + ``model.bin`` (an IR as it is, or an ONNX converted by OpenVINO). Triton's
  OpenVINO backend has no parameter that forces f32 inference (only ``HINT_BF16: YES``), so on a CPU with
  native bf16 OpenVINO runs an FP32 model in bf16 by its own default: each model's README says so, and
  ``tinct build``'s guard has not checked that precision on the serving CPU;
- ``tensorrt``: ``model.plan`` (a tinct engine file without tinct's header: Triton loads the bare engine).

The config is built as Triton's own ``ModelConfig`` protobuf (from ``tritonclient``'s generated
``model_config_pb2``), written with protobuf's text format and parsed back with it before the file is
kept: inputs and outputs come from the graph itself (names, element types, dims without the batch
dimension; -1 where the graph is dynamic), ``max_batch_size`` from the option (the graphs' batch
dimension is dynamic), dynamic batching with a queue delay, an instance group of the given count and
kind, and the backend's thread parameters. The artifact's tinct metadata (model, precision, source
hash, hint protocol, normalization) goes into the config's ``parameters`` so a client can check what it
talks to. Nothing here starts a server: none can run on the machines tinct is developed on.

What a client must do around the graph (pre/post-processing: Lab conversion, hint encoding, resizing)
is written to ``REPO/<name>/README.md`` for each model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from tinct.runtime import catalog as shipped
from tinct.runtime.artifact import atomic_dir, read_onnx_props
from tinct.runtime.backends.openvino_ir import read_ir_props
from tinct.runtime.backends.tensorrt_backend import read_engine_file
from tinct.runtime.errors import InputError, MissingExtraError, TinctError

BACKENDS = ("onnxruntime", "openvino", "tensorrt")
MODEL_FILE = {"onnxruntime": "model.onnx", "openvino": "model.xml", "tensorrt": "model.plan"}
KINDS = ("KIND_CPU", "KIND_GPU", "KIND_AUTO")
ONNX_TO_TRITON = {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(bool)": "TYPE_BOOL",
                  "tensor(int64)": "TYPE_INT64", "tensor(int32)": "TYPE_INT32", "tensor(uint8)": "TYPE_UINT8",
                  "tensor(int8)": "TYPE_INT8", "tensor(double)": "TYPE_FP64"}
MAX_BATCH = 1024
MAX_INSTANCES = 64


def _pb():
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise MissingExtraError("deploy triton", "tritonclient", "triton") from None
    return model_config_pb2, text_format


@dataclass
class Graph:
    name: str  # Triton model name
    onnx: Path | None  # the ONNX (copied for onnxruntime; a TensorRT engine's source, read for its I/O)
    ir: Path | None = None  # an OpenVINO IR given as the artifact
    engine: Path | None = None  # a tinct TensorRT engine file

    def io(self):
        return _io_ir(self.ir) if self.ir is not None else _io(self.onnx)

    @property
    def label(self) -> str:
        return (self.ir or self.onnx).name


def _io(onnx_path: Path):
    """(inputs, outputs, tinct props) of an ONNX: [(name, [dims], onnx type)], dims as ints or -1."""

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])

    def dims(shape):
        return [d if isinstance(d, int) and d > 0 else -1 for d in shape]

    ins = [(i.name, dims(i.shape), i.type) for i in s.get_inputs()]
    outs = [(o.name, dims(o.shape), o.type) for o in s.get_outputs()]
    return ins, outs, read_onnx_props(onnx_path)


def build_config(graph: Graph, io, backend: str, *, max_batch_size: int, instances: int, kind: str, threads: int,
                 queue_delay_us: int, model_file: str) -> str:
    """The ``config.pbtxt`` text for one graph (``io``: its :meth:`Graph.io`), built as a ``ModelConfig`` and
    checked by parsing it back."""
    pb, text_format = _pb()
    ins, outs, props = io
    cfg = pb.ModelConfig(name=graph.name, max_batch_size=max_batch_size)
    if backend == "tensorrt":
        cfg.platform = "tensorrt_plan"
    else:
        cfg.backend = backend
    cfg.default_model_filename = model_file
    for tensors, add in ((ins, cfg.input.add), (outs, cfg.output.add)):
        for name, dims, typ in tensors:
            if typ not in ONNX_TO_TRITON:
                raise TinctError(f"{graph.label}: tensor {name} has type {typ}, which tinct does not map to Triton")
            if max_batch_size > 0:
                if not dims or dims[0] != -1:
                    raise TinctError(f"{graph.label}: tensor {name} has no dynamic batch dimension; use "
                                     "--max-batch-size 0")
                dims = dims[1:]
            t = add(name=name, data_type=getattr(pb.DataType, ONNX_TO_TRITON[typ]))
            t.dims.extend(dims)
    if max_batch_size > 0:
        cfg.dynamic_batching.max_queue_delay_microseconds = queue_delay_us
    cfg.instance_group.add(count=instances, kind=getattr(pb.ModelInstanceGroup.Kind, kind))
    if threads and backend == "onnxruntime":
        cfg.parameters["intra_op_thread_count"].string_value = str(threads)
        cfg.parameters["inter_op_thread_count"].string_value = "1"
    if backend == "openvino":  # the keys Triton's OpenVINO backend reads (its ModelState::ParseParameters)
        if threads:
            cfg.parameters["INFERENCE_NUM_THREADS"].string_value = str(threads)
        if max_batch_size > 0:  # it fixes the batch at max_batch_size; smaller batches are padded
            cfg.parameters["ENABLE_BATCH_PADDING"].string_value = "YES"
        if props.get("tinct.precision") == "bf16":
            cfg.parameters["HINT_BF16"].string_value = "YES"
    for k in ("tinct.model", "tinct.architecture", "tinct.precision", "tinct.source_sha256", "tinct.gating",
              "tinct.hint_protocol", "tinct.normalization", "tinct.tinct_version"):
        if k in props:
            cfg.parameters[k].string_value = props[k]
    text = text_format.MessageToString(cfg)
    check_config(text)
    return text


def check_config(text: str):
    """Parse ``config.pbtxt`` text with Triton's ``ModelConfig`` schema (unknown fields, wrong types and
    bad enum names are errors) and check what the server would refuse at load: returns the message."""
    pb, text_format = _pb()
    cfg = pb.ModelConfig()
    try:
        text_format.Parse(text, cfg)
    except text_format.ParseError as exc:
        raise TinctError(f"config.pbtxt does not parse as Triton's ModelConfig: {exc}") from None
    if not cfg.name or not (cfg.backend or cfg.platform):
        raise TinctError("config.pbtxt: a model needs a name and a backend or platform")
    if not cfg.input or not cfg.output:
        raise TinctError("config.pbtxt: no inputs or no outputs")
    for t in list(cfg.input) + list(cfg.output):
        if t.data_type == pb.DataType.TYPE_INVALID or not t.dims or any(d < -1 or d == 0 for d in t.dims):
            raise TinctError(f"config.pbtxt: tensor {t.name} has an invalid type or dims {list(t.dims)}")
    if cfg.HasField("dynamic_batching") and cfg.max_batch_size < 1:
        raise TinctError("config.pbtxt: dynamic batching needs max_batch_size >= 1")
    return cfg


def graphs_for(source: str, name: str | None) -> list[Graph]:
    """The graphs of a shipped model name or an artifact file (.onnx, .xml, .engine/.plan, a Color2Embed
    ``*-colorizer.onnx`` with its encoder next to it)."""

    path = Path(source)
    if not path.exists() and source in shipped.shipped_models():
        files = shipped.prebuilt_files(source)
        if not all(f.is_file() for f in files):
            raise TinctError(f"{source}: its ONNX is not in {shipped.weights_dir()} (run 'tinct ship' or export it)")
        base = name or source
        if len(files) == 2:  # Color2Embed: encoder + colorizer
            return [Graph(f"{base}-encoder", files[0]), Graph(f"{base}-colorizer", files[1])]
        return [Graph(base, files[0])]
    if not path.is_file():
        raise InputError(f"{source}: neither an artifact file nor a shipped model "
                         f"({', '.join(shipped.shipped_models())})")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        if path.name.endswith("-colorizer.onnx"):
            enc = path.with_name(path.name[:-len("-colorizer.onnx")] + "-encoder.onnx")
            if not enc.is_file():
                raise InputError(f"{path.name}: its encoder {enc.name} is not next to it")
            base = name or path.name[:-len("-colorizer.onnx")]
            return [Graph(f"{base}-encoder", enc), Graph(f"{base}-colorizer", path)]
        return [Graph(name or path.stem, path)]
    if suffix == ".xml":
        return [Graph(name or path.stem, None, ir=path)]
    if suffix in (".engine", ".plan"):

        header, _ = read_engine_file(path)
        src = Path(header.get("source_onnx", ""))
        if not src.is_file():
            raise TinctError(f"{path.name}: its source ONNX {src} is gone; its inputs and outputs are read from it")
        return [Graph(name or path.stem, src, engine=path)]
    raise InputError(f"{path.name}: unsupported artifact; give .onnx, .xml or .engine/.plan")


def _io_ir(xml: Path):
    """(inputs, outputs, tinct props) of an OpenVINO IR, in :func:`_io`'s form."""
    try:
        import openvino as ov
    except ImportError:
        raise MissingExtraError("deploy triton (an OpenVINO IR)", "openvino", "openvino") from None

    types = {"f32": "tensor(float)", "f16": "tensor(float16)", "boolean": "tensor(bool)", "i64": "tensor(int64)",
             "i32": "tensor(int32)", "u8": "tensor(uint8)", "i8": "tensor(int8)"}
    model = ov.Core().read_model(str(xml))

    def port(p, fallback):
        name = next(iter(sorted(p.get_names())), fallback)
        dims = [d.get_length() if d.is_static else -1 for d in p.get_partial_shape()]
        return name, dims, types.get(p.get_element_type().get_type_name(), p.get_element_type().get_type_name())

    props, _ = read_ir_props(model)
    return ([port(p, f"input{i}") for i, p in enumerate(model.inputs)],
            [port(p, f"output{i}") for i, p in enumerate(model.outputs)], props)


def client_notes(graph: Graph, props: dict, backend: str) -> str:
    """What a client does around this graph (README.md next to its config)."""
    arch = props.get("tinct.architecture", "")
    lines = [f"# {graph.name}", "", f"tinct model `{props.get('tinct.model', '?')}` ({arch}, "
             f"{props.get('tinct.precision', '?')}), source sha256 `{props.get('tinct.source_sha256', '?')[:16]}...`, "
             f"Triton backend `{backend}`. Written by `tinct deploy triton`; not served by tinct's own tests.", ""]
    if backend == "openvino" and props.get("tinct.precision") != "bf16":
        lines += ["**Precision**: Triton's OpenVINO backend cannot force f32; on a CPU with native bf16 "
                  "(AVX512-BF16, AMX) OpenVINO runs this model in bf16. Check its accuracy there "
                  "(`tinct bench accuracy --engine model.xml --precision bf16`) before serving it.", ""]
    if arch in ("icolorit", "acolvit"):
        proto = json.loads(props.get("tinct.hint_protocol", "{}") or "{}")
        lines += ["Input `x` float32 [N, 4, 224, 224] = [L_n, a_n*m, b_n*m, m]: the photo resized to 224x224, sRGB to "
                  "CIE Lab (D65; tinct.runtime.color), L_n = (L - 50) / 100, a_n, b_n = ab / 110; each hint fills a "
                  f"{proto.get('hint_size', 2)}x{proto.get('hint_size', 2)} cell on the {proto.get('grid', 112)}-grid "
                  "with the cell's mean ab, m = 1 there and 0 elsewhere.",
                  "Output `ab` float32 [N, 2, 224, 224] (ab / 110): upsample to the photo's size, multiply by 110, "
                  "combine with the photo's own full-resolution L, Lab to sRGB."]
        if arch == "acolvit":
            lines.append("Output `gates` bool [N, depth, 2]: which attention/MLP sub-layers ran (informational).")
    else:
        lines += ["Color2Embed: `<name>-encoder` takes `ref` float32 [N, 3, H, W] (the reference photo as sRGB in "
                  "[0, 1], H and W multiples of 16, 256 recommended) and returns `emb` [N, 512]; `<name>-colorizer` "
                  "takes `l_n` float32 [N, 1, H, W] = (L - 50) / 100 of the photo resized to H x W and `emb`, and "
                  "returns `ab` [N, 2, H, W] (ab / 110), post-processed as for iColoriT."]
    lines += ["", "tinct's own client code for these steps: `tinct.runtime.colorizer` (hints) and "
              "`tinct.runtime.exemplar` (Color2Embed)."]
    return "\n".join(lines) + "\n"


def deploy_triton(source: str, repo, *, backend: str | None = None, name: str | None = None, max_batch_size: int = 8,
                  instances: int = 1, kind: str = "KIND_CPU", threads: int = 0, queue_delay_us: int = 500,
                  force: bool = False) -> list[Path]:
    """Write the repository entries; returns the model directories. Each directory appears whole or not at
    all (built next to it, then renamed); an existing one is replaced only with ``force``."""

    if backend is not None and backend not in BACKENDS:
        raise InputError(f"--backend {backend!r}: choose from {', '.join(BACKENDS)}")
    if kind not in KINDS:
        raise InputError(f"--kind {kind!r}: choose from {', '.join(KINDS)}")
    if not 0 <= max_batch_size <= MAX_BATCH:
        raise InputError(f"--max-batch-size {max_batch_size} is outside 0..{MAX_BATCH}")
    if not 1 <= instances <= MAX_INSTANCES:
        raise InputError(f"--instances {instances} is outside 1..{MAX_INSTANCES}")
    if not 0 <= queue_delay_us <= 10_000_000:
        raise InputError(f"--queue-delay-us {queue_delay_us} is outside 0..10000000")
    if name is not None and (not name or "/" in name or name.startswith(".")):
        raise InputError(f"--name {name!r} is not a model directory name")
    _pb()  # the extra, before any work
    graphs = graphs_for(source, name)
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    written = []
    for g in graphs:
        be = backend or ("tensorrt" if g.engine else "openvino" if g.ir else "onnxruntime")
        if g.engine and be != "tensorrt":
            raise InputError(f"{source}: a TensorRT engine deploys only to the tensorrt backend")
        if be == "tensorrt" and not g.engine:
            raise InputError("--backend tensorrt needs an engine built on the target GPU ('tinct build --backend "
                             "tensorrt'); give its .engine file")
        if g.ir and be != "openvino":
            raise InputError(f"{source}: an OpenVINO IR deploys only to the openvino backend")
        dest = repo / g.name
        if dest.exists() and not force:
            raise InputError(f"{dest} exists; pass --force to replace it")
        io = g.io()
        text = build_config(g, io, be, max_batch_size=max_batch_size, instances=instances, kind=kind, threads=threads,
                            queue_delay_us=queue_delay_us, model_file=MODEL_FILE[be])
        with atomic_dir(dest) as tmp:
            (tmp / "1").mkdir()
            _place_model(g, be, tmp / "1")
            (tmp / "config.pbtxt").write_text(text)
            (tmp / "README.md").write_text(client_notes(g, io[2], be))
        written.append(dest)
    return written


def _place_model(g: Graph, backend: str, version_dir: Path) -> None:
    if backend == "onnxruntime":
        shutil.copyfile(g.onnx, version_dir / "model.onnx")
    elif backend == "openvino":
        if g.ir is not None:
            shutil.copyfile(g.ir, version_dir / "model.xml")
            shutil.copyfile(g.ir.with_suffix(".bin"), version_dir / "model.bin")
        else:
            try:
                import openvino as ov
            except ImportError:
                raise MissingExtraError("deploy triton --backend openvino", "openvino", "openvino") from None
            ov.save_model(ov.convert_model(str(g.onnx)), str(version_dir / "model.xml"), compress_to_fp16=False)
    else:

        _, engine = read_engine_file(g.engine)
        (version_dir / "model.plan").write_bytes(bytes(engine))
