"""PyTorch models and the artifacts built from them (export, quantize, IR), and the fidelity check."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from tinct.benchmarks.latency.common import PHOTOS, RANDOM_FLAG, CaseFailed, SkipCase
from tinct.benchmarks.latency.patterns import gate_bits
from tinct.benchmarks.macs import count_macs
from tinct.deploy.build import build_openvino
from tinct.quantization.api import quantize
from tinct.quantization.recipes import Calibration, GuardPolicy, recipe_for
from tinct.runtime.artifact import read_onnx_props
from tinct.runtime.errors import TinctError
from tinct.runtime.timing import _reason
from tinct.verify.fidelity import fidelity_check
from tinct.verify.guard import GuardError

# ----------------------------------------------------------------------------- models and artifacts

def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


class ModelStore:
    """PyTorch models (shipped weights or seeded random init) and the artifacts built from them,
    cached in ``artifacts`` and rebuilt only when the weights they came from changed."""

    def __init__(self, artifacts: str | Path, seed: int = 0, log: Callable[[str], None] | None = None):
        self.dir = Path(artifacts)
        self.seed = seed
        self.log = log or (lambda s: None)
        self._models: dict[str, tuple] = {}
        self._files: dict[tuple, Path] = {}
        self._fidelity: dict[tuple, dict] = {}
        self._references: dict[str, object] = {}
        self._macs: dict[str, object] = {}

    # -- fidelity (every engine case, before it is timed)
    def fidelity(self, src: Path, artifact: Path, backend: str, precision: str, run_x: Callable, model: str) -> dict:
        """The guard's criteria for ``run_x`` against ONNX Runtime FP32 of ``src`` on a quick subset;
        raises :class:`CaseFailed` with the reason, else returns the measurements (cached per artifact)."""
        key = (str(artifact), backend, precision)
        if key not in self._fidelity:
            self._fidelity[key] = fidelity_check(src, run_x, precision, self._references,
                                                 random_weights=self.weights_label(model) == RANDOM_FLAG)
        rec = self._fidelity[key]
        if rec["verdict"] != "passed":
            raise CaseFailed(rec["reason"])
        return rec

    def macs(self, src: Path):
        """:class:`benchmarks.macs.MacCount` of an FP32 export (None without onnx)."""
        if str(src) not in self._macs:
            try:
                self._macs[str(src)] = count_macs(src)
            except ImportError:  # no onnx here
                self._macs[str(src)] = None
        return self._macs[str(src)]

    # -- PyTorch
    def weights_path(self, name: str) -> Path | None:
        from tinct.models.registry import REGISTRY, WEIGHTS_DIR

        if name not in REGISTRY:
            p = Path(name)
            return p if p.is_file() else None
        p = WEIGHTS_DIR / f"{name}.safetensors"
        return p if p.is_file() else None

    def weights_label(self, name: str) -> str:
        p = self.weights_path(name)
        return f"shipped ({p.name})" if p else RANDOM_FLAG

    def model(self, name: str):
        """(torch model in eval mode, expected source_sha256 of its exports, random?)"""
        if name not in self._models:
            if not torch_available():
                raise SkipCase("torch is not installed: PyTorch reference and exports unavailable")
            import torch

            from tinct.models.registry import REGISTRY, create_model

            path = self.weights_path(name)
            if path is not None:
                from tinct.models.checkpoint import load_model

                m, card = load_model(str(path), with_card=True)
                sha, rnd = card["source_sha256"], False
            else:
                if name not in REGISTRY:
                    raise SkipCase(f"unknown model {name!r}")
                torch.manual_seed(self.seed)
                m = create_model(name).eval()
                from tinct.export.onnx_export import state_dict_sha256

                sha, rnd = state_dict_sha256(m), True
            self._models[name] = (m, sha, rnd)
        return self._models[name]

    @staticmethod
    def is_gated(name: str) -> bool:
        from tinct.models.registry import REGISTRY

        return name in REGISTRY and REGISTRY[name][0] == "acolvit"

    @staticmethod
    def depth(name: str) -> int:
        from tinct.models.registry import config_for

        return config_for(name)[1].depth

    # -- ONNX (tinct export)
    def onnx(self, name: str, gates: list[list[bool]] | None) -> Path:
        """fp32 ONNX: gating none (iColoriT), dynamic (A-ColViT own decisions) or static (a pattern)."""
        gated = self.is_gated(name)
        gating = "none" if not gated else ("dynamic" if gates is None else "static")
        stem = name + ("" if gating == "none" else "-dynamic" if gating == "dynamic" else f"-g{gate_bits(gates)}")
        key = ("onnx", stem)
        if key in self._files:
            return self._files[key]
        out = self.dir / f"{stem}.onnx"
        if out.is_file() and not torch_available():  # cannot re-check the weights without torch
            self._files[key] = out
            return out
        model, sha, _rnd = self.model(name)
        if out.is_file():
            from tinct.export.onnx_export import read_meta

            try:
                meta = read_meta(out)
                if meta.source_sha256 == sha and meta.gating == gating and (
                        gating != "static" or meta.static_gates == [[bool(a), bool(m)] for a, m in gates]):
                    self._files[key] = out
                    return out
            except Exception:  # noqa: BLE001, S110 - an unreadable cached file is rebuilt
                pass
        try:
            from tinct.export.onnx_export import export_onnx
        except ImportError as exc:
            raise SkipCase(f"export is not available ({_reason(exc)})") from None
        self.log(f"latency: exporting {out.name} ({gating} gating)")
        self.dir.mkdir(parents=True, exist_ok=True)
        export_onnx(model, out, gating=gating, static_gates=gates if gating == "static" else None,
                    model_name=name)
        self._files[key] = out
        return out

    # -- quantized / reduced-precision artifacts (tinct quantize)
    def quantized(self, src: Path, precision: str, backend: str, model: str) -> Path:
        """``tinct quantize`` of the FP32 export ``src``: an .onnx (onnxruntime) or .xml (openvino).

        Shipped weights: the quantizer's defaults (calibration on the corpus' training split when
        present, else the fixture photos; accuracy guard with its default budget). Random weights:
        a small calibration set and no accuracy budget (their accuracy means nothing; latency only)."""
        key = ("q", str(src), precision, backend)
        if key in self._files:
            return self._files[key]
        suffix = ".xml" if backend == "openvino" else ".onnx"
        out = self.dir / f"{src.stem}-{precision}-{backend}{suffix}"
        if out.is_file() and out.stat().st_mtime >= src.stat().st_mtime:
            self._files[key] = out
            return out
        random_weights = self.weights_label(model) == RANDOM_FLAG
        base = "int8" if precision.startswith("int8") else precision

        def recipe(calib_source):
            calib = Calibration(source=calib_source, size=32 if random_weights else 300) if base == "int8" else None
            return recipe_for(src, precision=base, backend=backend, calibration=calib,
                              ov_float_precision="bf16" if precision == "int8-bf16" else "f32")

        guard = GuardPolicy(images=4, max_psnr_drop=float("inf")) if random_weights else GuardPolicy()
        self.log(f"latency: quantizing {src.name} -> {out.name}")
        try:
            try:
                produced = quantize(src, out, recipe(None), guard)
            except GuardError:
                raise
            except TinctError as exc:
                if "train" not in str(exc).lower() and "corpus" not in str(exc).lower():
                    raise
                self.log(f"latency: no training split for calibration ({_reason(exc)}); using {PHOTOS}")
                produced = quantize(src, out, recipe(str(PHOTOS)), guard)
        except GuardError as exc:  # the artifact exists only if it works: report, never time
            raise CaseFailed(f"tinct quantize's guard refused it on this CPU: {_reason(exc)}") from None
        if isinstance(produced, tuple):  # (path, guard report)
            produced = produced[0]
        produced = Path(produced) if produced else out
        if not produced.is_file():
            raise SkipCase(f"quantization produced no file for {precision}/{backend}")
        self._files[key] = produced
        return produced

    # -- OpenVINO IR (tinct build)
    def ir(self, src: Path) -> Path:
        key = ("ir", str(src))
        if key in self._files:
            return self._files[key]
        out = src.with_suffix(".xml")
        if not (out.is_file() and out.with_suffix(".bin").is_file()
                and out.stat().st_mtime >= src.stat().st_mtime):

            self.log(f"latency: building {out.name}")
            build_openvino(src, out, precision="int8" if _onnx_precision(src) == "int8" else "fp32", check=False)
        self._files[key] = out
        return out


def _onnx_precision(path: Path) -> str:
    return read_onnx_props(path).get("tinct.precision", "fp32")


