"""The engines a server offers: artifacts opened once (lazily, on first use) and shared by every request.

An engine is one artifact on one backend: ``icolorit-tiny.onnx`` on ONNX Runtime and the same file on
OpenVINO are two engines. Backends are thread-safe (issue 15), so one opened engine serves all sessions;
a :class:`~tinct.runtime.colorizer.Session` belongs to one request at a time (the session store's lock).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tinct.runtime.artifact import C2E_COLORIZER, C2E_PROTOCOLS, read_onnx_meta
from tinct.runtime.backends import open_backend
from tinct.runtime.backends.base import available_backends, resolve_backend_name
from tinct.runtime.catalog import DEFAULT_MODEL, prebuilt_model, shipped_models
from tinct.runtime.colorizer import Colorizer
from tinct.runtime.errors import InputError
from tinct.runtime.exemplar import find_artifacts, open_exemplar
from tinct.serve.web_assets import manifest, model_entry

EXEMPLAR = "exemplar"
HINTS = "hints"
# What the page may run itself: ONNX Runtime Web passes the native guard with both (python -m
# tinct.benchmarks.browser_guard); FP16 passes too but runs slower than FP32 there, so it is not offered.
BROWSER_PRECISIONS = ("fp32", "int8")


class UnknownEngineError(InputError):
    pass


@dataclass
class Engine:
    id: str  # what the page and the API name it by: "<model> · <backend> <precision>"
    path: Path
    backend: str
    kind: str  # HINTS or EXEMPLAR
    model: str
    architecture: str
    precision: str
    gating: str
    threads: int = 1
    _colorizer: object = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe(self) -> dict:
        return {"id": self.id, "model": self.model, "architecture": self.architecture, "backend": self.backend,
                "precision": self.precision, "gating": self.gating, "kind": self.kind, "file": self.path.name,
                "loaded": self._colorizer is not None}

    def colorizer(self):
        """The opened :class:`Colorizer` (or :class:`ExemplarColorizer`), opened on first use."""
        if self._colorizer is None:
            with self._lock:
                if self._colorizer is None:
                    self._colorizer = self._open()
        return self._colorizer

    def _open(self):
        if self.kind == EXEMPLAR:

            return open_exemplar(self.path, self.backend, threads=self.threads)

        return Colorizer(open_backend(self.path, self.backend, threads=self.threads))

    def close(self) -> None:
        c, self._colorizer = self._colorizer, None
        if c is not None:
            closer = getattr(c, "close", None) or c.backend.close
            closer()


def _describe_artifact(path: Path):
    """(model, architecture, precision, gating) from the artifact's metadata, without opening it."""

    if path.suffix.lower() == ".onnx":
        m = read_onnx_meta(path)
        return m.model, m.architecture, m.precision, m.gating

    with open_backend(path, threads=1) as b:  # an IR or engine: its reader is the backend
        m = b.meta
        return m.model, m.architecture, m.precision, m.gating


def _engine(path: Path, backend: str, threads: int) -> Engine:
    model, arch, precision, gating = _describe_artifact(path)
    if arch in C2E_PROTOCOLS:
        if arch != C2E_COLORIZER:
            raise InputError(f"{path.name}: a Color2Embed {arch}; serve its colorizer (the encoder is found next to it)")
        kind = EXEMPLAR
    else:
        kind = HINTS
    return Engine(id=f"{model} · {backend} {precision}", path=path, backend=backend, kind=kind, model=model,
                  architecture=arch, precision=precision, gating=gating, threads=threads)


class EngineSet:
    """The engines of one server, in the order given; the first is the default."""

    def __init__(self, engines: list[Engine]):
        if not engines:
            raise InputError("no engines to serve")
        self.engines: dict[str, Engine] = {}
        for e in engines:
            self.engines.setdefault(e.id, e)
        self.default = engines[0].id
        self._browser: list[dict] | None = None

    @classmethod
    def build(cls, models: list[str] = (), artifacts: list[str] = (), backends: list[str] | None = None,
              threads: int = 1) -> EngineSet:
        """Engines for shipped ``models`` and ``artifacts`` on each of ``backends`` that can run them
        (default: ONNX Runtime, plus OpenVINO when it is installed). Neither given: every shipped model."""

        if backends is None:
            backends = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
        for b in backends:
            if b not in available_backends():
                raise InputError(f"backend {b!r} is not available here (installed: {', '.join(available_backends())})")
        if not models and not artifacts:
            models = shipped_models() or [DEFAULT_MODEL]
        out: list[Engine] = []
        for name in models:
            path = prebuilt_model(name)
            out += [_engine(path, b, threads) for b in backends]
        for a in artifacts:
            path = Path(a)
            if not path.exists():
                raise InputError(f"--engine {a}: no such file")
            if path.is_dir():

                path = find_artifacts(path)[1]
            kind = resolve_backend_name(path)
            if path.suffix.lower() == ".onnx":
                out += [_engine(path, b, threads) for b in backends]
            else:
                out.append(_engine(path, kind, threads))
        return cls(out)

    def get(self, engine_id: str | None) -> Engine:
        if not engine_id:
            return self.engines[self.default]
        e = self.engines.get(engine_id)
        if e is None:
            # a model name alone picks its first engine (the one-shot API's 'model' field)
            e = next((x for x in self.engines.values() if x.model == engine_id), None)
        if e is None:
            raise UnknownEngineError(f"unknown engine {engine_id!r}; this server has: {', '.join(self.engines)}")
        return e

    def describe(self) -> list[dict]:
        return [dict(e.describe(), default=e.id == self.default) for e in self.engines.values()]

    def browser_models(self) -> list[dict]:
        """The hint models the page may run itself (ONNX Runtime Web, :mod:`serve.web_assets`): each FP32 or INT8
        ONNX hint artifact once, with what the page needs to fetch and check it; none when ONNX Runtime Web is not
        vendored here."""
        if self._browser is None:  # built whole, then published: a request meanwhile never sees half a list
            found: list[dict] = []
            if manifest() is not None:
                seen = set()
                for e in self.engines.values():
                    if e.kind != HINTS or e.path.suffix.lower() != ".onnx" or e.precision not in BROWSER_PRECISIONS \
                            or e.path in seen:
                        continue
                    seen.add(e.path)
                    tag = "" if e.precision == "fp32" else f" {e.precision}"
                    found.append({"id": f"{e.model} · this browser{tag}", "kind": HINTS, "backend": "browser",
                                  "server_engine": e.id, "_path": e.path,
                                  **model_entry(e.path, e.model, e.precision, e.gating, f"/api/models/{len(found)}")})
            self._browser = found
        return [{k: v for k, v in m.items() if k != "_path"} for m in self._browser]

    def browser_model_path(self, index: int) -> Path:
        self.browser_models()
        if not 0 <= index < len(self._browser):
            raise UnknownEngineError(f"no browser model {index}")
        return self._browser[index]["_path"]

    def close(self) -> None:
        for e in self.engines.values():
            e.close()


__all__ = ["EXEMPLAR", "HINTS", "Engine", "EngineSet", "UnknownEngineError"]
