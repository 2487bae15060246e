"""Ready-to-run ONNX for the shipped models: ``weights/<name>.onnx`` (Color2Embed:
``weights/<name>-encoder.onnx`` and ``-colorizer.onnx``), so that a runtime-only install (numpy,
Pillow, onnxruntime; no torch, no onnx) runs ``tinct colorize --model NAME``.

Each file is the parity-checked export of the shipped safetensors (:func:`export.onnx_export.export_onnx`,
:func:`export.color2embed_export.export_color2embed`) with its weights **stored** in FP16 where they
are exactly FP16 values (the shipped safetensors are FP16 when the model card's FP16 check allowed it),
each followed by a Cast to float32: the graph computes in FP32 and its outputs are bit-identical to the
FP32 export (checked before anything is written), at half the file size. Inputs and outputs stay float32.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from tinct.runtime.artifact import ArtifactMeta, atomic_path, set_onnx_props
from tinct.runtime.backends import open_backend
from tinct.runtime.errors import TinctError
from tinct.verify.compare import OutputDiff
from tinct.verify.probes import parity_inputs

MIN_ELEMENTS = 16  # smaller tensors (scalars, shapes' float constants) stay as they are


def _compress_graph(graph, counter: list[int]) -> int:
    from onnx import TensorProto, helper, numpy_helper

    n = 0
    casts = []
    keep = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < MIN_ELEMENTS:
            keep.append(init)
            continue
        w = numpy_helper.to_array(init)
        h = w.astype(np.float16)
        if not np.array_equal(h.astype(np.float32), w):  # not FP16 values: stored as they are
            keep.append(init)
            continue
        counter[0] += 1
        stored = numpy_helper.from_array(h, f"{init.name}__fp16")
        keep.append(stored)
        casts.append(helper.make_node("Cast", [stored.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"tinct_fp16_weight_cast_{counter[0]}"))
        n += 1
    del graph.initializer[:]
    graph.initializer.extend(keep)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == attr.GRAPH:
                n += _compress_graph(attr.g, counter)
            elif attr.type == attr.GRAPHS:
                for g in attr.graphs:
                    n += _compress_graph(g, counter)
    if casts:
        nodes = list(graph.node)
        del graph.node[:]
        graph.node.extend(casts + nodes)
    return n


def compress_weights_fp16(src: Path, dst: Path) -> int:
    """Write ``src`` to ``dst`` with FP16-valued weights stored as FP16 (+ Cast); returns how many.
    The outputs must equal the source's exactly on real inputs, or nothing is written."""
    import onnx

    m = onnx.load(str(src))
    n = _compress_graph(m.graph, [0])
    props = {p.key: p.value for p in m.metadata_props}
    meta = ArtifactMeta.from_props(props, where=src.name)
    meta.extra = {**(meta.extra or {}), "weights_storage": f"fp16 ({n} tensors, cast to float32 at load)"}
    set_onnx_props(m, meta.to_props(), producer=m.producer_name)
    onnx.checker.check_model(m, full_check=False)
    with atomic_path(dst) as tmp:
        onnx.save(m, str(tmp))
        with open_backend(src, "onnxruntime") as a, open_backend(tmp, "onnxruntime") as b:
            feeds = _feeds(a)
            diff = OutputDiff()
            for ref, out in zip(a.infer(feeds).values(), b.infer(feeds).values()):
                diff.add(ref, out)
        if diff.max_abs != 0.0:
            raise TinctError(f"{dst.name}: FP16 weight storage changed the outputs (max |Δ| {diff.max_abs:.3g}); "
                             "not written")
    return n


def _feeds(backend) -> dict:
    """Real inputs for the check: the probes with hints (iColoriT/A-ColViT), else seeded values."""
    ins, _outs = backend.io()
    if [n for n, _s, _t in ins] == ["x"] and list(ins[0][1][1:]) == [4, 224, 224]:

        return {"x": parity_inputs()[:4]}
    rng = np.random.default_rng(0)
    out = {}
    for name, shape, _t in ins:
        shape = [d if isinstance(d, int) else (1 if k == 0 else 64) for k, d in enumerate(shape)]
        out[name] = rng.uniform(-1, 1, shape).astype(np.float32)
    return out


def ship_onnx(name: str, out_dir: str | Path | None = None, log=print) -> list[Path]:
    """Export the shipped model ``name`` from its safetensors and write its ready-to-run ONNX."""

    from tinct.models.registry import WEIGHTS_DIR

    out_dir = Path(out_dir or WEIGHTS_DIR)
    card = WEIGHTS_DIR / f"{name}.json"
    if not (WEIGHTS_DIR / f"{name}.safetensors").is_file() or not card.is_file():
        raise TinctError(f"no shipped model {name} (weights/{name}.safetensors and its card) to export")
    arch = json.loads(card.read_text()).get("architecture", "")
    written = []
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp = Path(tmp)
        if arch == "color2embed":
            from tinct.export.color2embed_export import export_color2embed

            pair = export_color2embed(name, tmp / f"{name}.onnx")
            for p in pair:
                dst = out_dir / Path(p).name
                n = compress_weights_fp16(Path(p), dst)
                log(f"wrote {dst} ({n} weight tensors stored as FP16)")
                written.append(dst)
        else:
            from tinct.export.onnx_export import export_onnx

            src = export_onnx(name, tmp / f"{name}.onnx")
            dst = out_dir / f"{name}.onnx"
            n = compress_weights_fp16(Path(src), dst)
            log(f"wrote {dst} ({n} weight tensors stored as FP16)")
            written.append(dst)
    return written
