"""OpenVINO IR as a tinct artifact: reading and writing its metadata, the one IR writer, and the layers a bf16
compile keeps in f32 (the runner is :mod:`runtime.backends.openvino_backend`).

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

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from tinct.runtime.artifact import PREFIX
from tinct.runtime.errors import MissingExtraError, TinctError

RT_ROOT = "tinct"
RT_LAYOUT = "1"


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


def ov_error_line(exc: BaseException) -> str:
    """The informative line of an OpenVINO exception: its text starts with a source location
    ("Exception from src/inference/src/cpp/core.cpp:117:") and says what went wrong after it."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '", "[ GENERAL_ERROR ]"))]
    text = (useful or lines or [type(exc).__name__])[0]
    return text.removeprefix("[ GENERAL_ERROR ]").strip()[:200]


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


def build_info(source_onnx: str | Path, inference_precision: str, source_sha256: str, device: str = "CPU",
               **extra) -> dict[str, str]:
    """The build keys every IR records (layout in the module docstring)."""
    return {"inference_precision": inference_precision, "device": device, "openvino_version": _ov().__version__,
            "source_onnx": Path(source_onnx).name, "source_onnx_sha256": source_sha256,
            **{k: str(v) for k, v in extra.items()}}


def save_ir(model, out_xml: str | Path, props: dict[str, str], build: dict[str, str]) -> Path:
    """The one IR writer: tinct metadata and build info into rt_info (with the layers kept f32 under
    bf16, ``f32_layers``), ``ov.save_model`` with the weights kept as they are, then the "precise" marks
    of those layers, so any OpenVINO user of the IR (benchmark_app, Triton) gets the fix too."""

    ov = _ov()
    keep = patch_embedding_names(model)
    write_ir_props(model, props, {**build, **({"f32_layers": json.dumps(keep)} if keep else {})})
    ov.save_model(model, str(out_xml), compress_to_fp16=False)
    if keep:
        mark_precise_ir(out_xml, keep)
    return Path(out_xml)


def commit_ir(tmp_xml: str | Path, out: str | Path) -> Path:
    """Move a finished IR into place: the .bin first, the .xml last, so a visible .xml always has its .bin."""

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
