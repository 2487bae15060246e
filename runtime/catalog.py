"""The shipped models (``weights/``): their cards, weights digests and ready-to-run ONNX files.

Torch-free: what the runtime, ``tinct serve`` and the benchmarks need to find a shipped model's ONNX.
Exporting a model that has no prebuilt ONNX is the CLI's job (``runtime.commands.colorize``).
"""

from __future__ import annotations

import json
from pathlib import Path

from tinct.runtime.artifact import read_onnx_props, sha256_file
from tinct.runtime.errors import TinctError

DEFAULT_MODEL = "icolorit-tiny"  # = models.registry.DEFAULT_MODEL (not imported: models needs torch)
DEFAULT_EXEMPLAR_MODEL = "color2embed-r18"  # the shipped Color2Embed model
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


def weights_dir() -> Path:
    return WEIGHTS_DIR


def shipped_weights(name: str) -> tuple[Path, str]:
    """(the safetensors, its sha256) of a shipped model."""

    weights = weights_dir() / f"{name}.safetensors"
    if not weights.is_file():
        raise TinctError(f"no shipped model {name!r} (no {weights.name} in {weights_dir()}); "
                         "pass --engine ARTIFACT for other models")
    return weights, sha256_file(weights)


def card_architecture(name: str) -> str | None:
    """The architecture a shipped model's card (``weights/NAME.json``) names, if it has one."""
    try:
        card = json.loads((weights_dir() / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    return card.get("architecture") if isinstance(card, dict) else None


def is_exemplar(name: str) -> bool:
    return card_architecture(name) == "color2embed"


def prebuilt_files(name: str) -> list[Path]:
    """The ONNX files ``tinct ship`` puts next to a model's weights (encoder + colorizer for Color2Embed)."""
    d = weights_dir()
    if is_exemplar(name):
        return [d / f"{name}-encoder.onnx", d / f"{name}-colorizer.onnx"]
    return [d / f"{name}.onnx"]


def prebuilt(name: str, files: list[Path] | None = None) -> bool:
    """The shipped ONNX files are used when they exist and, where the safetensors are here too (a
    checkout), were exported from exactly those weights; a runtime-only install has the ONNX files only."""

    files = prebuilt_files(name) if files is None else files
    if not all(f.is_file() for f in files):
        return False
    if not (weights_dir() / f"{name}.safetensors").is_file():
        return True
    digest = shipped_weights(name)[1]
    return all(read_onnx_props(f).get("tinct.source_sha256") == digest for f in files)


def prebuilt_model(name: str) -> Path:
    """A shipped model's ready-to-run ONNX (the colorizer for Color2Embed), or a one-line error."""
    if not prebuilt(name):
        raise TinctError(f"shipped model {name!r} has no up-to-date ONNX in {weights_dir()} (run 'tinct colorize "
                         f"--model {name}' once with torch installed, or pass --engine ARTIFACT)")
    return prebuilt_files(name)[-1]


def shipped_models() -> list[str]:
    """Shipped models with a ready-to-run ONNX (no export, no torch), the default first."""
    names = [c.stem for c in sorted(weights_dir().glob("*.json"))
             if card_architecture(c.stem) and all(f.is_file() for f in prebuilt_files(c.stem))]
    return sorted(names, key=lambda n: (n != DEFAULT_MODEL, n))
