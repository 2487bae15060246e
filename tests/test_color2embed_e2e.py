"""Color2Embed end to end: export (two graphs, folded constants, parity), the exemplar runtime on
ONNX Runtime and OpenVINO against PyTorch, `tinct colorize --reference`, quantization of the
colorizer through the guard, and a training smoke run. Tiny widths, 64x64 model resolution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinct.cli.main import main
from tinct.models import save_model
from tinct.models.color2embed import Color2Embed, Color2EmbedConfig

PHOTOS = Path(__file__).parent.parent / "data" / "samples"
WEIGHTS = Path(__file__).parent.parent / "weights"
IMAGE, REFERENCE = PHOTOS / "cow_in_field.jpg", PHOTOS / "kitten_playing.jpg"
TINY = {"emb_dim": 32, "width": 8, "enc_width": 8}
SIZE = 64


@pytest.fixture(scope="module")
def tiny_model(randomize_weights):
    torch.manual_seed(0)
    model = randomize_weights(Color2Embed(Color2EmbedConfig(**TINY)), seed=3)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def engines(tiny_model, tmp_path_factory):
    """Save the tiny model as a tinct checkpoint and export it with `tinct export` (parity at 2 sizes)."""
    d = tmp_path_factory.mktemp("c2e")
    ckpt = save_model(tiny_model, d / "tiny-c2e.safetensors", {"note": "test"})
    out = d / "engine"
    out.mkdir()
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["export", str(ckpt), "-o", str(out)]) == 0
    finally:
        torch.set_num_threads(prev)
    enc, col = out / "tiny-c2e-encoder.onnx", out / "tiny-c2e-colorizer.onnx"
    assert enc.is_file() and col.is_file()
    return out, enc, col


def _load(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


# ----------------------------------------------------------------------------- export

def test_export_metadata_parity_and_folding(engines):
    import onnx

    from tinct.export.color2embed_export import PARITY_SIZES, foldable_nodes
    from tinct.export.onnx_export import read_meta

    _, enc, col = engines
    me, mc = read_meta(enc), read_meta(col)
    assert me.architecture == "color2embed-encoder" and mc.architecture == "color2embed-colorizer"
    assert me.hint_protocol["kind"] == "color2embed-reference" and "l_n" in mc.hint_protocol["input"]
    assert mc.extra["encoder"] == enc.name and me.extra["colorizer"] == col.name
    assert mc.extra["parity_max_abs"] <= 1e-4 and mc.extra["parity_max_abs_emb"] <= 1e-4
    assert str(list(PARITY_SIZES)) in mc.extra["parity_inputs"]
    m = onnx.load(str(col))
    assert foldable_nodes(m) == [] and foldable_nodes(onnx.load(str(enc))) == []
    ops = {n.op_type for n in m.graph.node}
    assert not ops & {"Pow", "ReduceSum", "ReduceSumSquare"}  # W*scale, sum(W^2) are initializers
    inits = {tuple(i.dims) for i in m.graph.initializer}
    assert (8, 8) in inits  # a folded sum(W^2) [out, in] of a width-8 modulated conv
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}
    assert dims["l_n"][1] == 1 and all(isinstance(d, str) for d in (dims["l_n"][0], dims["l_n"][2], dims["l_n"][3]))


def test_export_output_naming(tmp_path):
    from tinct.export.color2embed_export import output_paths

    assert output_paths(tmp_path / "x.onnx", "m") == (tmp_path / "x-encoder.onnx", tmp_path / "x-colorizer.onnx")
    assert output_paths(tmp_path, "m") == (tmp_path / "m-encoder.onnx", tmp_path / "m-colorizer.onnx")


# ----------------------------------------------------------------------------- runtime

@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_exemplar_matches_pytorch(engines, tiny_model, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    from PIL import Image

    from tinct.runtime.colorizer import luminance_l
    from tinct.runtime.exemplar import open_exemplar

    ex = open_exemplar(engines[0], backend, size=SIZE, threads=1)
    image, ref = _load(IMAGE), _load(REFERENCE)
    s = ex.session(image)
    emb = s.set_reference(ref)
    rgb = s.colorize().copy()
    assert rgb.shape == image.shape and rgb.dtype == np.uint8
    # PyTorch on the same model-resolution inputs
    small_ref = np.asarray(Image.fromarray(ref).resize((SIZE, SIZE), Image.BILINEAR)).astype(np.float32) / 255
    small = np.asarray(Image.fromarray(image).resize((SIZE, SIZE), Image.BILINEAR))
    l_n = (luminance_l(small) - 50.0) / 100.0
    with torch.no_grad():
        emb_t = tiny_model.encode_reference(torch.from_numpy(np.moveaxis(small_ref, -1, 0)[None].copy()))
        ab_t = tiny_model.colorize(torch.from_numpy(l_n[None, None].astype(np.float32)), emb_t).numpy()
    assert np.abs(emb - emb_t.numpy()).max() <= 1e-4
    assert np.abs(s.ab_model - ab_t).max() <= 1e-4
    assert np.abs(s.l_full - luminance_l(image)).max() < 1e-4  # full-resolution L kept (float rounding aside)
    # the embedding cache and reference swapping
    assert ex.encoder_runs == 1
    s2 = ex.session(image)
    s2.set_reference(ref.copy())
    assert ex.encoder_runs == 1 and np.array_equal(s2.colorize(), rgb)
    s.set_reference(image)  # another reference: another result
    assert ex.encoder_runs == 2 and not np.array_equal(s.colorize(), rgb)
    s.set_embedding(emb)  # reuse an embedding
    assert np.array_equal(s.colorize(), rgb) and ex.encoder_runs == 2
    one_shot = ex.colorize(image, embedding=emb[0])  # the numpy kernel (ONE_SHOT): within one level of numba's
    assert np.abs(one_shot.astype(int) - rgb).max() <= 1 and (one_shot == rgb).mean() >= 0.99
    ex.close()


def test_exemplar_refuses_wrong_artifacts(engines):
    from tinct.runtime.backends import open_backend
    from tinct.runtime.errors import TinctError
    from tinct.runtime.exemplar import ExemplarColorizer

    _, enc, col = engines
    with open_backend(enc) as e, open_backend(col) as c:
        with pytest.raises(TinctError, match="expected color2embed-colorizer"):
            ExemplarColorizer(e, e)
        with pytest.raises(TinctError, match="multiple of 16"):
            ExemplarColorizer(e, c, size=60)
        ex = ExemplarColorizer(e, c, size=SIZE)
        with pytest.raises(TinctError, match="embedding has shape"):
            ex.session(_load(IMAGE)).set_embedding(np.zeros(5, np.float32))
        with pytest.raises(TinctError, match="no reference"):
            ex.session(_load(IMAGE)).colorize()


# ----------------------------------------------------------------------------- CLI

def test_cli_colorize_reference(engines, tmp_path, capsys):
    out = tmp_path / "out.png"
    rc = main(["colorize", str(IMAGE), "--reference", str(REFERENCE), "--engine", str(engines[2]),
               "-o", str(out), "--size", str(SIZE), "--threads", "1"])
    assert rc == 0 and out.is_file()
    assert _load(out).shape == _load(IMAGE).shape
    assert "reference" in capsys.readouterr().out


def test_cli_colorize_reference_errors(engines, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    out = tmp_path / "out.png"
    rc = main(["colorize", str(IMAGE), "--reference", str(bad), "--engine", str(engines[0]), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "reference" in err and not out.exists()
    rc = main(["colorize", str(IMAGE), "--reference", str(tmp_path / "missing.jpg"), "--engine",
               str(engines[0]), "-o", str(out)])
    assert rc == 1 and "does not exist" in capsys.readouterr().err and not out.exists()
    assert main(["colorize", str(IMAGE), "--reference", str(REFERENCE), "--model", "icolorit-tiny", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--engine" in err and "--model color2embed-r18" in err and not out.exists()
    assert main(["colorize", str(IMAGE), "--reference", str(REFERENCE), "--model", "no-such-model", "-o", str(out)]) == 1
    assert "no shipped model 'no-such-model'" in capsys.readouterr().err
    rc = main(["colorize", str(IMAGE), "--reference", str(REFERENCE), "--engine", str(engines[0]), "-o", str(out),
               "--size", "50"])
    assert rc == 1 and "multiple of 16" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["colorize", str(IMAGE), "--reference", str(REFERENCE), "--hints", "[]", "-o", str(out)])
    assert not out.exists()


@pytest.mark.slow
def test_cli_colorize_reference_with_the_shipped_model(tmp_path, monkeypatch, capsys):
    """--reference alone runs the shipped color2embed-r18 ONNX pair (weights/, nothing exported); without them
    (only the safetensors, e.g. right after training) it is exported once into the engine cache, then reused."""
    import shutil

    from tinct.runtime import catalog as shipped_models

    monkeypatch.setenv("TINCT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out.png"
    argv = ["colorize", str(IMAGE), "--reference", str(REFERENCE), "-o", str(out), "--threads", "2"]
    assert main(argv) == 0 and _load(out).shape == _load(IMAGE).shape
    assert "first use" not in capsys.readouterr().out and not (tmp_path / "cache").exists()
    shipped = _load(out)
    bare = tmp_path / "weights"
    bare.mkdir()
    for f in ("color2embed-r18.safetensors", "color2embed-r18.json"):
        shutil.copy(shipped_models.WEIGHTS_DIR / f, bare / f)
    monkeypatch.setattr(shipped_models, "WEIGHTS_DIR", bare)
    out.unlink()
    assert main(argv) == 0 and "first use" in capsys.readouterr().out
    cached = sorted((tmp_path / "cache" / "engines").iterdir())
    assert len(cached) == 2 and cached[0].name.endswith("-colorizer.onnx") and cached[1].name.endswith("-encoder.onnx")
    # a fresh export of the safetensors computes what the shipped pair computes (the same graphs up to float noise)
    from tinct.export.prebuilt import _feeds
    from tinct.runtime.backends import open_backend

    for fresh, part in zip(cached, ("colorizer", "encoder")):
        with open_backend(fresh) as a, open_backend(WEIGHTS / f"color2embed-r18-{part}.onnx") as b:
            feeds = _feeds(a)
            for x, y in zip(a.infer(feeds).values(), b.infer(feeds).values()):
                assert np.abs(x.astype(np.float64) - y).max() <= 1e-6
    assert np.abs(_load(out).astype(int) - shipped.astype(int)).max() <= 1  # the same model either way
    out.unlink()
    assert main(argv) == 0 and out.is_file() and "first use" not in capsys.readouterr().out


# ----------------------------------------------------------------------------- quantization

@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_quantize_colorizer_through_guard(engines, tmp_path, precision):
    from tinct.export.onnx_export import read_meta
    from tinct.quantization.api import quantize
    from tinct.quantization.recipes import Calibration, GuardPolicy, recipe_for
    from tinct.runtime.exemplar import open_exemplar

    out = engines[0] / f"tiny-c2e-colorizer-{precision}.onnx"
    recipe = recipe_for(engines[2], precision=precision, calibration=Calibration(source=PHOTOS, size=8))
    path, report = quantize(engines[2], out, recipe, GuardPolicy(images=4))
    try:
        meta = read_meta(path)
        assert meta.precision == precision and meta.architecture == "color2embed-colorizer"
        g = meta.extra["guard"]
        assert g["criterion"] == "delta_psnr.tps" and set(g["delta_psnr"]) == {"tps", "other"}
        assert abs(report.delta["tps"]) <= (0.1 if precision == "int8" else 0.02)
        ex = open_exemplar(path, "onnxruntime", size=SIZE)  # the encoder is found through the metadata
        assert ex.colorize(_load(IMAGE), _load(REFERENCE)).shape == _load(IMAGE).shape
        ex.close()
    finally:
        path.unlink(missing_ok=True)


def test_quantize_guard_refuses_and_encoder_refused(engines, tmp_path):
    from tinct.quantization.api import quantize
    from tinct.quantization.recipes import Calibration, GuardPolicy, make_recipe
    from tinct.runtime.errors import TinctError
    from tinct.verify.guard import GuardError

    out = tmp_path / "q.onnx"
    recipe = make_recipe(precision="int8", calibration=Calibration(source=PHOTOS, size=4))
    with pytest.raises(GuardError, match=r"PSNR \(tps\)"):  # an impossible budget: refused, nothing written
        quantize(engines[2], out, recipe, GuardPolicy(images=4, max_psnr_drop=-1.0))
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []
    with pytest.raises(TinctError, match="colour encoder"):
        quantize(engines[1], out, recipe)


# ----------------------------------------------------------------------------- training

def test_training_smoke_writes_model_and_card(tmp_path, capsys, monkeypatch):
    # the fixture photos stand in for the corpus (CI fetches only the validation split)
    import tinct.training.color2embed_train as trainer
    from tinct.runtime.errors import TinctError
    from tinct.training.color2embed_train import C2ETrainConfig, train_color2embed

    photos = sorted((Path(__file__).parent.parent / "data" / "samples").glob("*.jpg"))
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((96, 96))) for p in photos])
    monkeypatch.setattr(trainer, "load_train_photos", lambda cache=None: list(images))
    monkeypatch.setattr(trainer, "load_val", lambda cache=None: ([p.stem for p in photos], images))
    cfg = C2ETrainConfig(out=str(tmp_path / "run"), steps=2, batch=2, size=SIZE, val_every=2, val_limit=3,
                         threads=1, warmup_steps=1, model_overrides=dict(TINY))
    path = train_color2embed(cfg, progress=False)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["architecture"] == "color2embed" and card["training"]["steps"] == 2
    assert card["training"]["perceptual_loss"].startswith("none")  # the recipe has no VGG term yet
    assert set(card["metrics"]["val_psnr"]) == {"tps", "other"} and set(card["metrics"]["embedding_cosine"]) == {"tps", "other"}
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and "val" in log[-1]
    cfg.steps = 3  # resumes from last.pt
    train_color2embed(cfg, progress=False)
    assert "resumed from" in capsys.readouterr().out
    assert json.loads(path.with_suffix(".json").read_text())["training"]["steps"] == 3
    # ship: the whole validation split at the training size and at C2E_EVAL_SIZES, FP16 only if harmless
    import tinct.training.ship as ship_mod

    monkeypatch.setattr(ship_mod, "C2E_EVAL_SIZES", (2 * SIZE,))
    shipped = ship_mod.ship(tmp_path / "run", "c2e-smoke", out_dir=tmp_path / "w")
    scard = json.loads(shipped.with_suffix(".json").read_text())
    assert set(scard["metrics"]["by_size"]) == {str(SIZE), str(2 * SIZE)}
    dtype = scard["shipping"]["dtype"]
    picked = scard["shipping"]["fp16" if dtype == "float16" else "fp32"]
    assert scard["metrics"]["val_psnr"] == picked[str(SIZE)]["psnr"]
    run_card = json.loads(path.with_suffix(".json").read_text())
    assert scard["metrics"]["training_run_val"]["val_psnr"] == run_card["metrics"]["val_psnr"]

    # the comparison tool (docs/models-and-data.md's v2 attempt): own-ref. PSNR as the ship's evaluation, colourfulness in Lab
    from tinct.training.c2e_compare import compare, mean_chroma

    res = compare([shipped], size=2 * SIZE)
    r = res["models"][str(shipped)]
    assert r["own_ref_psnr"] == pytest.approx(scard["metrics"]["by_size"][str(2 * SIZE)]["psnr"]["tps"], abs=0.05)
    assert res["images"] == len(photos)
    red = np.zeros((1, 2, 2, 3), np.uint8)
    red[..., 0] = 255  # sRGB red: Lab (53.24, 80.09, 67.20) in the usual D65 tables
    assert mean_chroma(red) == pytest.approx((80.09 + 67.20) / 2, abs=0.3)

    # v2 recipe: start from that model, add the VGG16 perceptual term; the card records both
    cfg2 = C2ETrainConfig(out=str(tmp_path / "run2"), steps=1, batch=2, size=SIZE, val_every=1, val_limit=3,
                          threads=1, warmup_steps=1, model_overrides=dict(TINY), init=str(shipped),
                          perceptual_weight=0.05)
    card2 = json.loads(train_color2embed(cfg2, progress=False).with_suffix(".json").read_text())
    assert card2["training"]["init"]["weights_sha256"] == scard["weights_sha256"]
    assert "relu5_2" in card2["training"]["perceptual_loss"] and "0.05 x perceptual" in card2["training"]["loss"]
    assert card2["training"]["init"]["loaded"] == "all"
    rec = json.loads((tmp_path / "run2" / "log.jsonl").read_text().splitlines()[0])
    assert rec["perceptual"] > 0 and rec["loss"] == pytest.approx(rec["smooth_l1"] + 0.05 * rec["perceptual"], abs=2e-5)
    # the MobileNetV2 option: ImageNet colour encoder + the decoder of that model
    cfg3 = C2ETrainConfig(model="color2embed-mnv2", out=str(tmp_path / "mnv2"), steps=1, batch=2, size=SIZE,
                          val_every=1, val_limit=3, threads=1, warmup_steps=1, model_overrides=dict(TINY),
                          init=str(shipped))
    card3 = json.loads(train_color2embed(cfg3, progress=False).with_suffix(".json").read_text())
    assert card3["training"]["init"]["loaded"] == "decoder" and "ImageNet MobileNetV2" in card3["training"]["colour_encoder"]
    cfg2.model_overrides = {**TINY, "emb_dim": 2 * TINY.get("emb_dim", 512)}  # another layout
    cfg2.out = str(tmp_path / "run3")
    with pytest.raises(TinctError, match="same layout needed"):
        train_color2embed(cfg2, progress=False)


def test_train_cli_options_checked(tmp_path, capsys):
    assert main(["train", "--model", "icolorit-tiny", "-o", str(tmp_path / "r"), "--size", "64"]) == 1
    assert "Color2Embed models only" in capsys.readouterr().err
    assert main(["train", "--model", "color2embed-r18", "-o", str(tmp_path / "r"), "--size", "60"]) == 1
    assert "multiple of 16" in capsys.readouterr().err
    assert main(["train", "--model", "icolorit-tiny", "-o", str(tmp_path / "r"), "--perceptual-weight", "0.1"]) == 1
    assert "Color2Embed models only" in capsys.readouterr().err
    assert main(["train", "--model", "color2embed-r18", "-o", str(tmp_path / "r"), "--perceptual-weight", "-1"]) == 1
    assert "--perceptual-weight -1.0 must be in [0, 1000]" in capsys.readouterr().err


# ----------------------------------------------------------------------------- latency benchmark

def test_latency_benchmark_measures_every_case(engines, monkeypatch):
    """tinct.benchmarks.color2embed_latency on the tiny checkpoint: eager, both backends' FP32, INT8 through the
    real guard (kept or reported as skipped with the guard's reason), the encoder and full-resolution e2e."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    import dataclasses

    from tinct.benchmarks import color2embed_latency as lat
    from tinct.quantization import api
    from tinct.quantization.recipes import Calibration, GuardPolicy

    real = api.quantize

    def small(src, out, recipe, guard=None, **kw):  # the fixture photos, 4 calibration samples, 4 guard images
        recipe = dataclasses.replace(recipe, calibration=Calibration(source=PHOTOS, size=4))
        return real(src, out, recipe, dataclasses.replace(guard or GuardPolicy(), images=4), **kw)

    monkeypatch.setattr(api, "quantize", small)
    prev = torch.get_num_threads()
    try:
        res = lat.measure(size=SIZE, threads=1, rounds=2, warmup=1, model_name=str(engines[0].parent / "tiny-c2e.safetensors"),
                          full=(160, 120))
    finally:
        torch.set_num_threads(prev)
    r = res["results"]
    for key in (f"colorizer {SIZE}² pytorch eager fp32", f"colorizer {SIZE}² onnxruntime fp32",
                f"colorizer {SIZE}² openvino fp32", f"encoder {SIZE}² onnxruntime fp32 (once per reference)",
                "end to end 160x120 onnxruntime fp32"):
        assert r[key]["median_ms"] > 0, key
    for backend in ("onnxruntime", "openvino"):
        name = f"{backend} int8"
        assert (name in res["int8_guard"]) != (name in res["skipped"])
        assert (f"colorizer {SIZE}² {name}" in r) == (name in res["int8_guard"])
    assert res["weights"].endswith("tiny-c2e.safetensors")
