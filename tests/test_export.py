"""tinct export: ONNX graphs, metadata, parity (incl. per-sample gate decisions in a batch), CLI.

Tiny models (depth 2) keep this fast; each export is done once per module (fixtures).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tinct.export.onnx_export import export_onnx, read_meta, state_dict_sha256
from tinct.export.reference import torch_reference
from tinct.models import create_model
from tinct.runtime.artifact import count_ops
from tinct.runtime.errors import TinctError
from tinct.verify import parity, probes
from tinct.verify.predictors import ArtifactPredictor

slow = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
TOL = 1e-4


@pytest.fixture(scope="module")
def x_parity():
    try:
        return probes.parity_inputs()
    except TinctError as exc:
        pytest.skip(str(exc))


def _ort(path):
    """The export as the runtime opens it (ONNX Runtime), as a predictor."""
    return ArtifactPredictor.open(path, threads=0, backend="onnxruntime")


def _set_gates(model, decisions):
    """Force decisions with the gate Linears: zero weights, bias +-5 ([depth][2] bools)."""
    with torch.no_grad():
        for blk, d in zip(model.blocks, decisions):
            blk.layer_select.mlp_head.weight.zero_()
            blk.layer_select.mlp_head.bias.copy_(torch.tensor([5.0 if k else -5.0 for k in d]))


def _mix_per_sample(model, x2):
    """Make the two samples of x2 take opposite decisions in every block after the first: centre
    each gate Linear between the two samples' logits and scale it to a margin of 4."""
    _set_gates(model, [[True, False]] * len(model.blocks))  # block 0: attention on, MLP off for all
    xt = torch.from_numpy(x2)
    for i in range(1, len(model.blocks)):
        head = model.blocks[i].layer_select.mlp_head
        with torch.no_grad():
            head.weight.copy_(torch.randn_like(head.weight))
            head.bias.zero_()
            seen = []
            hook = model.blocks[i].layer_select.register_forward_hook(lambda m, a, out, seen=seen: seen.append(out))
            model.forward_with_gates(xt)
            hook.remove()
            logits = seen[0]  # [2, 2]
            scale = 4.0 / (logits[0] - logits[1]).abs().clamp_min(1e-6)
            sign = torch.tensor([1.0, -1.0])  # sample 0 keeps attention, sample 1 keeps the MLP (or vice versa)
            head.weight.mul_((scale * sign)[:, None])
            head.bias.copy_(-logits.mean(0) * scale * sign)
    return model


@pytest.fixture(scope="module")
def icolorit_onnx(tmp_path_factory, x_parity):
    torch.manual_seed(0)
    model = create_model("icolorit-tiny", depth=2).eval()
    out = export_onnx(model, tmp_path_factory.mktemp("ic") / "icolorit.onnx")
    return model, out


@pytest.fixture(scope="module")
def mixed_acolvit(x_parity):
    torch.manual_seed(1)
    model = create_model("acolvit-tiny", depth=2).eval()
    return _mix_per_sample(model, x_parity[[3, 10]])  # two different photos with hints


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory, mixed_acolvit):
    return export_onnx(mixed_acolvit, tmp_path_factory.mktemp("dyn") / "acolvit.onnx", gating="dynamic")


# ----------------------------------------------------------------------------- iColoriT

@slow
def test_icolorit_graph_and_metadata(icolorit_onnx):
    model, path = icolorit_onnx
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    assert [i.name for i in m.graph.input] == ["x"] and [o.name for o in m.graph.output] == ["ab"]
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (m.graph.input[0], m.graph.output[0])]
    assert dims == [["N", 4, 224, 224], ["N", 2, 224, 224]]
    assert count_ops(m.graph, "If", recursive=True) == 0
    meta = read_meta(path)
    assert (meta.architecture, meta.precision, meta.gating) == ("icolorit", "fp32", "none")
    assert meta.config == model.cfg.to_dict()
    assert meta.source_sha256 == state_dict_sha256(model) and meta.extra["source_sha256_of"] == "state_dict"
    assert 0 <= meta.extra["parity_max_abs"] <= TOL


@slow
def test_icolorit_batch_parity(icolorit_onnx, x_parity):
    model, path = icolorit_onnx
    report = parity.compare(_ort(path), torch_reference(model), x_parity[:3], batch=3)
    assert report.ok and report.max_abs <= TOL


# ----------------------------------------------------------------------------- A-ColViT, dynamic

@slow
def test_dynamic_has_one_if_per_sublayer(dynamic_onnx, mixed_acolvit):
    m = onnx.load(str(dynamic_onnx))
    assert count_ops(m.graph, "If", recursive=False) == 2 * len(mixed_acolvit.blocks)
    assert [o.name for o in m.graph.output] == ["ab", "gates"]
    meta = read_meta(dynamic_onnx)
    assert meta.gating == "dynamic" and meta.static_gates is None
    assert "Where" in meta.extra["batch_semantics"]
    assert meta.extra["parity_max_abs"] <= TOL and meta.extra["parity_gate_mismatches"] == 0


@slow
def test_dynamic_batch_with_mixed_per_sample_decisions(dynamic_onnx, mixed_acolvit, x_parity):
    x2 = x_parity[[3, 10]]
    ab, gates = _ort(dynamic_onnx)(x2)
    ref_ab, ref_gates = torch_reference(mixed_acolvit)(x2)
    np.testing.assert_array_equal(gates, ref_gates)
    assert gates[:, 0].tolist() == [[True, False]] * 2  # block 0: same for both samples
    assert (gates[0, 1:] != gates[1, 1:]).all()  # later blocks: the two samples disagree everywhere
    assert np.abs(ab - ref_ab).max() <= TOL
    for i in range(2):  # each sample gets exactly what it gets alone, in ONNX Runtime and in PyTorch
        alone, g_alone = _ort(dynamic_onnx)(x2[i:i + 1])
        np.testing.assert_array_equal(g_alone[0], gates[i])
        assert np.abs(ab[i:i + 1] - alone).max() <= TOL
        assert np.abs(torch_reference(mixed_acolvit)(x2[i:i + 1])[0] - alone).max() <= TOL


# ----------------------------------------------------------------------------- A-ColViT, static

@slow
def test_static_given_mask_removes_sublayers(tmp_path, mixed_acolvit, x_parity):
    out = export_onnx(mixed_acolvit, tmp_path / "s.onnx", gating="static", static_gates="1001")
    m = onnx.load(str(out))
    assert count_ops(m.graph, "If", recursive=True) == 0
    assert count_ops(m.graph, "LayerNormalization") == 2 + 1  # 2 kept sub-layers + the final norm
    assert not [i for i in m.graph.initializer if "layer_select" in i.name]
    meta = read_meta(out)
    assert meta.gating == "static" and meta.static_gates == [[True, False], [False, True]]
    assert meta.extra["static_gates_from"] == "given"
    forced = torch_reference(mixed_acolvit, forced_gates=meta.static_gates)
    assert parity.compare(_ort(out), forced, x_parity[:4]).max_abs <= TOL


@slow
def test_static_majority_mask(tmp_path, x_parity):
    torch.manual_seed(3)
    model = create_model("acolvit-tiny", depth=2).eval()
    _set_gates(model, [[True, False], [False, True]])
    out = export_onnx(model, tmp_path / "s.onnx", gating="static")
    meta = read_meta(out)
    assert meta.static_gates == [[True, False], [False, True]]
    assert meta.extra["static_gates_agreement"] == 1.0 and "majority" in meta.extra["static_gates_from"]
    assert meta.extra["parity_max_abs"] <= TOL


# ----------------------------------------------------------------------------- failures

@slow
def test_failed_parity_leaves_no_file(tmp_path, monkeypatch, icolorit_onnx):
    from tinct.export import onnx_export

    model, good = icolorit_onnx
    monkeypatch.setattr(onnx_export, "to_onnx_proto", lambda *a, **k: onnx.load(str(good)))  # skip re-tracing
    real = ArtifactPredictor.__call__

    def off_by_a_bit(self, x):
        ab, gates = real(self, x)
        return ab + 1e-3, gates

    monkeypatch.setattr(ArtifactPredictor, "__call__", off_by_a_bit)
    with pytest.raises(TinctError, match="parity check failed"):
        export_onnx(model, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_no_photos_is_an_error_not_noise(tmp_path, monkeypatch):
    from tinct.verify import probes

    monkeypatch.setattr(probes, "FIXTURE_PHOTOS", tmp_path / "none")
    monkeypatch.setenv("TINCT_DATA", str(tmp_path / "nodata"))
    with pytest.raises(TinctError, match="no photos"):
        export_onnx(create_model("icolorit-tiny", depth=1), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_bad_arguments(tmp_path):
    ic = create_model("icolorit-tiny", depth=1)
    ac = create_model("acolvit-tiny", depth=1)
    with pytest.raises(TinctError, match="does not apply"):
        export_onnx(ic, tmp_path / "x.onnx", gating="dynamic", check=False)
    with pytest.raises(TinctError, match="opset"):
        export_onnx(ic, tmp_path / "x.onnx", opset=17, check=False)
    with pytest.raises(TinctError, match="2 characters"):
        export_onnx(ac, tmp_path / "x.onnx", gating="static", static_gates="101", check=False)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- CLI

def test_cli_help(capsys):
    from tinct.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["export", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for word in ("MODEL", "--gating", "--static-gates", "--opset", "--no-check", "Build Options"):
        assert word in text


def test_cli_imports_are_light():
    code = ("import sys, tinct.cli.main, tinct.cli.export; "
            "sys.exit(1 if 'torch' in sys.modules or 'onnx' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, env={**os.environ}).returncode == 0


@slow
def test_cli_export_checkpoint(tmp_path, capsys, x_parity):
    from tinct.cli.main import main
    from tinct.models.checkpoint import save_model
    from tinct.runtime.artifact import sha256_file

    torch.manual_seed(4)
    ckpt = save_model(create_model("acolvit-tiny", depth=1), tmp_path / "tiny-a.safetensors")
    out = tmp_path / "tiny.onnx"
    assert main(["export", str(ckpt), "-o", str(out), "--gating", "static", "--static-gates", "01"]) == 0
    assert "wrote" in capsys.readouterr().out
    meta = read_meta(out)
    assert meta.model == "tiny-a" and meta.source_sha256 == sha256_file(ckpt)
    assert meta.extra["source_sha256_of"] == "file" and meta.static_gates == [[False, True]]
    assert main(["export", str(ckpt), "-o", str(tmp_path / "y.onnx"), "--static-gates", "01"]) == 1
    assert "--gating static" in capsys.readouterr().err
    assert not (tmp_path / "y.onnx").exists()

