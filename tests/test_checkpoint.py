"""Checkpoint I/O (models/checkpoint.py): official .pth pickles and tinct safetensors + card."""

from __future__ import annotations

import argparse
import json
import os
import pickle

import numpy as np
import pytest
import torch

import tinct.models.checkpoint as ckpt
from tinct.models import create_model, load_model, save_model
from tinct.models.checkpoint import CheckpointError
from tinct.runtime.errors import TinctError


def _args(model_name: str, **kw) -> argparse.Namespace:
    """The argparse.Namespace the official training script stores next to the weights."""
    base = argparse.Namespace(
        model=model_name, use_rpb=True, head_mode="cnn", avg_hint=True, mask_cent=False, input_size=224,
        batch_size=32, lr=5e-4, epochs=100, hint_size=2, drop_path=0.0, output_dir="/tmp/out", seed=0,
        data_path="/data/imagenet")
    vars(base).update(kw)
    return base


def _write_official(path, model, model_name, extra=None, **args):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    obj = {"model": state, "args": _args(model_name, **args), "epoch": 99,
           "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}}
    obj.update(extra or {})
    torch.save(obj, path)
    return path


def _x(n=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 4, 224, 224, generator=g) * 2 - 1
    x[:, 3] = (x[:, 3] > 0.9).float()
    return x


# Fewer blocks than shipped (the loader reads the depth from the keys; width and heads come from
# the official name) keeps checkpoint files small and the suite fast; T keeps two-digit block
# indices (blocks.10, blocks.11) to exercise the depth inference.
CASES = [
    ("icolorit-tiny", 12, "icolorit_tiny_4ch_patch16_224", {}),
    ("icolorit-small", 2, "icolorit_small_4ch_patch16_224", {}),
    ("icolorit-base", 1, "icolorit_base_4ch_patch16_224", {}),
    ("acolvit-tiny", 3, "block_icolorit_tiny_4ch_patch16_224", {"use_rpb": False}),
]


@pytest.mark.parametrize("name,depth,official,args", CASES, ids=[c[0] for c in CASES])
def test_official_checkpoint_loads_strictly(tmp_path, randomize_weights, name, depth, official, args):
    src = randomize_weights(create_model(name, depth=depth), seed=3).eval()
    path = _write_official(tmp_path / "checkpoint-99.pth", src, official, **args)
    model, card = load_model(path, with_card=True)
    assert type(model) is type(src) and not model.training
    assert model.cfg == src.cfg
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    x = _x(1)
    with torch.no_grad():
        assert torch.equal(model(x), src(x))
    assert card["source"] == "official" and card["args"]["model"] == official
    assert card["source_sha256"] == ckpt.sha256_file(path)


def test_official_checkpoint_without_args(tmp_path):
    src = create_model("icolorit-small", depth=1)
    torch.save({"model": src.state_dict()}, tmp_path / "m.pth")
    model = load_model(tmp_path / "m.pth")
    assert model.cfg.embed_dim == 384 and model.cfg.num_heads == 6 and model.cfg.depth == 1


def test_official_options_are_read(tmp_path):
    src = create_model("icolorit-tiny", depth=1)
    m = load_model(_write_official(tmp_path / "a.pth", src, "icolorit_tiny_4ch_patch16_224",
                                   mask_cent=True, avg_hint=False))
    assert m.cfg.mask_cent and not m.cfg.avg_hint


class _Custom:
    """A class that is not on the allow-list (no code of its own runs on load)."""

    def __init__(self):
        self.value = 1


class _TouchFile:
    """Its unpickling would create a file through os.system."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class _OpenFile:
    """Its unpickling would create a file through builtins.open."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("payload", [_TouchFile, _OpenFile])
def test_malicious_pickle_refused_without_executing(tmp_path, payload):
    src = create_model("icolorit-tiny", depth=1)
    marker = tmp_path / "pwned"
    bad = _write_official(tmp_path / "bad.pth", src, "icolorit_tiny_4ch_patch16_224",
                          extra={"scaler": payload(marker)})
    with pytest.raises(CheckpointError, match=r"refusing to load .*not allow-listed") as ei:
        load_model(bad)
    assert isinstance(ei.value, TinctError)
    assert ("system" in str(ei.value)) == (payload is _TouchFile)
    assert not marker.exists()
    # the payload is live: an unrestricted unpickler would have created the file
    with open(bad, "rb") as f:
        assert b"pwned" in f.read()
    live = tmp_path / "live.pkl"
    live.write_bytes(pickle.dumps(payload(tmp_path / "proof")))
    res = pickle.loads(live.read_bytes())
    if hasattr(res, "close"):
        res.close()
    assert (tmp_path / "proof").exists()
    assert not marker.exists()


def test_custom_class_refused(tmp_path):
    src = create_model("icolorit-tiny", depth=1)
    bad = _write_official(tmp_path / "bad.pth", src, "icolorit_tiny_4ch_patch16_224",
                          extra={"meta": _Custom()})
    with pytest.raises(CheckpointError, match=r"not allow-listed.*_Custom"):
        load_model(bad)


@pytest.fixture(scope="module")
def tiny_state():
    return create_model("icolorit-tiny", depth=2).state_dict()


def _save_state(path, state, name="icolorit_tiny_4ch_patch16_224", **args):
    torch.save({"model": state, "args": _args(name, **args)}, path)
    return path


def test_missing_keys(tmp_path, tiny_state):
    state = dict(tiny_state)
    del state["norm.weight"], state["blocks.1.mlp.fc2.bias"]
    with pytest.raises(CheckpointError, match=r"missing 2 key\(s\).*blocks.1.mlp.fc2.bias"):
        load_model(_save_state(tmp_path / "m.pth", state))


def test_unexpected_keys(tmp_path, tiny_state):
    state = {**tiny_state, "blocks.0.attn.extra": torch.zeros(3), "cls_token": torch.zeros(1, 1, 192)}
    with pytest.raises(CheckpointError, match=r"unexpected 2 key\(s\).*cls_token"):
        load_model(_save_state(tmp_path / "m.pth", state))


def test_shape_mismatch(tmp_path, tiny_state):
    state = {**tiny_state, "blocks.1.mlp.fc1.bias": torch.zeros(700)}
    with pytest.raises(CheckpointError, match=r"shape mismatch for blocks.1.mlp.fc1.bias.*\(700,\).*\(768,\)"):
        load_model(_save_state(tmp_path / "m.pth", state))


def test_linear_head_refused(tmp_path, tiny_state):
    with pytest.raises(CheckpointError, match="head_mode 'linear'"):
        load_model(_save_state(tmp_path / "m.pth", tiny_state, head_mode="linear"))


def test_unknown_official_name_refused(tmp_path, tiny_state):
    with pytest.raises(CheckpointError, match="unknown official architecture 'vit_giant'"):
        load_model(_save_state(tmp_path / "m.pth", tiny_state, name="vit_giant"))


def test_acolvit_name_with_icolorit_weights_refused(tmp_path, tiny_state):
    with pytest.raises(CheckpointError, match="block_icolorit_tiny_4ch_patch16_224.*iColoriT"):
        load_model(_save_state(tmp_path / "m.pth", tiny_state, name="block_icolorit_tiny_4ch_patch16_224"))
    a_state = create_model("acolvit-tiny", depth=1).state_dict()
    with pytest.raises(CheckpointError, match="icolorit_tiny_4ch_patch16_224.*A-ColViT"):
        load_model(_save_state(tmp_path / "a.pth", a_state, use_rpb=False))


def test_not_a_state_dict(tmp_path):
    torch.save({"model": {"foo": torch.zeros(1)}}, tmp_path / "a.pth")
    with pytest.raises(CheckpointError, match="not an iColoriT/A-ColViT state_dict"):
        load_model(tmp_path / "a.pth")
    torch.save({"epoch": 1}, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match="no 'model' state_dict"):
        load_model(tmp_path / "b.pth")
    torch.save([torch.zeros(1)], tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match="expected a dict checkpoint"):
        load_model(tmp_path / "c.pth")


@pytest.mark.parametrize("content", [b"hello world, not a checkpoint\n", b"", b"\x80\x02\xff\x00garbage",
                                     b"PK\x03\x04 truncated zip"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_non_checkpoint_file(tmp_path, content, suffix):
    p = tmp_path / f"junk{suffix}"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"cannot read"):
        load_model(p)


def test_unsupported_suffix(tmp_path):
    p = tmp_path / "weights.npz"
    p.write_bytes(b"123")
    with pytest.raises(CheckpointError, match="unsupported checkpoint type '.npz'"):
        load_model(p)


# ----------------------------------------------------------------------------- tinct format

@pytest.mark.parametrize("name,depth", [("icolorit-tiny", 2), ("acolvit-tiny", 2)])
def test_tinct_round_trip_fp32(tmp_path, randomize_weights, name, depth):
    src = randomize_weights(create_model(name, depth=depth), seed=5).eval()
    path = save_model(src, tmp_path / "m.safetensors", card={"psnr": {"10": 30.1}})
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["architecture"] == src.arch and card["config"] == src.cfg.to_dict()
    assert card["weights_dtype"] == "float32" and card["psnr"] == {"10": 30.1}
    assert card["weights_sha256"] == ckpt.sha256_file(path)
    model, card2 = load_model(path, with_card=True)
    assert type(model) is type(src) and model.cfg == src.cfg and not model.training
    assert card2["psnr"] == {"10": 30.1}
    x = _x(2, seed=1)
    with torch.no_grad():
        assert torch.equal(model(x), src(x))
    assert not list(tmp_path.glob(".*.tmp*"))


def test_tinct_round_trip_fp16(tmp_path, randomize_weights):
    src = randomize_weights(create_model("icolorit-tiny", depth=2, mask_cent=True), seed=6).eval()
    path = save_model(src, tmp_path / "m16.safetensors", dtype=torch.float16)
    card = json.loads((tmp_path / "m16.json").read_text())
    assert card["weights_dtype"] == "float16"
    assert path.stat().st_size < 0.6 * sum(v.numel() * 4 for v in src.state_dict().values())
    model = load_model(path)
    assert model.cfg == src.cfg and model.cfg.mask_cent
    for k, v in src.state_dict().items():
        got = model.state_dict()[k]
        assert got.dtype == v.dtype, k
        want = v.half().float() if v.is_floating_point() else v
        assert torch.equal(got, want), k
    x = _x(1, seed=2)
    with torch.no_grad():
        assert (model(x) - src(x)).abs().max() < 5e-2


def test_shipped_weights_by_registry_name(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="'icolorit-tiny' has no shipped weights"):
        load_model("icolorit-tiny")
    src = create_model("icolorit-tiny", depth=1)
    save_model(src, tmp_path / "icolorit-tiny.safetensors")
    assert load_model("icolorit-tiny").cfg == src.cfg


def test_unknown_registry_name():
    with pytest.raises(TinctError, match=r"no such model or checkpoint: 'icolorit-huge'.*icolorit-tiny"):
        load_model("icolorit-huge")
    with pytest.raises(TinctError, match=r"unknown model 'icolorit-huge'"):
        create_model("icolorit-huge")


def test_safetensors_without_metadata(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="no architecture/config metadata"):
        load_model(tmp_path / "plain.safetensors")


def test_fp16_official_weights_are_upcast(tmp_path):
    src = create_model("icolorit-tiny", depth=1)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in src.state_dict().items()}
    model = load_model(_save_state(tmp_path / "h.pth", state))
    assert model.head.head.weight.dtype == torch.float32
    np.testing.assert_array_equal(model.head.head.weight.detach().numpy(),
                                  src.head.head.weight.detach().half().float().numpy())
