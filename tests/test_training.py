"""Training: the official loss, the LR schedule, and a few-step smoke run (train, resume, A-ColViT
fine-tune, ship) on a tiny configuration over the fixture photos, without the corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tinct.training.losses import huber_loss, sparsity_loss  # noqa: E402
from tinct.training.train import TrainConfig, lr_at  # noqa: E402

PHOTOS = sorted((Path(__file__).parent.parent / "data" / "samples").glob("*.jpg"))


def test_huber_matches_the_official_formula():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 2, 8, 8, generator=g) * 0.04, torch.rand(2, 2, 8, 8, generator=g) * 0.04
    d = (pred - target).abs()
    # official: 0.5*d^2/delta where d < delta, else d - 0.5*delta; sum over ab, mean over the rest
    per = torch.where(d < 0.01, 0.5 * d ** 2 / 0.01, d - 0.005)
    want = per.permute(0, 2, 3, 1).reshape(-1, 2).sum(-1).mean()
    assert torch.allclose(huber_loss(pred, target), want)
    assert (d < 0.01).any() and (d >= 0.01).any()  # both regimes exercised


def test_sparsity_loss():
    assert sparsity_loss(torch.ones(4, 12, 2), 0.5).item() == pytest.approx(0.25)
    assert sparsity_loss(torch.full((4, 12, 2), 0.3), 0.3).item() == pytest.approx(0.0, abs=1e-12)


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=5e-4, warmup_lr=1e-6, min_lr=1e-5)
    assert lr_at(0, cfg) == pytest.approx(1e-6)
    assert lr_at(10, cfg) == pytest.approx(5e-4)
    assert lr_at(100, cfg) == pytest.approx(1e-5)
    lrs = [lr_at(s, cfg) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


@pytest.fixture
def fixture_corpus(monkeypatch, tmp_path):
    """Point the trainer's data access at the fixture photos (train and validation)."""
    from PIL import Image

    import tinct.training.train as trainer
    from tinct.runtime.hints import make_eval_hints, write_eval_hints

    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((224, 224))) for p in PHOTOS])
    names = [p.stem for p in PHOTOS]
    write_eval_hints(make_eval_hints([p.name for p in PHOTOS], counts=(0, 1, 2, 5, 10, 20, 50)),
                     tmp_path / "val" / "hints")
    monkeypatch.setattr(trainer, "load_train_photos", lambda cache=None: list(images))
    monkeypatch.setattr(trainer, "load_val", lambda cache=None: (names, images))
    monkeypatch.setattr(trainer, "val_dir", lambda cache=None: tmp_path / "val")
    return tmp_path


@pytest.mark.slow
def test_smoke_train_resume_finetune_ship(fixture_corpus, capsys):
    from tinct.models.checkpoint import load_model
    from tinct.training.ship import ship
    from tinct.training.train import train

    run = fixture_corpus / "run"
    small = {"depth": 2}
    cfg = TrainConfig(model="icolorit-tiny", out=str(run), steps=3, batch=2, warmup_steps=1, val_every=3,
                      save_every=1, threads=1, model_overrides=small)
    path = train(cfg, progress=False)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["training"]["steps"] == 3 and card["config"]["depth"] == 2
    assert set(card["metrics"]["val_psnr"]) == {"0", "1", "2", "5", "10", "20", "50"}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in log)

    # resume: a longer schedule continues from last.pt at step 3
    cfg.steps = 4
    train(cfg, progress=False)
    assert "resumed from" in capsys.readouterr().out
    assert [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()][-1] == 4

    # A-ColViT fine-tuning from that checkpoint: gates appear in the card
    ac = TrainConfig(model="acolvit-tiny", out=str(fixture_corpus / "ac"), steps=2, batch=2, warmup_steps=1,
                     val_every=2, threads=1, init=str(path), beta=0.5, model_overrides=small)
    ac_path = train(ac, progress=False)
    ac_card = json.loads(ac_path.with_suffix(".json").read_text())
    assert 0.0 <= ac_card["metrics"]["gates"]["kept_ratio"] <= 1.0 and ac_card["training"]["beta"] == 0.5
    assert load_model(ac_path).cfg.use_rpb  # inherits the base's relative position bias

    # ship: FP16 only when harmless; the card records both evaluations
    shipped = ship(run, "smoke", out_dir=fixture_corpus / "weights")
    scard = json.loads(shipped.with_suffix(".json").read_text())
    assert scard["shipping"]["dtype"] in ("float16", "float32")
    assert scard["metrics"]["val_psnr"] == (scard["shipping"]["fp16_val_psnr"] if scard["shipping"]["dtype"]
                                            == "float16" else scard["shipping"]["fp32_val_psnr"])

    # the CLI with --out-dir: weights/ is left alone (its ONNX was once re-exported from the old model there)
    from tinct.cli.main import main
    from tinct.models.registry import WEIGHTS_DIR

    before = {p.name: p.stat().st_mtime_ns for p in Path(WEIGHTS_DIR).iterdir()}
    capsys.readouterr()
    assert main(["ship", str(run), "--name", "smoke", "--out-dir", str(fixture_corpus / "w2")]) == 0
    assert "no ready-to-run ONNX for a model shipped into" in capsys.readouterr().out
    assert (fixture_corpus / "w2" / "smoke.safetensors").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in Path(WEIGHTS_DIR).iterdir()} == before


def test_step_clock_excludes_paused_time(monkeypatch):
    import tinct.training.train as tt

    now = [100.0]
    monkeypatch.setattr(tt.time, "perf_counter", lambda: now[0])
    clock = tt.StepClock(wall=5.0)
    now[0] += 2.0
    assert clock.step(32) == pytest.approx(16.0)  # 32 images in 2 s
    with clock.paused():  # e.g. validation
        now[0] += 10.0
    now[0] += 1.0
    assert clock.step(32) == pytest.approx(32.0)  # only the 1 s of training counts
    assert clock.wall == pytest.approx(8.0)


def test_torch_lab_to_rgb_matches_the_runtime_colour_space():
    """training.losses.lab_n_to_rgb (torch, differentiable) = runtime.color.lab_n_to_rgb (numpy), on a real
    photo's Lab and on random Lab values far outside the gamut (both clamp)."""
    from PIL import Image

    from tinct.runtime.color import lab_n_to_rgb as np_lab_n_to_rgb
    from tinct.runtime.color import rgb_to_lab_n
    from tinct.training.losses import lab_n_to_rgb

    photo = np.asarray(Image.open(PHOTOS[0]).convert("RGB").resize((64, 48)))
    rng = np.random.default_rng(0)
    wild = np.concatenate([rng.uniform(-0.5, 0.5, (1, 48, 64, 1)), rng.uniform(-1.2, 1.2, (1, 48, 64, 2))], -1)
    for lab_n in (rgb_to_lab_n(photo)[None], wild.astype(np.float32)):
        want = np_lab_n_to_rgb(lab_n)
        got = lab_n_to_rgb(torch.from_numpy(np.moveaxis(lab_n, -1, 1).copy())).numpy()
        assert np.abs(np.moveaxis(got, 1, -1) - want).max() <= 2e-5


def test_torch_lab_to_rgb_gradient_is_finite_at_black_and_white():
    from tinct.training.losses import lab_n_to_rgb

    lab = torch.tensor([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [-0.5, 0.3, -0.3], [0.0, 0.2, 0.1]]).T.reshape(1, 3, 1, 4)
    lab.requires_grad_(True)
    lab_n_to_rgb(lab).sum().backward()
    assert torch.isfinite(lab.grad).all() and lab.grad[0, 0, 0, 3] > 0  # brighter L, brighter RGB


def test_conv_stack_stops_at_the_asked_tap():
    from tinct.data.pretrained import NETS
    from tinct.models.features import ConvStack

    layers = NETS["alex"][2]
    rng = np.random.default_rng(1)
    w, cin = {}, 3
    for i, (cout, k, *_rest) in enumerate(x for x in layers if x[0] != "M"):
        w[f"conv{i}.weight"] = rng.normal(0, 0.05, (cout, cin, k, k)).astype(np.float32)
        w[f"conv{i}.bias"] = rng.normal(0, 0.05, cout).astype(np.float32)
        cin = cout
    stack = ConvStack(layers, w)
    x = torch.from_numpy(rng.random((2, 3, 96, 96), dtype=np.float32))
    full = stack(x)  # the layer list's own taps: all five AlexNet convs
    assert len(full) == 5 and not list(stack.state_dict())  # buffers only, never saved
    one = stack(x, taps=(2,))
    assert len(one) == 1 and torch.equal(one[0], full[2])
    with pytest.raises(ValueError, match="outside"):
        stack(x, taps=(5,))


def test_perceptual_loss_on_imagenet_vgg16():
    """Zero for the same image, larger for a worse colouring, and its gradient reaches the prediction."""
    from PIL import Image

    from tinct.training.losses import PerceptualLoss

    loss = PerceptualLoss()
    rgb = torch.from_numpy(np.asarray(Image.open(PHOTOS[0]).convert("RGB").resize((64, 64)), np.float32) / 255)
    rgb = rgb.permute(2, 0, 1)[None]
    gray = rgb.mean(1, keepdim=True).expand_as(rgb)
    assert loss.features(rgb).shape == (1, 512, 4, 4)  # relu5_2 of VGG16 at 1/16 resolution
    assert loss(rgb, rgb).item() == 0.0
    near = (rgb * 0.9 + gray * 0.1).requires_grad_(True)
    d_near, d_gray = loss(near, rgb), loss(gray, rgb)
    assert 0 < d_near.item() < d_gray.item()
    d_near.backward()
    assert torch.isfinite(near.grad).all() and near.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="perceptual layer"):
        PerceptualLoss("relu9_9")


def test_speed_step_trains_its_own_copy():
    from tinct.training.train import speed_step

    cfg = TrainConfig(model="acolvit-tiny", batch=2, beta=0.5, model_overrides={"depth": 2})
    step, other = speed_step(cfg, bf16=False), speed_step(cfg, bf16=False)
    assert step.model is not other.model
    before = {k: v.clone() for k, v in step.model.state_dict().items()}
    step()
    step()  # a second optimizer step on the same batch works (no stale graph)
    after, untouched = step.model.state_dict(), other.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trains its model...
    assert all(torch.equal(before[k], untouched[k]) for k in before)  # ...and only its own


def test_train_speed_cli(tmp_path, capsys):
    from tinct.cli.main import main

    out = tmp_path / "speed.json"
    assert main(["train", "--speed", "--batch", "1", "--speed-rounds", "1", "--threads", "1", "--no-progress",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "bf16 autocast / FP32:" in text and "img/s" in text
    rec = json.loads(out.read_text())
    assert [c["precision"] for c in rec["cases"]] == ["fp32", "bf16"] and all(c["img_s"] > 0 for c in rec["cases"])
    assert rec["cpu"]["model"] and rec["threads"] == 1
    assert main(["train", "--speed", "--model", "color2embed-r18"]) == 1
    assert "not Color2Embed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--speed", "--speed-rounds", "0"])
    assert "out of range (1..1000)" in capsys.readouterr().err
    assert main(["train", "--model", "icolorit-tiny"]) == 1
    assert "-o/--out is required" in capsys.readouterr().err
