"""Engines as timed workloads: PyTorch eager, ONNX Runtime / OpenVINO (after the fidelity check), GPU."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

import copy

import numpy as np

from tinct.benchmarks.latency.artifacts import ModelStore, torch_available
from tinct.benchmarks.latency.common import SESSION_MODES, CaseFailed, SkipCase
from tinct.benchmarks.latency.inputs import fixture_photos, model_inputs, photo, user_hints
from tinct.benchmarks.latency.patterns import gate_bits, gate_pattern, kept_fraction
from tinct.benchmarks.profile import profile_backend, profile_torch
from tinct.deploy.build import build_tensorrt
from tinct.runtime.backends import open_backend
from tinct.runtime.colorizer import Colorizer
from tinct.runtime.cpu import missing_isa
from tinct.runtime.hints import IMG_SIZE
from tinct.runtime.timing import Case, Timed

# ----------------------------------------------------------------------------- engines

class TorchRunner:
    """A PyTorch model as a tinct backend (``run_x``) for Colorizer/Session, with a fixed gate pattern."""

    name = "pytorch"

    def __init__(self, model, gates, threads: int | None, device: str = "cpu", dtype=None):
        import torch

        self.torch = torch
        self.model = model
        self.gates = None if gates is None else torch.as_tensor(gates, dtype=torch.bool)
        self.threads = threads
        self.device = device
        self.dtype = dtype or torch.float32

    def set_threads(self) -> None:
        if self.threads and self.torch.get_num_threads() != self.threads:
            self.torch.set_num_threads(self.threads)

    def forward(self, xt):
        torch = self.torch
        with torch.inference_mode():
            if hasattr(self.model, "forced_gates"):
                self.model.forced_gates = self.gates
            return self.model(xt)

    def run_x(self, x: np.ndarray) -> np.ndarray:
        self.set_threads()
        return self.forward(self.torch.from_numpy(x)).numpy()


def _own_kept(store: ModelStore, name: str, x: np.ndarray) -> float:
    """A-ColViT: fraction of sub-layers its own decisions run on ``x`` (for a batch: those any
    sample keeps, which is what the dynamic export computes)."""
    return kept_fraction(_own_gates(store, name, x))


def _own_gates(store: ModelStore, name: str, x: np.ndarray):
    """A-ColViT: [depth, 2] bool, the sub-layers (attention, MLP per block) its own decisions run on
    ``x`` (any sample of a batch)."""
    import torch

    model = store.model(name)[0]
    saved = model.forced_gates
    try:
        model.forced_gates = None
        with torch.inference_mode():
            _ab, g = model.forward_with_gates(torch.from_numpy(x))
    finally:
        model.forced_gates = saved
    return g.numpy().any(axis=0)


def _backend_info(be) -> dict:
    try:
        d = be.describe()
    except Exception:  # noqa: BLE001 - reported, never fatal
        return {}
    info = {"artifact": Path(str(d.get("artifact", ""))).name or None}
    if d.get("inference_precision"):
        info["inference_precision"] = d["inference_precision"]
    if d.get("providers"):
        info["providers"] = d["providers"]
    return info


def _workload(mode: str, run_x: Callable[[np.ndarray], np.ndarray], backend_obj, batch: int) -> Timed:
    """The timed call for a mode, around any object with ``run_x`` (a Backend or TorchRunner)."""

    if mode == "model":
        x = model_inputs(1)
        return Timed(call=lambda: run_x(x))
    if mode == "throughput":
        x = model_inputs(batch)
        return Timed(call=lambda: run_x(x))

    col = Colorizer(backend_obj)
    if mode == "e2e":
        img = photo(fixture_photos()[0], (IMG_SIZE, IMG_SIZE))
        hints = user_hints(img)
        return Timed(call=lambda: col.colorize(img, hints))
    if mode in SESSION_MODES:  # move one hint, then the update the user sees
        size, preview = SESSION_MODES[mode]
        img = photo(fixture_photos()[0], size)
        hints = user_hints(img)
        sess = col.session(img, preview=preview)
        sess.set_hints(hints)
        update = sess.preview if preview else sess.colorize
        update()
        a, b = (hints[0].x, hints[0].y), (min(hints[0].x + 37, img.shape[1] - 1), hints[0].y)
        taken = {(h.x, h.y) for h in hints}
        if b == a or b in taken:
            b = next((x, a[1]) for x in range(img.shape[1] - 1, -1, -1) if (x, a[1]) not in taken)
        pos = [a]
        stages: dict[str, list[float]] = {}

        def call():
            new = b if pos[0] == a else a
            sess.move_hint(pos[0], new)
            pos[0] = new
            update()

        def after():
            for k, v in sess.timings.items():
                if k != "prepare":
                    stages.setdefault(k, []).append(v)

        def extra():
            med = {k: float(np.median(v)) for k, v in stages.items()}
            out_size = sess.preview_size or size
            return {"stages_median_ms": med, "image_size": list(size), "output_size": list(out_size),
                    "prepare_ms": round(sess.timings.get("prepare", 0.0), 2), "postprocess": sess.kernel,
                    "post_share": round(med.get("post", 0.0) / med["total"], 3) if med.get("total") else None}

        return Timed(call=call, after=after, extra=extra)
    raise SkipCase(f"unknown mode {mode!r}")


PROFILED_MODES = ("model", "throughput")  # --profile: the model call of these modes is profiled


def _with_profile(t: Timed, case: Case, profiler: Callable[[np.ndarray], dict]) -> None:
    """After the timed rounds, profile the case's model call (its own profiled run) into ``profile``; a
    profiler that fails is reported in the entry (``profile_error``), never silently dropped."""
    if case.mode not in PROFILED_MODES:
        return
    previous = t.extra

    def extra() -> dict:
        out = previous() if previous else {}
        try:
            out["profile"] = profiler(model_inputs(case.batch))
        except Exception as exc:  # noqa: BLE001 - reported in the result
            out["profile_error"] = f"{type(exc).__name__}: {exc}"
        return out

    t.extra = extra


def _variant_gates(store: ModelStore, name: str, variant: str):
    return gate_pattern(variant, store.depth(name)) if variant else None


def torch_case_setup(store: ModelStore, case: Case, profile: bool = False) -> Callable[[], Timed]:
    def setup() -> Timed:
        model = store.model(case.model)[0]
        gates = _variant_gates(store, case.model, case.variant)
        runner = TorchRunner(model, gates, case.threads)
        runner.set_threads()
        t = _workload(case.mode, runner.run_x, runner, case.batch)
        t.before = runner.set_threads
        kept, bits = _kept_info(store, case, gates)
        macs = None
        with contextlib.suppress(SkipCase, ImportError):
            macs = _case_macs(store, store.onnx(case.model, gates), bits)
        t.info.update(weights=store.weights_label(case.model), **kept, macs=macs)
        if profile:
            _with_profile(t, case, lambda x: profile_torch(runner.run_x, x))
        return t
    return setup


def _kept_info(store: ModelStore, case: Case, gates) -> tuple[dict, list[bool] | None]:
    """(the result fields kept_ratio/gates, the own decisions per sub-layer when the model made them)."""
    if not case.variant:
        return {"kept_ratio": None}, None
    if gates is not None:
        return {"kept_ratio": kept_fraction(gates), "gates": gate_bits(gates)}, None
    if not torch_available():
        return {"kept_ratio": None, "gates": "own decisions (not measured: torch is not installed)"}, None
    x = model_inputs(case.batch if case.mode == "throughput" else 1)
    bits = _own_gates(store, case.model, x)
    return {"kept_ratio": kept_fraction(bits), "gates": "own decisions"}, bits.reshape(-1).tolist()


def _case_macs(store: ModelStore, src: Path, own_bits: list[bool] | None) -> int | None:
    """MACs per image of the case's graph: A-ColViT's If graph counts the branches its gates ran."""
    mc = store.macs(src)
    if mc is None:
        return None
    if mc.branches and own_bits is not None and len(own_bits) == len(mc.branches):
        return mc.executed(own_bits)
    return mc.executed()


def engine_case_setup(store: ModelStore, case: Case, profile: bool = False) -> Callable[[], Timed]:
    """ONNX Runtime / OpenVINO on CPU: export (+ quantize) (+ build IR), open, wrap in the mode."""
    def setup() -> Timed:
        gates = _variant_gates(store, case.model, case.variant)
        src = store.onnx(case.model, gates)
        opts: dict = {"threads": case.threads or 0}
        if case.backend == "onnxruntime":
            if case.precision == "int8-bf16":
                raise SkipCase("int8-bf16 (bf16 for the unquantized ops) is an OpenVINO precision")
            if case.precision == "fp32":
                path = src
            else:  # int8 Q/DQ or fp16 ONNX from tinct quantize
                path = store.quantized(src, case.precision, "onnxruntime", case.model)
            # (INT8 A-ColViT's ONNX Runtime workaround is recorded in the artifact; the backend applies it)
        elif case.backend == "openvino":
            if importlib.util.find_spec("openvino") is None:
                raise SkipCase("openvino is not installed")

            why = missing_isa("bf16") if case.precision in ("bf16", "int8-bf16") else None
            if why:
                raise SkipCase(f"this CPU cannot run {case.precision}: {why}")
            if case.precision in ("fp32", "fp16"):
                path = store.ir(src)
            else:  # bf16 / int8 IR from tinct quantize (its guard ran on this CPU)
                path = store.quantized(src, case.precision, "openvino", case.model)
            # int8-bf16: the IR records bf16 for its unquantized ops; the backend applies it for "int8"
            opts["precision"] = "int8" if case.precision == "int8-bf16" else case.precision
        else:
            raise SkipCase(f"backend {case.backend} is not a CPU engine")
        be = open_backend(path, case.backend, **opts)
        desc = be.describe()
        if case.backend == "openvino" and case.precision in ("bf16", "fp16"):
            want = {"bf16": "bf16", "fp16": "f16"}[case.precision]
            if str(desc.get("inference_precision", want)) not in (want, case.precision):
                be.close()
                raise SkipCase(f"OpenVINO runs {desc.get('inference_precision')} here, not {case.precision} "
                               "(no native support on this CPU)")
        try:
            fidelity = store.fidelity(src, path, case.backend, case.precision, be.run_x, case.model)
        except CaseFailed:
            be.close()
            raise
        t = _workload(case.mode, be.run_x, be, case.batch)
        t.close = be.close
        if desc.get("gate_specialization") is not None:  # OpenVINO A-ColViT: how often the If graph was skipped
            timed_extra = t.extra

            def extra() -> dict:
                out = timed_extra() if timed_extra else {}
                return {**out, "gate_specialization": be.describe()["gate_specialization"]}

            t.extra = extra
        kept, bits = _kept_info(store, case, gates)
        t.info.update(weights=store.weights_label(case.model), **_backend_info(be), **kept,
                      fidelity=fidelity, macs=_case_macs(store, src, bits))
        if profile:
            _with_profile(t, case, lambda x: profile_backend(path, case.backend, x, **opts))
        return t
    return setup


def gpu_case_setup(store: ModelStore, case: Case) -> Callable[[], Timed]:  # noqa: C901 - one branch per GPU engine
    """CUDA: PyTorch eager, a CUDA-graph replay, or TensorRT (model mode)."""
    def setup() -> Timed:
        import torch

        if not torch.cuda.is_available():
            raise SkipCase("CUDA is not available here")
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(case.precision)
        gates = _variant_gates(store, case.model, case.variant)
        x_np = model_inputs(case.batch if case.mode == "throughput" else 1)
        if case.backend == "tensorrt":
            if importlib.util.find_spec("tensorrt") is None:
                raise SkipCase("TensorRT is not installed")

            if case.variant == "own":
                raise SkipCase("TensorRT If layers cost about both branches: use a static gate pattern")
            src = store.onnx(case.model, gates)
            eng = src.with_suffix(".engine")
            if not eng.is_file() or eng.stat().st_mtime < src.stat().st_mtime:
                build_tensorrt(src, eng, precision="fp32")
            be = open_backend(eng, "tensorrt")
            return Timed(call=lambda: be.run_x(x_np), close=be.close, info=_backend_info(be))
        if dtype is None:
            raise SkipCase(f"{case.precision} is not a PyTorch CUDA precision here")
        base = store.model(case.model)[0]
        model = copy.deepcopy(base).to("cuda", dtype).eval()
        xg = torch.from_numpy(x_np).to("cuda", dtype)
        info = {"weights": store.weights_label(case.model), "gpu": torch.cuda.get_device_name(),
                **_kept_info(store, case, gates)[0]}
        if case.backend == "pytorch":
            if hasattr(model, "forced_gates"):
                model.forced_gates = None if gates is None else torch.as_tensor(gates, device="cuda")

            def call():
                with torch.inference_mode():
                    model(xg)
                torch.cuda.synchronize()
            return Timed(call=call, info=info)
        if case.backend == "pytorch-cudagraph":
            if case.variant == "own":
                raise SkipCase("CUDA graphs cannot capture data-dependent gate decisions (If)")
            module = model
            if gates is not None:
                from tinct.export.onnx_export import StaticGatedAColViT

                module = StaticGatedAColViT(model, gates).eval()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s), torch.inference_mode():
                for _ in range(3):
                    module(xg)
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph):
                module(xg)

            def replay():
                graph.replay()
                torch.cuda.synchronize()
            return Timed(call=replay, info=info)
        raise SkipCase(f"unknown GPU backend {case.backend}")
    return setup
