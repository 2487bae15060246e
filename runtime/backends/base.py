"""One small interface over every inference backend (Polygraphy-style: a loader and a runner).

A backend is constructed from an artifact path with :meth:`Backend.load` (the loader: validates
the file and its tinct metadata, builds the session/compiled model/execution context once) and
then called many times with :meth:`Backend.infer` (the runner: ``{"x": [N,4,224,224]}`` ->
``{"ab": [N,2,224,224]}``, float32, reusing the session and its buffers). :meth:`describe`
reports what actually runs (backend, device, precision, threads, library versions, metadata).

:func:`open_backend` picks the backend from the file suffix (``.onnx`` -> onnxruntime,
``.xml`` -> openvino, ``.engine``/``.plan`` -> tensorrt) or an explicit name, and turns every
way an artifact can be wrong into one :class:`TinctError` line.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from tinct.runtime.artifact import C2E_COLORIZER, C2E_ENCODER, C2E_PROTOCOLS, ArtifactError, ArtifactMeta
from tinct.runtime.errors import MissingExtraError, TinctError
from tinct.runtime.hints import IMG_SIZE

AUX_GATES_OUTPUT = "gates"  # optional auxiliary output of dynamic A-ColViT exports

# backend name -> (module, class name, optional package it needs, extra that installs it)
BACKENDS: dict[str, tuple[str, str, str | None, str | None]] = {
    "onnxruntime": ("tinct.runtime.backends.onnxruntime_backend", "OnnxRuntimeBackend", None, None),
    "openvino": ("tinct.runtime.backends.openvino_backend", "OpenVINOBackend", "openvino", "openvino"),
    "tensorrt": ("tinct.runtime.backends.tensorrt_backend", "TensorRTBackend", "tensorrt", "tensorrt"),
}
ALIASES = {"ort": "onnxruntime", "ov": "openvino", "trt": "tensorrt"}
SUFFIXES = {".onnx": "onnxruntime", ".xml": "openvino", ".engine": "tensorrt", ".plan": "tensorrt"}
# which artifact suffixes each backend can read
READS = {"onnxruntime": {".onnx"}, "openvino": {".xml", ".onnx"}, "tensorrt": {".engine", ".plan"}}

ARCH_GATINGS = {"icolorit": {"none"}, "acolvit": {"none", "dynamic", "static"},
                C2E_ENCODER: {"none"}, C2E_COLORIZER: {"none"}}
# Color2Embed graphs: input/output names -> (rank, fixed channel dim or None) (see runtime/artifact.py)
C2E_IO = {
    C2E_ENCODER: ({"ref": (4, 3)}, {"emb": (2, None)}),
    C2E_COLORIZER: ({"l_n": (4, 1), "emb": (2, None)}, {"ab": (4, 2)}),
}


class Backend(ABC):
    """Loader + runner for one artifact. Subclasses set ``name`` and implement the three methods."""

    name: ClassVar[str] = "?"
    path: Path
    meta: ArtifactMeta
    input_names: list[str]
    output_names: list[str]

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path, **opts) -> Backend:
        """Validate ``path`` and build everything needed to run it (once)."""

    @abstractmethod
    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model. Returned arrays may be views of reused buffers: copy to keep them."""

    @abstractmethod
    def describe(self) -> dict:
        """backend, device, precision, threads, versions, metadata summary."""

    @abstractmethod
    def io(self) -> tuple[list[tuple[str, list, str]], list[tuple[str, list, str]]]:
        """(inputs, outputs) as (name, shape with None for dynamic dims, dtype) as the backend runs them."""

    # convenience for the colorizer: the single-input/single-output contract
    def run_x(self, x: np.ndarray) -> np.ndarray:
        main = next(n for n in self.output_names if n != AUX_GATES_OUTPUT)
        return self.infer({self.input_names[0]: x})[main]

    def profile_records(self) -> list[dict]:
        """The per-layer times since the backend was opened with ``profile=True``: one record per executed layer
        and call, ``{"name", "op", "ms"}`` (+ backend-specific keys). Backends without a profiler raise."""
        raise TinctError(f"the {self.name} backend has no per-layer profiler")

    def close(self) -> None:  # backends holding device memory override this
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def resolve_backend_name(path: str | Path, backend: str | None = None) -> str:
    path = Path(path)
    suffix = path.suffix.lower()
    if backend:
        name = ALIASES.get(backend.lower(), backend.lower())
        if name not in BACKENDS:
            raise TinctError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if suffix not in READS[name]:
            raise TinctError(f"backend {name} cannot read a {suffix or 'suffix-less'} file ({path.name}); "
                             f"it reads {', '.join(sorted(READS[name]))}")
        return name
    if suffix not in SUFFIXES:
        raise TinctError(f"{path.name}: not a tinct artifact (expected .onnx, .xml, .engine or .plan)")
    return SUFFIXES[suffix]


def backend_class(name: str) -> type[Backend]:
    module, cls, package, extra = BACKENDS[name]
    if package is not None and importlib.util.find_spec(package) is None:
        raise MissingExtraError(f"colorize --backend {name}", package, extra)
    return getattr(importlib.import_module(module), cls)


# Options each backend's loader takes. Any backend accepts the common ones; an option of another
# backend is accepted only when unset (None): a misspelt or misplaced option is an error, never dropped.
COMMON_OPTIONS = frozenset({"threads", "precision", "device"})
BACKEND_OPTIONS = {
    "onnxruntime": frozenset({"providers", "disabled_optimizers", "optimization", "profile"}),
    "openvino": frozenset({"core", "profile", "specialize_gates"}),
    "tensorrt": frozenset({"onnx"}),
}


def check_options(name: str, opts: dict) -> None:
    known = COMMON_OPTIONS.union(*BACKEND_OPTIONS.values())
    unknown = sorted(k for k in opts if k not in known)
    if unknown:
        raise TinctError(f"unknown backend option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    misplaced = sorted(k for k, v in opts.items()
                       if v is not None and k not in COMMON_OPTIONS and k not in BACKEND_OPTIONS.get(name, ()))
    if misplaced:
        raise TinctError(f"option(s) {', '.join(misplaced)} do not apply to the {name} backend")


def open_backend(path: str | Path, backend: str | None = None, **opts) -> Backend:
    """Open an artifact with the backend its suffix (or ``backend``) names. See module doc."""
    path = Path(path)
    name = resolve_backend_name(path, backend)
    check_options(name, opts)
    if not path.is_file():
        raise TinctError(f"artifact {path} does not exist" if not path.exists() else f"{path} is not a file")
    return backend_class(name).load(path, **{k: v for k, v in opts.items() if v is not None
                                             or k in COMMON_OPTIONS | BACKEND_OPTIONS.get(name, frozenset())})


def available_backends() -> list[str]:
    """Backends whose optional package is importable (not a guarantee that a device exists)."""
    return [n for n, (_m, _c, pkg, _e) in BACKENDS.items() if pkg is None or importlib.util.find_spec(pkg)]


# ----------------------------------------------------------------------------- shared validation

def meta_from_props(props: dict[str, str], where: str) -> ArtifactMeta:
    """ArtifactMeta from string props, validated against what this runtime can run."""
    meta = ArtifactMeta.from_props(props, where)
    validate_meta(meta, where)
    return meta


def validate_meta(meta: ArtifactMeta, where: str) -> None:
    """Refuse metadata that disagrees with itself or with this runtime's input contract."""
    if meta.architecture in C2E_PROTOCOLS:
        _validate_c2e_meta(meta, where)
        return
    proto = meta.hint_protocol or {}
    for key, want in (("img_size", IMG_SIZE), ("hint_size", 2), ("grid", IMG_SIZE // 2)):
        if key in proto and proto[key] != want:
            raise ArtifactError(f"{where}: hint protocol {key}={proto[key]} differs from this runtime's {want}")
    cfg = meta.config or {}
    if cfg.get("img_size", IMG_SIZE) != IMG_SIZE:
        raise ArtifactError(f"{where}: model img_size {cfg['img_size']} is not {IMG_SIZE}")
    if cfg.get("in_chans", 4) != 4:
        raise ArtifactError(f"{where}: model takes {cfg['in_chans']} input channels, not 4 (L, a*m, b*m, m)")
    if meta.architecture in ARCH_GATINGS and meta.gating not in ARCH_GATINGS[meta.architecture]:
        raise ArtifactError(f"{where}: architecture {meta.architecture} cannot have gating {meta.gating!r}")
    if meta.gating == "static":
        gates = meta.static_gates
        depth = cfg.get("depth")
        if not isinstance(gates, list) or not gates:
            raise ArtifactError(f"{where}: gating 'static' but no static_gates recorded")
        if depth is not None and len(gates) != depth:
            raise ArtifactError(f"{where}: static_gates has {len(gates)} blocks but config depth is {depth}")
        for i, g in enumerate(gates):
            if not (isinstance(g, list) and len(g) == 2 and all(v in (0, 1, True, False) for v in g)):
                raise ArtifactError(f"{where}: static_gates[{i}]={g!r} is not [attn, mlp] of 0/1")
    elif meta.static_gates is not None:
        raise ArtifactError(f"{where}: static_gates recorded but gating is {meta.gating!r}")


def _validate_c2e_meta(meta: ArtifactMeta, where: str) -> None:
    want = C2E_PROTOCOLS[meta.architecture]
    proto = meta.hint_protocol or {}
    if proto.get("kind") != want["kind"]:
        raise ArtifactError(f"{where}: architecture {meta.architecture} but its input protocol is "
                            f"{proto.get('kind') or 'the iColoriT hint protocol'}, not {want['kind']!r}")
    if proto.get("multiple", want["multiple"]) != want["multiple"]:
        raise ArtifactError(f"{where}: input sizes must be multiples of {proto['multiple']}, this runtime "
                            f"uses multiples of {want['multiple']}")
    if meta.gating != "none" or meta.static_gates is not None:
        raise ArtifactError(f"{where}: architecture {meta.architecture} cannot have gating {meta.gating!r}")
    emb = (meta.config or {}).get("emb_dim")
    if emb is not None and (not isinstance(emb, int) or emb < 1):
        raise ArtifactError(f"{where}: config emb_dim {emb!r} is not a positive integer")


def c2e_contract(inputs: list[tuple[str, list, str]]) -> str | None:
    """The Color2Embed graph whose input names these are, else None (the iColoriT contract)."""
    names = {n for n, _s, _t in inputs}
    for arch, (ins, _outs) in C2E_IO.items():
        if names == set(ins):
            return arch
    return None


def check_c2e_io(where: str, arch: str, inputs, outputs) -> None:
    """A Color2Embed graph's inputs/outputs: names, ranks, fixed channel dims, float32."""
    ins, outs = C2E_IO[arch]
    for what, want, got in (("input", ins, inputs), ("output", outs, outputs)):
        if {n for n, _s, _t in got} != set(want):
            raise ArtifactError(f"{where}: {arch} {what}s are {sorted(n for n, _s, _t in got)}, "
                                f"expected {sorted(want)}")
        for name, shape, t in got:
            rank, chans = want[name]
            if len(shape) != rank or (chans is not None and isinstance(shape[1], int) and shape[1] != chans):
                dims = "[N,E]" if rank == 2 else f"[N,{chans},H,W]"
                raise ArtifactError(f"{where}: {what} {name!r} has shape {shape}, expected {dims}")
            if str(t) != "float32":
                raise ArtifactError(f"{where}: tensor {name!r} has type {t}, expected float32")


def check_io(where: str, inputs: list[tuple[str, list, str]], outputs: list[tuple[str, list, str]]) -> None:
    """The artifact must map one float input [N,4,224,224] to one float output [N,2,224,224]
    (iColoriT / A-ColViT), or be one of the two Color2Embed graphs (recognised by their input
    names ``ref`` / ``l_n`` + ``emb``; :func:`check_c2e_io`; the colorizer that uses them checks
    the metadata's architecture agrees).

    Shapes are lists whose entries are ints or None/str for dynamic dims; types are numpy dtype
    names as the backend normalizes them ("float32").
    """
    arch = c2e_contract(inputs)
    if arch is not None:
        check_c2e_io(where, arch, inputs, outputs)
        return
    def _ok(shape, chans):
        if len(shape) != 4:
            return False
        return all(not isinstance(d, int) or d == want for d, want in zip(shape[1:], (chans, IMG_SIZE, IMG_SIZE)))

    # A dynamic A-ColViT export has an auxiliary output ``gates`` (bool [N, depth, 2]: which
    # sub-layers ran); it is informational and never replaces ``ab``.
    aux = [o for o in outputs if o[0] == AUX_GATES_OUTPUT]
    outputs = [o for o in outputs if o[0] != AUX_GATES_OUTPUT]
    if aux and (len(aux[0][1]) != 3 or (isinstance(aux[0][1][2], int) and aux[0][1][2] != 2)):
        raise ArtifactError(f"{where}: auxiliary output 'gates' has shape {aux[0][1]}, expected [N,depth,2]")
    if len(inputs) != 1 or len(outputs) != 1:
        raise ArtifactError(f"{where}: expected 1 input and 1 output (plus optional 'gates'), "
                            f"found {len(inputs)} and {len(outputs)}")
    (iname, ishape, itype), (oname, oshape, otype) = inputs[0], outputs[0]
    if not _ok(ishape, 4):
        raise ArtifactError(f"{where}: input {iname!r} has shape {ishape}, expected [N,4,224,224]")
    if not _ok(oshape, 2):
        raise ArtifactError(f"{where}: output {oname!r} has shape {oshape}, expected [N,2,224,224]")
    for nm, t in ((iname, itype), (oname, otype)):
        if str(t) != "float32":
            raise ArtifactError(f"{where}: tensor {nm!r} has type {t}, expected float32")



def meta_summary(meta: ArtifactMeta) -> dict:
    return {"summary": meta.summary(), "model": meta.model, "architecture": meta.architecture,
            "precision": meta.precision, "gating": meta.gating, "tinct_version": meta.tinct_version}
