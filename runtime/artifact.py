"""Artifact metadata: one schema for every file tinct produces (ONNX, OpenVINO IR, TensorRT engine).

Stored as ONNX ``metadata_props`` (string -> string), copied into OpenVINO IR ``rt_info`` and a
TensorRT engine's sidecar header. Every value is a string; structured values are JSON.
The runtime refuses an artifact whose metadata is missing or inconsistent with what it is asked
to do (wrong model family, wrong input contract), so nothing runs with the wrong engine.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import mmap
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tinct.runtime import __version__
from tinct.runtime.color import AB_NORM, L_CENT, L_NORM
from tinct.runtime.errors import TinctError
from tinct.runtime.hints import GRID, HINT_SIZE, IMG_SIZE

PREFIX = "tinct."
SCHEMA_VERSION = "1"
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# gating: "none" (iColoriT), "dynamic" (A-ColViT with ONNX If nodes), "static" (fixed mask baked in)
GATINGS = ("none", "dynamic", "static")

NORMALIZATION = {"l_cent": L_CENT, "l_norm": L_NORM, "ab_norm": AB_NORM}
HINT_PROTOCOL = {
    "input": "x float32 [N,4,224,224] = [L_n, a_n*m, b_n*m, m], m=1 on hinted pixels",
    "output": "ab float32 [N,2,224,224] normalized (ab/110)",
    "img_size": IMG_SIZE, "hint_size": HINT_SIZE, "grid": GRID, "hint_colour": "cell mean ab (avg_hint)",
}
# Color2Embed is two graphs (export/color2embed_export.py); each records its own input description
# in ``hint_protocol`` (the field's name is historical: it is the artifact's input contract).
C2E_ENCODER = "color2embed-encoder"
C2E_COLORIZER = "color2embed-colorizer"
C2E_PROTOCOLS = {
    C2E_ENCODER: {
        "kind": "color2embed-reference",
        "input": "ref float32 [N,3,H,W] sRGB in [0,1], RGB order, H and W multiples of 16",
        "output": "emb float32 [N,E] colour embedding (E = config.emb_dim)",
        "multiple": 16,
    },
    C2E_COLORIZER: {
        "kind": "color2embed-colorizer",
        "input": "l_n float32 [N,1,H,W] = (L-50)/100, H and W multiples of 16; emb float32 [N,E] from the encoder",
        "output": "ab float32 [N,2,H,W] normalized (ab/110)",
        "multiple": 16,
    },
}


def count_ops(graph, op_type: str, *, recursive: bool = True) -> int:
    """Nodes of ``op_type`` in an ``onnx.GraphProto`` (nested subgraphs too when ``recursive``); the one
    ONNX op counter (it walks the proto object, so no onnx import is needed)."""
    n = 0
    for node in graph.node:
        n += node.op_type == op_type
        if recursive:
            for attr in node.attribute:
                if attr.HasField("g"):
                    n += count_ops(attr.g, op_type)
                for g in attr.graphs:
                    n += count_ops(g, op_type)
    return n


def count_if_nodes(graph) -> int:
    """ONNX ``If`` nodes in a ``GraphProto``, nested subgraphs included."""
    return count_ops(graph, "If")


class ArtifactError(TinctError):
    pass


@dataclass
class ArtifactMeta:
    model: str  # registry name or checkpoint stem, e.g. "icolorit-tiny"
    architecture: str  # "icolorit" | "acolvit" | "color2embed-encoder" | ...
    config: dict
    precision: str = "fp32"
    gating: str = "none"
    static_gates: list | None = None  # [[attn, mlp] * depth] when gating == "static"
    source_sha256: str = ""  # sha256 of the checkpoint (or parent artifact) this came from
    parent_sha256: str = ""  # for derived artifacts (quantized ONNX, IR, engines): the parent file
    tinct_version: str = __version__
    normalization: dict = field(default_factory=lambda: dict(NORMALIZATION))
    hint_protocol: dict = field(default_factory=lambda: dict(HINT_PROTOCOL))
    extra: dict = field(default_factory=dict)  # e.g. quantization recipe, float-kept ops, parity

    def to_props(self) -> dict[str, str]:
        if self.precision not in PRECISIONS:
            raise ArtifactError(f"unknown precision {self.precision!r}")
        if self.gating not in GATINGS:
            raise ArtifactError(f"unknown gating {self.gating!r}")
        props = {
            "schema": SCHEMA_VERSION, "model": self.model, "architecture": self.architecture,
            "config": json.dumps(self.config, sort_keys=True), "precision": self.precision,
            "gating": self.gating, "source_sha256": self.source_sha256, "parent_sha256": self.parent_sha256,
            "tinct_version": self.tinct_version, "normalization": json.dumps(self.normalization, sort_keys=True),
            "hint_protocol": json.dumps(self.hint_protocol, sort_keys=True),
            "extra": json.dumps(self.extra, sort_keys=True),
        }
        if self.static_gates is not None:
            props["static_gates"] = json.dumps(self.static_gates)
        return {PREFIX + k: v for k, v in props.items()}

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "artifact") -> ArtifactMeta:
        p = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        if not p:
            raise ArtifactError(f"{where} has no tinct metadata (was it made by 'tinct export'?)")
        missing = [k for k in ("model", "architecture", "config", "precision") if k not in p]
        if missing:
            raise ArtifactError(f"{where}: tinct metadata lacks {', '.join(missing)}")
        try:
            meta = cls(
                model=p["model"], architecture=p["architecture"], config=json.loads(p["config"]),
                precision=p["precision"], gating=p.get("gating", "none"),
                static_gates=json.loads(p["static_gates"]) if "static_gates" in p else None,
                source_sha256=p.get("source_sha256", ""), parent_sha256=p.get("parent_sha256", ""),
                tinct_version=p.get("tinct_version", ""),
                normalization=json.loads(p.get("normalization", "{}")) or dict(NORMALIZATION),
                hint_protocol=json.loads(p.get("hint_protocol", "{}")) or dict(HINT_PROTOCOL),
                extra=json.loads(p.get("extra", "{}")),
            )
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, int digit limit, nesting
            raise ArtifactError(f"{where}: corrupt tinct metadata ({str(exc).splitlines()[0][:150]})") from None
        # the JSON must also have the right shape: a list where a dict belongs broke info/colorize (issue 15)
        for name, want in (("config", dict), ("normalization", dict), ("hint_protocol", dict), ("extra", dict)):
            if not isinstance(getattr(meta, name), want):
                raise ArtifactError(f"{where}: tinct metadata field {name!r} is a {type(getattr(meta, name)).__name__}, "
                                    f"not a JSON object")
        for name in ("model", "architecture", "precision", "gating"):
            if not isinstance(getattr(meta, name), str) or not getattr(meta, name):
                raise ArtifactError(f"{where}: tinct metadata field {name!r} is empty")
        if meta.precision not in PRECISIONS:
            raise ArtifactError(f"{where}: unknown precision {meta.precision!r} in the tinct metadata")
        if meta.gating not in GATINGS:
            raise ArtifactError(f"{where}: unknown gating {meta.gating!r} in the tinct metadata")
        if meta.static_gates is not None and not (
                isinstance(meta.static_gates, list)
                and all(isinstance(g, list) and len(g) == 2 and all(v in (0, 1, True, False) for v in g)
                        for g in meta.static_gates)):
            raise ArtifactError(f"{where}: tinct metadata field 'static_gates' is not a list of [attn, mlp] bits")
        if meta.normalization != NORMALIZATION:
            raise ArtifactError(f"{where}: normalization {meta.normalization} differs from this runtime's "
                                f"{NORMALIZATION}")
        return meta

    def summary(self) -> str:
        g = self.gating + (f" ({sum(map(sum, self.static_gates))}/{2 * len(self.static_gates)} kept)"
                           if self.static_gates else "")
        return f"{self.model} [{self.architecture}] {self.precision}, gating {g}, tinct {self.tinct_version}"


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file, read in chunks: the one hash every artifact record and cache key uses."""

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_onnx_meta(path) -> ArtifactMeta:
    """The tinct metadata of an ONNX file (:func:`read_onnx_props`), parsed: the one ONNX metadata reader."""

    return ArtifactMeta.from_props(read_onnx_props(path), where=Path(path).name)


def read_onnx_props(path) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` without the ``onnx`` package (the runtime never needs it) and
    without building a session (that cost 48-75 ms per load): see :func:`_onnx_scan`. Raises
    ArtifactError for a file that is not an ONNX model."""
    return dict(_scan(path)[0])


def onnx_graph_summary(path) -> dict:
    """What an ONNX graph's top level contains, without onnx: op type counts and initializer element
    types (ONNX TensorProto codes: 1 float, 10 float16, 3 int8, 2 uint8). ArtifactError when not ONNX."""
    _, ops, inits = _scan(path)
    return {"ops": dict(ops), "initializer_types": dict(inits)}


def _scan(path):
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise ArtifactError(f"{path.name}: not a readable ONNX file ({exc.strerror})") from None
    return _onnx_scan(str(path.resolve()), st.st_size, st.st_mtime_ns)


_MODEL_GRAPH, _MODEL_METADATA_PROPS = 7, 14  # ModelProto field numbers (onnx.proto3)
_GRAPH_NODE, _GRAPH_INITIALIZER, _NODE_OP_TYPE, _TENSOR_DATA_TYPE = 1, 5, 4, 2


def set_onnx_props(proto, props: dict[str, str], producer: str = "tinct") -> None:
    """Replace an ONNX ``ModelProto``'s ``metadata_props`` with ``props`` (the one stamping helper;
    it works on the proto object, so the runtime still never imports ``onnx``)."""
    del proto.metadata_props[:]
    for k, v in props.items():
        proto.metadata_props.add(key=k, value=str(v))
    proto.producer_name = producer


@contextlib.contextmanager
def atomic_path(dest, mode: int = 0o644):
    """``with atomic_path(out) as tmp:`` write ``tmp`` (a fresh hidden name in ``out``'s directory, ending in
    ``.tmp`` + ``out``'s suffix, so readers that go by the suffix can check it); when the block succeeds it is
    fsynced and renamed onto ``out``, when it fails (or is interrupted) it is removed and ``out`` is untouched.
    The one atomic file writer: images, ONNX, engines, caches."""
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _replace_dir(tmp: Path, dest: Path) -> None:
    """Move the finished ``tmp`` directory to ``dest`` (replacing an old one)."""
    if dest.exists():
        old = dest.with_name(dest.name + f".old-{os.getpid()}")
        dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(dest)


@contextlib.contextmanager
def atomic_dir(dest):
    """``with atomic_dir(out) as tmp:`` build a directory in a temporary sibling; it becomes ``out`` only
    when the block succeeds (an old ``out`` is replaced); on any failure or interruption it is removed and
    ``out`` is untouched. The one atomic directory writer: the corpus, fetched weights, model repositories."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        _replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_varint(buf, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, wire type, value or (offset, length)) of one protobuf message in ``buf[start:end]``."""
    pos = start
    while pos < end:
        tag, pos = _read_varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        if num == 0:
            raise ValueError("field number 0")
        if wire == 0:
            val, pos = _read_varint(buf, pos)
            yield num, wire, val
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            if pos + n > end:
                raise ValueError("field runs past its message")
            yield num, wire, (pos, n)
            pos += n
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire}")
    if pos != end:
        raise ValueError("message overruns its length")


@functools.lru_cache(maxsize=32)
def _onnx_scan(path: str, size: int, mtime_ns: int):
    """(metadata props, top-level op counts, initializer type counts) of one ONNX file, remembered per
    (path, size, mtime) in this process: the CLI, the model resolver and the backend ask for the same file.

    Hand-written on purpose: a protobuf wire walk over the memory-mapped file reads the few kB of
    headers and skips the weights; onnx is not a runtime dependency."""

    name = path.rsplit("/", 1)[-1]
    props, ops, inits, has_graph = [], Counter(), Counter(), False

    def text(buf, span) -> str:
        return bytes(buf[span[0]:span[0] + span[1]]).decode("utf-8")

    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for num, wire, val in _fields(buf, 0, size):
                if wire != 2:
                    continue
                if num == _MODEL_METADATA_PROPS:  # StringStringEntryProto (1: key, 2: value)
                    entry = {n: text(buf, v) for n, w, v in _fields(buf, val[0], val[0] + val[1]) if w == 2}
                    props.append((entry.get(1, ""), entry.get(2, "")))
                elif num == _MODEL_GRAPH:
                    has_graph = True
                    for n2, w2, v2 in _fields(buf, val[0], val[0] + val[1]):
                        if w2 != 2 or n2 not in (_GRAPH_NODE, _GRAPH_INITIALIZER):
                            continue
                        for n3, w3, v3 in _fields(buf, v2[0], v2[0] + v2[1]):
                            if n2 == _GRAPH_NODE and n3 == _NODE_OP_TYPE and w3 == 2:
                                ops[text(buf, v3)] += 1
                            elif n2 == _GRAPH_INITIALIZER and n3 == _TENSOR_DATA_TYPE and w3 == 0:
                                inits[int(v3)] += 1
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # mmap of an empty file is a ValueError too
        raise ArtifactError(f"{name}: not a readable ONNX file ({exc})") from None
    if not has_graph:
        raise ArtifactError(f"{name}: not a readable ONNX file (no graph)")
    return tuple(sorted(props)), tuple(sorted(ops.items())), tuple(sorted(inits.items()))


_QDQ = ("QuantizeLinear", "DequantizeLinear")


def check_graph(where: str, meta: ArtifactMeta, ops: dict, schema: str | None = None,
                low_precision_weights: bool | None = None) -> None:
    """The metadata's claims against the graph itself (the one check used by every backend's load):
    schema version, gating (If nodes exactly when dynamic), precision (Q/DQ present for int8 ONNX, absent
    for fp32; FP16 weights for fp16 ONNX when ``low_precision_weights`` is known)."""
    if schema is not None and schema != SCHEMA_VERSION:
        raise ArtifactError(f"{where}: tinct metadata schema {schema!r}; this runtime reads schema {SCHEMA_VERSION}")
    n_if = ops.get("If", 0)
    if meta.gating == "dynamic" and not n_if:
        raise ArtifactError(f"{where}: metadata says dynamic gating, but the graph has no If nodes")
    if meta.gating in ("none", "static") and n_if:
        raise ArtifactError(f"{where}: metadata says gating {meta.gating!r}, but the graph has {n_if} If nodes")
    has_qdq = any(ops.get(op, 0) for op in _QDQ) or ops.get("FakeQuantize", 0)
    if meta.precision == "int8" and not has_qdq:
        raise ArtifactError(f"{where}: metadata says int8, but the graph has no quantize/dequantize nodes")
    if meta.precision in ("fp32", "bf16") and has_qdq:
        raise ArtifactError(f"{where}: metadata says {meta.precision}, but the graph has quantize/dequantize nodes")
    if meta.precision == "fp16" and low_precision_weights is False:
        raise ArtifactError(f"{where}: metadata says fp16, but the graph has no float16 weights")
