"""Regression test for the shipped models: each one, re-evaluated on the validation split with the
shared protocol, must reproduce the PSNR@10 (and A-ColViT kept ratio) its model card records,
beat the gray baseline, and the card must show PSNR rising with hints from 1 to 50.

Needs the validation split (``tinct data fetch --split val``; ``make test`` runs it first).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tinct.models.checkpoint import load_model  # noqa: E402
from tinct.models.registry import WEIGHTS_DIR  # noqa: E402
from tinct.runtime.evaluation import gray_baseline_psnr, psnr_at_k  # noqa: E402
from tinct.runtime.hints import find_hint_file, read_hint_file  # noqa: E402

EXPECTED = ("icolorit-tiny", "acolvit-tiny-0.5", "acolvit-tiny-0.3")
PSNR_TOLERANCE_DB = 0.02


@pytest.fixture(scope="module")
def val():
    from tinct.data.photos import load_val, val_dir
    from tinct.runtime.errors import TinctError

    try:
        names, images = load_val()
    except TinctError as exc:  # the split is not fetched here; anything else is a real failure
        pytest.skip(f"validation split not available ({exc}); run 'tinct data fetch --split val'")
    coords = [read_hint_file(find_hint_file(val_dir() / "hints", 10, n)) for n in names]
    return names, images, {10: coords}


def test_expected_models_are_shipped():
    missing = [n for n in EXPECTED if not (WEIGHTS_DIR / f"{n}.safetensors").is_file()]
    assert not missing, f"shipped weights missing: {missing}"


@pytest.mark.parametrize("name", EXPECTED)
def test_card_is_complete_and_sane(name):
    card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    for key in ("data", "training", "metrics", "shipping"):
        assert key in card, key
    assert len(card["data"]["manifest_sha256"]) == 64
    assert card["training"]["steps"] > 0 and card["training"]["wall_time_s"] > 0
    psnr = {int(k): v for k, v in card["metrics"]["val_psnr"].items()}
    gray = card["metrics"]["gray_baseline_psnr"]
    assert set(psnr) >= {0, 1, 2, 5, 10, 20, 50}
    for k in (1, 2, 5, 10, 20, 50):
        assert psnr[k] > gray, f"PSNR@{k} {psnr[k]} does not beat the gray baseline {gray}"
    ks = [1, 2, 5, 10, 20, 50]
    assert all(psnr[a] < psnr[b] for a, b in zip(ks, ks[1:])), f"PSNR does not rise with hints: {psnr}"


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_shipped_model_reproduces_its_card(name, val):
    names, images, coords = val
    model, card = load_model(name, with_card=True)
    torch.set_num_threads(2)

    @torch.no_grad()
    def predict(x):
        return model(torch.from_numpy(x)).numpy()

    measured = psnr_at_k(predict, images, coords, [10])[10]
    recorded = card["metrics"]["val_psnr"]["10"]
    assert abs(measured - recorded) <= PSNR_TOLERANCE_DB, (measured, recorded)
    assert measured > gray_baseline_psnr(images)
    if model.arch == "acolvit":
        from tinct.runtime.color import rgb_to_lab_n
        from tinct.runtime.hints import encode_from_lab, mask_from_coords

        masks = np.stack([mask_from_coords(c) for c in coords[10]])
        x = encode_from_lab(rgb_to_lab_n(images), masks)
        with torch.no_grad():
            gates = torch.cat([model.forward_with_gates(torch.from_numpy(x[i:i + 16]))[1]
                               for i in range(0, len(x), 16)])
        kept = float(gates.float().mean())
        # the card's kept ratio is measured over hint counts {0,...,50}; at k=10 it must be close
        assert abs(kept - card["metrics"]["gates"]["kept_ratio"]) < 0.1
        assert 0.0 < kept < 1.0


# ----------------------------------------------------------------------------- Color2Embed

C2E = "color2embed-r18"


def test_color2embed_card_is_complete_and_sane():
    path = WEIGHTS_DIR / f"{C2E}.json"
    if not path.is_file():
        pytest.fail(f"{C2E} is not shipped")
    card = json.loads(path.read_text())
    assert card["architecture"] == "color2embed" and len(card["data"]["manifest_sha256"]) == 64
    assert card["training"]["perceptual_loss"].startswith("none")  # the recipe has no VGG term yet
    assert "256" in card["metrics"]["by_size"]
    for size, m in card["metrics"]["by_size"].items():
        # the own (TPS-warped) reference must beat the gray baseline; colours from another photo need not
        assert m["psnr"]["tps"] > m["gray_baseline_psnr"], (size, m)
        assert 0.0 < m["cosine"]["tps"] <= 1.0


@pytest.mark.slow
def test_color2embed_reproduces_its_card(val):
    from tinct.training.color2embed_train import C2EValidator

    model, card = load_model(C2E, with_card=True)
    torch.set_num_threads(2)
    size = int(card["training"]["resolution"])
    measured = C2EValidator(size).evaluate(model, torch.device("cpu"), cosine=False)  # the card's PSNR is the check
    for ref in ("tps", "other"):
        assert abs(measured["psnr"][ref] - card["metrics"]["val_psnr"][ref]) <= PSNR_TOLERANCE_DB, (ref, measured)


# ----------------------------------------------------------------------------- ready-to-run ONNX

SHIPPED_ONNX = {"icolorit-tiny": ["icolorit-tiny.onnx"], "acolvit-tiny-0.5": ["acolvit-tiny-0.5.onnx"],
                "acolvit-tiny-0.3": ["acolvit-tiny-0.3.onnx"],
                C2E: [f"{C2E}-encoder.onnx", f"{C2E}-colorizer.onnx"]}


@pytest.mark.parametrize("name", list(SHIPPED_ONNX))
def test_shipped_onnx_computes_its_safetensors(name):
    """weights/NAME.onnx (what a runtime-only install runs) is the model of weights/NAME.safetensors: it records
    that file's sha256, stores its FP16 weights as FP16, and on real photos with real hints its outputs equal
    the PyTorch model's within the export's own parity tolerance (the check every export passes). Re-exporting
    is tested on tiny models (tests/test_export.py) and, for the full Color2Embed, by the engine-cache export of
    tests/test_color2embed_e2e.py."""
    import onnx

    from tinct.runtime.artifact import read_onnx_props, sha256_file

    digest = sha256_file(WEIGHTS_DIR / f"{name}.safetensors")
    model, card = load_model(name, with_card=True)
    shipped = [WEIGHTS_DIR / f for f in SHIPPED_ONNX[name]]
    for path in shipped:
        assert path.is_file(), f"{path.name} is not shipped ('tinct ship --onnx-only --name {name}')"
        props = read_onnx_props(path)
        assert props["tinct.source_sha256"] == digest and props["tinct.precision"] == "fp32"
        fp16 = sum(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load(str(path)).graph.initializer)
        if card.get("weights_dtype") == "float16":  # FP16-valued weights are stored as FP16
            assert fp16 > 0 and "fp16" in json.loads(props["tinct.extra"])["weights_storage"]
    if name == C2E:
        from tinct.export.color2embed_export import check_parity

        report = check_parity(model, *shipped)
        assert report["parity_max_abs"] <= report["parity_tol"]
        return
    from tinct.export.reference import torch_reference
    from tinct.verify.parity import DEFAULT_TOL, check_parity
    from tinct.verify.predictors import ArtifactPredictor

    report = check_parity(ArtifactPredictor.open(shipped[0], threads=2), torch_reference(model), what=name)
    assert report.max_abs <= DEFAULT_TOL and report.gate_mismatches == 0
