"""Reference models (models/icolorit.py, models/acolvit.py) against an independent re-statement of
the official iColoriT / A-ColViT forward passes, written here in float64 numpy from the facts."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
from onnx import helper
from onnx.reference import ReferenceEvaluator
from scipy.special import erf

from tinct.models import create_model
from tinct.models.acolvit import AColViT, gumbel_sigmoid
from tinct.models.icolorit import IColoriT, pixel_shuffle_dcr

# ----------------------------------------------------------------------------- independent reference

def _sinusoid(n: int, d: int) -> np.ndarray:
    table = np.empty((n, d))
    for pos in range(n):
        for j in range(d):
            angle = pos / 10000 ** (2 * (j // 2) / d)
            table[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return table


def _rel_index(g: int) -> np.ndarray:
    """index[i, j] for tokens i=(r1, c1), j=(r2, c2): (r1-r2+g-1)*(2g-1) + (c1-c2+g-1)."""
    r = np.repeat(np.arange(g), g)
    c = np.tile(np.arange(g), g)
    return (r[:, None] - r[None, :] + g - 1) * (2 * g - 1) + (c[:, None] - c[None, :] + g - 1)


def _ln(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference_forward(sd: dict, x: np.ndarray, patch: int, heads: int, gates=None):
    """Official forward, float64. ``sd``: numpy state_dict. For A-ColViT (``policy_token`` in sd),
    the official training-time form x + g * sublayer(x) with hard 0/1 gates: ``gates`` [depth, 2]
    forced, or None for sigmoid(logit) > 0.5. Returns (ab [B,2,224,224], decisions [B,depth,2])."""
    b_, _, size, _ = x.shape
    g = size // patch
    d = sd["patch_embed.proj.weight"].shape[0]
    hd = d // heads
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    acol = "policy_token" in sd
    # patch embedding as an explicit unfold + matmul (not a convolution)
    pt = x.reshape(b_, 4, g, patch, g, patch).transpose(0, 2, 4, 1, 3, 5).reshape(b_, g * g, -1)
    t = pt @ sd["patch_embed.proj.weight"].reshape(d, -1).T + sd["patch_embed.proj.bias"]
    if acol:
        t = np.concatenate([np.broadcast_to(sd["policy_token"], (b_, 1, d)), t], axis=1)
    n = t.shape[1]
    t = t + _sinusoid(n, d)[None]
    decisions = []
    for i in range(depth):
        p = f"blocks.{i}."
        if acol:
            logit = t[:, 0] @ sd[p + "layer_select.mlp_head.weight"].T + sd[p + "layer_select.mlp_head.bias"]
            dec = 1.0 / (1.0 + np.exp(-logit)) > 0.5
            decisions.append(dec)
            gate = np.broadcast_to(np.asarray(gates[i], dtype=bool), dec.shape) if gates is not None else dec
            gate = gate.astype(np.float64)
        else:
            gate = np.ones((b_, 2))
        # attention
        h = _ln(t, sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        qkv_b = np.concatenate([sd[p + "attn.q_bias"], np.zeros(d), sd[p + "attn.v_bias"]])
        qkv = h @ sd[p + "attn.qkv.weight"].T + qkv_b  # [B, N, 3D]
        q = qkv[..., :d].reshape(b_, n, heads, hd).transpose(0, 2, 1, 3) * hd ** -0.5
        k = qkv[..., d:2 * d].reshape(b_, n, heads, hd).transpose(0, 2, 1, 3)
        v = qkv[..., 2 * d:].reshape(b_, n, heads, hd).transpose(0, 2, 1, 3)
        att = q @ k.transpose(0, 1, 3, 2)
        if p + "attn.rpb_table" in sd:
            bias = sd[p + "attn.rpb_table"][_rel_index(g)]  # [N, N, heads]
            att = att + bias.transpose(2, 0, 1)[None]
        o = (_softmax(att) @ v).transpose(0, 2, 1, 3).reshape(b_, n, d)
        o = o @ sd[p + "attn.proj.weight"].T + sd[p + "attn.proj.bias"]
        t = t + gate[:, 0, None, None] * o
        # MLP
        h = _ln(t, sd[p + "norm2.weight"], sd[p + "norm2.bias"])
        h = _gelu(h @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"])
        h = h @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"]
        t = t + gate[:, 1, None, None] * h
    t = _ln(t, sd["norm.weight"], sd["norm.bias"])
    if acol:
        t = t[:, 1:]
    # cnn head: 'b (p1 p2) c -> b c p1 p2', reflect pad, 3x3 conv as 9 shifted matmuls
    grid = t.reshape(b_, g, g, d).transpose(0, 3, 1, 2)
    pad = np.pad(grid, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    w, bias = sd["head.head.weight"], sd["head.head.bias"]
    y = np.zeros((b_, w.shape[0], g, g)) + bias[None, :, None, None]
    for dy in range(3):
        for dx in range(3):
            y += np.tensordot(w[:, :, dy, dx], pad[:, :, dy:dy + g, dx:dx + g], axes=([1], [1])).transpose(1, 0, 2, 3)
    tok = np.tanh(y.reshape(b_, -1, g * g).transpose(0, 2, 1))  # 'b c p1 p2 -> b (p1 p2) c', tanh
    # 'b (h w) (p1 p2 c) -> b c (h p1) (w p2)' with explicit loops over the token grid
    out = np.zeros((b_, 2, g * patch, g * patch))
    for hh in range(g):
        for ww in range(g):
            blk = tok[:, hh * g + ww].reshape(b_, patch, patch, 2)
            out[:, :, hh * patch:(hh + 1) * patch, ww * patch:(ww + 1) * patch] = blk.transpose(0, 3, 1, 2)
    dec = np.stack(decisions, axis=1) if decisions else None
    return out, dec


def _np_state(model):
    return {k: v.detach().double().numpy() for k, v in model.state_dict().items()}


def _input(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 4, 224, 224, generator=g) * 2 - 1
    x[:, 3] = (torch.rand(n, 112, 112, generator=g) < 0.05).float().repeat_interleave(2, 1).repeat_interleave(2, 2)
    x[:, 1:3] *= x[:, 3:4]
    return x


# ----------------------------------------------------------------------------- iColoriT parity

# Full-depth T at batch 2; S (a different width and head count) with fewer blocks to stay cheap on
# a shared 2-core machine: every block runs the same code, so depth adds time, not coverage.
@pytest.mark.parametrize("name,batch,depth", [("icolorit-tiny", 2, 12), ("icolorit-small", 1, 3)])
def test_parity_with_official_restatement(name, batch, depth, randomize_weights):
    model = randomize_weights(create_model(name, depth=depth), seed=1).eval()
    x = _input(batch)
    with torch.no_grad():
        got = model(x).numpy()
    ref, _ = reference_forward(_np_state(model), x.double().numpy(), model.cfg.patch_size, model.cfg.num_heads)
    assert got.shape == ref.shape == (batch, 2, 224, 224)
    assert np.abs(got - ref).max() <= 1e-5
    assert np.abs(ref).max() > 0.1  # not a degenerate, all-zero comparison


def test_parity_mask_cent(randomize_weights):
    model = randomize_weights(create_model("icolorit-tiny", mask_cent=True, depth=2), seed=2).eval()
    x = _input(1, seed=3)
    with torch.no_grad():
        got = model(x).numpy()
    xc = x.double().numpy().copy()
    xc[:, 3] -= 0.5  # official PatchEmbed with mask_cent subtracts 0.5 from the last channel
    ref, _ = reference_forward(_np_state(model), xc, 16, 3)
    assert np.abs(got - ref).max() <= 1e-5
    assert x[:, 3].max() == 1.0  # the caller's input is not modified in place


@pytest.fixture(scope="module")
def tiny():
    return create_model("icolorit-tiny").eval()


@pytest.fixture(scope="module")
def acolvit_full():
    return create_model("acolvit-tiny").eval()


def test_relative_position_index_and_sinusoid(tiny):
    model = tiny
    idx = model.blocks[0].attn.relative_position_index.numpy()
    np.testing.assert_array_equal(idx, _rel_index(14))
    np.testing.assert_allclose(model.pos_embed[0].double().numpy(), _sinusoid(196, 192), atol=1e-6)


def test_pixel_shuffle_is_onnx_depth_to_space_dcr():
    patch, g = 4, 3
    y = np.random.default_rng(0).standard_normal((2, 2 * patch * patch, g, g)).astype(np.float32)
    node = helper.make_node("DepthToSpace", ["y"], ["z"], blocksize=patch, mode="DCR")
    graph = helper.make_graph(
        [node], "d2s", [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(y.shape))],
        [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [2, 2, g * patch, g * patch])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    (want,) = ReferenceEvaluator(model).run(None, {"y": y})
    got = pixel_shuffle_dcr(torch.from_numpy(y), patch).numpy()
    np.testing.assert_array_equal(got, want)
    # and it is the official 'b (h w) (p1 p2 c) -> b c (h p1) (w p2)' on the token layout
    tok = y.reshape(2, -1, g * g).transpose(0, 2, 1)
    for hh in range(g):
        for ww in range(g):
            for p1 in range(patch):
                for p2 in range(patch):
                    for c in range(2):
                        assert got[1, c, hh * patch + p1, ww * patch + p2] == tok[1, hh * g + ww, (p1 * patch + p2) * 2 + c]


# Full-size T at batch 2 is covered by the parity test. The others with fewer blocks: the contract
# depends on width, heads and patch size, not on depth.
@pytest.mark.parametrize("name,batch,depth", [("icolorit-small", 2, 2), ("icolorit-base", 1, 2),
                                              ("icolorit-tiny-p8", 1, 2), ("icolorit-tiny-p32", 2, 4),
                                              ("acolvit-tiny", 2, 12)])
def test_output_contract(name, batch, depth):
    model = create_model(name, depth=depth).eval()
    with torch.no_grad():
        y = model(_input(batch))
    assert y.shape == (batch, 2, 224, 224) and y.dtype == torch.float32
    assert torch.isfinite(y).all() and y.abs().max() <= 1.0


def test_patch_variants_parity(randomize_weights):
    for name, patch in (("icolorit-tiny-p32", 32), ("icolorit-tiny-p8", 8)):
        model = randomize_weights(create_model(name, depth=2), seed=4).eval()
        assert model.cfg.patch_size == patch
        x = _input(1, seed=5)
        with torch.no_grad():
            got = model(x).numpy()
        ref, _ = reference_forward(_np_state(model), x.double().numpy(), patch, 3)
        assert np.abs(got - ref).max() <= 1e-5


# ----------------------------------------------------------------------------- state_dict keys

def _official_keys(depth, rpb=True, acolvit=False):
    keys = {"patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias",
            "head.head.weight", "head.head.bias"}
    for i in range(depth):
        p = f"blocks.{i}."
        keys |= {p + s for s in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
                                 "attn.q_bias", "attn.v_bias", "attn.qkv.weight", "attn.proj.weight",
                                 "attn.proj.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
                                 "mlp.fc2.bias")}
        if rpb:
            keys |= {p + "attn.rpb_table", p + "attn.relative_position_index"}
        if acolvit:
            keys |= {p + "layer_select.mlp_head.weight", p + "layer_select.mlp_head.bias"}
    if acolvit:
        keys.add("policy_token")
    return keys


def test_official_state_dict_keys_and_shapes(tiny, acolvit_full):
    m = tiny
    sd = m.state_dict()
    assert set(sd) == _official_keys(12)
    assert "pos_embed" not in sd and m.pos_embed.shape == (1, 196, 192)
    assert sd["patch_embed.proj.weight"].shape == (192, 4, 16, 16)
    assert sd["blocks.0.attn.qkv.weight"].shape == (576, 192)
    assert sd["blocks.0.attn.rpb_table"].shape == (27 * 27, 3)
    assert sd["blocks.0.attn.relative_position_index"].shape == (196, 196)
    assert sd["blocks.0.mlp.fc1.weight"].shape == (768, 192)
    assert sd["head.head.weight"].shape == (512, 192, 3, 3)
    a = acolvit_full
    sd = a.state_dict()
    assert set(sd) == _official_keys(12, rpb=False, acolvit=True)
    assert "pos_embed" not in sd and a.pos_embed.shape == (1, 197, 192)
    assert sd["policy_token"].shape == (1, 1, 192)
    assert sd["blocks.0.layer_select.mlp_head.weight"].shape == (2, 192)
    p8 = create_model("icolorit-tiny-p8", depth=2).state_dict()
    assert set(p8) == _official_keys(2)
    assert p8["blocks.1.attn.rpb_table"].shape == (55 * 55, 3) and p8["head.head.weight"].shape == (128, 192, 3, 3)
    assert create_model("icolorit-tiny-p32", depth=2).state_dict()["head.head.weight"].shape == (2048, 192, 3, 3)


# ----------------------------------------------------------------------------- A-ColViT

MIXED_INPUT_SEED = 12
SPLIT = ((1, 0), (2, 1), (3, 1))  # (block, gate) split 2/2 over the batch by the fixture


@pytest.fixture(scope="module")
def acolvit(randomize_weights):
    """A-ColViT whose gates split the batch ``_input(4, MIXED_INPUT_SEED)``: in some blocks the
    gate's Linear is rescaled and shifted so that two samples keep the sub-layer and two skip it,
    each logit at least 1 away from the threshold (no float32/float64 ties)."""
    model = randomize_weights(create_model("acolvit-tiny", depth=DEPTH), seed=7).eval()
    x = _input(4, MIXED_INPUT_SEED)
    with torch.no_grad():  # block 0 sees the same policy token for every input: let its attention
        model.blocks[0].layer_select.mlp_head.bias[0] = 20.0  # run, so that later policies differ
    for i, j in SPLIT:
        head = model.blocks[i].layer_select.mlp_head
        seen = []
        hook = head.register_forward_hook(lambda m, inp, out, seen=seen: seen.append(inp[0].detach().clone()))
        with torch.no_grad():
            model(x)
        hook.remove()
        with torch.no_grad():
            v = (seen[0] @ head.weight[j]).sort().values
            scale = 2.0 / float(v[2] - v[1])
            head.weight[j] *= scale
            head.bias[j] = -scale * float(v[1] + v[2]) / 2
    return model


DEPTH = 4  # A-ColViT tests: fewer blocks than the shipped 12 to keep the suite fast


def _forced(depth=DEPTH, off=((1, 0), (2, 1), (3, 0), (3, 1))):
    g = torch.ones(depth, 2, dtype=torch.bool)
    for i, j in off:
        g[i, j] = False
    return g


def test_gated_off_sublayer_is_not_computed(acolvit, monkeypatch):
    calls = {"mlp3": 0}

    def boom(*a, **k):
        raise AssertionError("gated-off attention was computed")

    orig = acolvit.blocks[1].mlp.forward

    def counting(x):
        calls["mlp3"] += 1
        return orig(x)

    monkeypatch.setattr(acolvit.blocks[1].attn, "forward", boom)
    monkeypatch.setattr(acolvit.blocks[3].attn, "forward", boom)
    monkeypatch.setattr(acolvit.blocks[3].mlp, "forward", boom)
    monkeypatch.setattr(acolvit.blocks[1].mlp, "forward", counting)
    monkeypatch.setattr(acolvit, "forced_gates", _forced())
    with torch.no_grad():
        y, gates = acolvit.forward_with_gates(_input(2))
    assert calls["mlp3"] == 1
    assert y.shape == (2, 2, 224, 224)
    assert gates.shape == (2, DEPTH, 2) and gates.dtype == torch.bool
    assert (gates == _forced()[None]).all()


def test_forced_gates_equal_multiply_by_mask(acolvit, monkeypatch):
    forced = _forced()
    monkeypatch.setattr(acolvit, "forced_gates", forced)
    x = _input(2, seed=11)
    with torch.no_grad():
        got = acolvit(x).numpy()
    ref, _ = reference_forward(_np_state(acolvit), x.double().numpy(), 16, 3, gates=forced.numpy())
    assert np.abs(got - ref).max() <= 1e-5
    # and the gating matters: all-on gives a different result
    monkeypatch.setattr(acolvit, "forced_gates", torch.ones(DEPTH, 2, dtype=torch.bool))
    with torch.no_grad():
        assert np.abs(acolvit(x).numpy() - got).max() > 1e-3


def test_eval_gates_are_sigmoid_threshold_and_mixed_batches(acolvit):
    x = _input(4, MIXED_INPUT_SEED)
    with torch.no_grad():
        y, gates = acolvit.forward_with_gates(x)
    ref, dec = reference_forward(_np_state(acolvit), x.double().numpy(), 16, 3)
    np.testing.assert_array_equal(gates.numpy(), dec)
    assert np.abs(y.numpy() - ref).max() <= 1e-5
    # the decisions differ between samples somewhere, and some sub-layers are skipped
    for i, j in SPLIT:
        assert dec[:, i, j].sum() == 2, "the fixture splits these gates 2/2 within the batch"
    # each sample of the mixed batch gives the same result as run alone
    with torch.no_grad():
        for i in range(4):
            yi, gi = acolvit.forward_with_gates(x[i:i + 1])
            assert (gi[0] == gates[i]).all()
            assert (yi[0] - y[i]).abs().max() <= 1e-5


def test_mixed_batch_sublayer_sees_only_kept_samples(acolvit):
    x = _input(4, MIXED_INPUT_SEED)
    with torch.no_grad():
        _, gates = acolvit.forward_with_gates(x)
    seen = {}
    hooks = [blk.mlp.register_forward_hook(lambda m, inp, out, i=i: seen.__setitem__(i, inp[0].shape[0]))
             for i, blk in enumerate(acolvit.blocks)]
    try:
        with torch.no_grad():
            acolvit(x)
    finally:
        for h in hooks:
            h.remove()
    for i in range(DEPTH):
        kept = int(gates[:, i, 1].sum())
        assert seen.get(i, 0) == kept


def test_gumbel_sigmoid_train_mode_straight_through(randomize_weights):
    torch.manual_seed(0)
    model = randomize_weights(create_model("acolvit-tiny", depth=4), seed=8).train()
    y, gates = model.forward_with_gates(_input(1, seed=13))
    assert gates.shape == (1, 4, 2) and gates.dtype == torch.float32
    hard = (gates > 0.5).float()
    assert (gates - hard).abs().max() <= 1e-6  # values are 0/1 (up to the ST rounding)
    assert gates.requires_grad
    (y.square().mean() + gates.sum() * 0).backward()
    for blk in model.blocks:
        grad = blk.layer_select.mlp_head.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_gumbel_sigmoid_function():
    logits = torch.tensor([-60.0, 60.0, 0.0, 0.3]).repeat(64, 1).requires_grad_()
    out = gumbel_sigmoid(logits, generator=torch.Generator().manual_seed(0))
    assert ((out - (out > 0.5).float()).abs() <= 1e-6).all()
    assert (out[:, 0] < 0.5).all() and (out[:, 1] > 0.5).all()
    assert 0 < (out[:, 2] > 0.5).float().mean() < 1  # noisy near zero logits
    out.sum().backward()
    assert (logits.grad > 0).all() and (logits.grad <= 1 / (4 * 5.0) + 1e-6).all()  # sigmoid'/tau


def test_classes(tiny, acolvit_full):
    assert isinstance(tiny, IColoriT) and tiny.arch == "icolorit"
    a = acolvit_full
    assert isinstance(a, AColViT) and a.arch == "acolvit" and not a.cfg.use_rpb
