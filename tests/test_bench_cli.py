"""tinct bench accuracy / report / compare end to end on a tiny random model and 3 small photos."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinct.benchmarks import accuracy, datasets
from tinct.cli.main import main
from tinct.runtime.errors import TinctError
from tinct.runtime.hints import make_eval_hints, write_eval_hints

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")
pytest.importorskip("matplotlib")

PHOTOS = Path(__file__).parent.parent / "data" / "samples"
COUNTS = "0,2,10"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("imgs")
    photos = sorted(PHOTOS.glob("*.jpg"))[:3] if PHOTOS.is_dir() else []
    if len(photos) == 3:
        for p in photos:  # one non-224 size to exercise the resize
            shutil.copy(p, d / p.name)
        from PIL import Image
        Image.open(d / photos[0].name).resize((160, 120)).save(d / photos[0].name)
    else:
        from PIL import Image
        rng = np.random.default_rng(0)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(d / f"img{i}.png")
    return d


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tinct.models import create_model, save_model

    torch.manual_seed(0)
    model = create_model("icolorit-tiny", depth=1)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(model, path)
    return path


@pytest.fixture(scope="module")
def result(images, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    rc = main(["bench", "accuracy", "--model", str(tiny_model), "--images", str(images), "--hints", COUNTS,
               "--json", str(out / "acc.json"), "--csv", str(out / "acc.csv"), "--no-progress"])
    assert rc == 0
    return out


def test_accuracy_json_keys(result):
    res = json.loads((result / "acc.json").read_text())
    assert res["kind"] == "accuracy" and res["counts"] == [0, 2, 10]
    for m in ("psnr", "bpsnr", "pev", "ssim", "ciede2000"):
        assert set(res[m]) == {"0", "2", "10"}, m
        assert all(np.isfinite(v) for v in res[m].values())
    assert "lpips" not in res and "lpips" in res["metrics_skipped"]
    assert res["dataset"]["n_images"] == 3 and res["dataset"]["hints"] == "generated"
    assert res["artifact"]["kind"] == "pytorch"
    assert "cpu_count" in res["environment"]
    assert 5 < res["psnr"]["0"] < 50


def test_accuracy_csv(result):
    rows = list(csv.DictReader((result / "acc.csv").read_text().splitlines()))
    assert len(rows) == 3 * 3
    assert set(rows[0]) == {"image", "k", "psnr", "bpsnr", "pev", "ssim", "ciede2000"}
    res = json.loads((result / "acc.json").read_text())
    for k in ("0", "2", "10"):
        mean = np.mean([float(r["psnr"]) for r in rows if r["k"] == k])
        assert mean == pytest.approx(res["psnr"][k], abs=1e-5)


def test_accuracy_with_lpips(images, tiny_model, result, tmp_path, capsys):
    """--lpips vgg,alex adds both metrics per image and per k (the same PSNR as without); bad names refused."""
    pytest.importorskip("torch")
    out = tmp_path / "acc.json"
    assert main(["bench", "accuracy", "--model", str(tiny_model), "--images", str(images), "--hints", COUNTS,
                 "--lpips", "vgg,alex", "--json", str(out), "--csv", str(tmp_path / "acc.csv"), "--no-progress"]) == 0
    res, ref = json.loads(out.read_text()), json.loads((result / "acc.json").read_text())
    assert res["psnr"] == ref["psnr"] and not res["metrics_skipped"]
    assert set(res["lpips_config"]) == {"lpips", "lpips_alex"} and res["lpips_config"]["lpips"]["inputs"] == "[-1,1]"
    for m in ("lpips", "lpips_alex"):
        assert set(res[m]) == {"0", "2", "10"} and all(0 < v < 1 for v in res[m].values()), m
    rows = list(csv.DictReader((tmp_path / "acc.csv").read_text().splitlines()))
    assert {"lpips", "lpips_alex"} <= set(rows[0])
    assert "lpips" in capsys.readouterr().out
    assert main(["bench", "accuracy", "--model", str(tiny_model), "--images", str(images), "--lpips", "squeeze",
                 "--no-progress"]) == 2
    assert "--lpips 'squeeze'" in capsys.readouterr().err


def test_generated_hints_match_hint_dir(images, tiny_model, result, tmp_path):
    """Cached generated hints == official generator; reading them via --hint-dir gives the same numbers."""
    ds = datasets.open_dataset("folder", images)
    hints = make_eval_hints(ds.filenames)
    write_eval_hints(hints, tmp_path / "1234")  # the official <seed>/h2-n{N} layout
    predict, desc = accuracy.model_predictor(str(tiny_model))
    res = accuracy.run(predict, desc, ds, [0, 2, 10], hint_dir=tmp_path, progress=False)
    ref = json.loads((result / "acc.json").read_text())
    for k in ("0", "2", "10"):
        assert res["psnr"][k] == pytest.approx(ref["psnr"][k], abs=1e-9)


def test_limit_keeps_full_dataset_hints(images, tiny_model, tmp_path):
    ds = datasets.open_dataset("folder", images)
    coords, _ = accuracy.resolve_hints(ds, [10], cache_dir=tmp_path / "c")
    full = make_eval_hints(ds.filenames)[10]
    assert [list(map(tuple, c)) for c in coords[10]] == [full[s] for s in ds.stems]


def test_report_writes_md_and_html(result, tmp_path):
    lat = {"schema": "tinct.bench.latency/1", "kind": "latency", "environment": {"cpu": "test"},
           "results": [{"model": "acolvit-tiny", "backend": "onnxruntime", "precision": "fp32", "threads": 1,
                        "median_ms": 30.0, "iqr_ms": 0.5, "kept_ratio": 1.0},
                       {"model": "acolvit-tiny", "backend": "onnxruntime", "precision": "fp32", "threads": 1,
                        "median_ms": 12.0, "iqr_ms": 0.3, "kept_ratio": 0.3}]}
    (tmp_path / "lat.json").write_text(json.dumps(lat))
    rc = main(["bench", "report", str(result / "acc.json"), str(tmp_path / "lat.json"), "-o", str(tmp_path / "r")])
    assert rc == 0
    md = (tmp_path / "r" / "report.md").read_text()
    page = (tmp_path / "r" / "report.html").read_text()
    assert "paper: their weights and hardware" in md and "tinct: our weights and hardware" in md
    assert "28.86" in md  # iColoriT Table 1
    assert page.count("data:image/png;base64,") == 3
    assert "src='http" not in page and 'src="http' not in page
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert len(data["accuracy"]) == 1 and len(data["latency"]) == 2


def test_compare_cli(result, tmp_path, capsys):
    base = json.loads((result / "acc.json").read_text())
    assert main(["bench", "compare", str(result / "acc.json"), str(result / "acc.json")]) == 0
    worse = dict(base, psnr={k: v - 0.1 for k, v in base["psnr"].items()})
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    capsys.readouterr()
    assert main(["bench", "compare", str(result / "acc.json"), str(tmp_path / "worse.json"),
                 "--max-psnr-drop", "0.05"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "psnr@10" in out
    assert main(["bench", "compare", str(result / "acc.json"), str(tmp_path / "worse.json"),
                 "--max-psnr-drop", "0.2"]) == 0
    # bad input is exit 2, a regression exit 1: CI can tell them apart
    assert main(["bench", "compare", "a.json", "b.json", "--max-latency-increase", "ten"]) == 2


def test_dataset_errors(tmp_path):
    with pytest.raises(TinctError, match="no image files"):
        datasets.open_dataset("folder", tmp_path)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    ds = datasets.open_dataset("folder", tmp_path)
    with pytest.raises(TinctError, match="bad.png"):
        ds.load(0)
    with pytest.raises(TinctError, match="needs --images"):
        datasets.open_dataset("flowers", None)


def test_ctest10k_list_and_cub_layout(tmp_path):
    from PIL import Image

    img = Image.new("RGB", (8, 8), (10, 20, 30))
    (tmp_path / "val" / "n01").mkdir(parents=True)
    img.save(tmp_path / "val" / "n01" / "b.JPEG")
    img.save(tmp_path / "val" / "a.JPEG")
    (tmp_path / "list.txt").write_text("n01/b.JPEG\nn02/a.JPEG\n")  # second: basename found in the flat root
    ds = datasets.open_dataset("ctest10k", tmp_path / "val", tmp_path / "list.txt")
    assert ds.filenames == ["a.JPEG", "b.JPEG"]
    cub = tmp_path / "cub"
    (cub / "images" / "001.X").mkdir(parents=True)
    for n in ("p.jpg", "q.jpg"):
        img.save(cub / "images" / "001.X" / n)
    (cub / "images.txt").write_text("1 001.X/p.jpg\n2 001.X/q.jpg\n")
    (cub / "train_test_split.txt").write_text("1 1\n2 0\n")
    assert datasets.open_dataset("cub", cub).filenames == ["q.jpg"]


def test_tinct_val_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("TINCT_DATA", str(tmp_path / "nothing"))
    with pytest.raises(TinctError, match="tinct data fetch"):
        datasets.open_dataset("tinct-val", None)


def test_engine_path_uses_backend_interface(images, tiny_model, result, tmp_path, monkeypatch):
    """--engine goes through runtime.backends.open_backend(path).infer({"x": x})["ab"]."""
    from tinct.benchmarks import accuracy
    from tinct.models import load_model

    model = load_model(str(tiny_model))
    opened = {}

    class FakeBackend:
        input_names, output_names = ["x"], ["ab"]
        buf = np.zeros((16, 2, 224, 224), np.float32)

        def infer(self, inputs):
            with torch.no_grad():
                ab = model(torch.from_numpy(inputs["x"])).numpy()
            self.buf[:len(ab)] = ab  # reused output buffer, as real backends may do
            return {"ab": self.buf[:len(ab)]}

        def describe(self):
            return {"backend": "fake", "precision": "fp32", "threads": 1}

    def fake_open(path, **opts):
        opened.update(path=path, **opts)
        return FakeBackend()

    monkeypatch.setattr(accuracy, "open_backend", fake_open)
    artifact = tmp_path / "tiny.onnx"
    artifact.write_bytes(b"")
    rc = main(["bench", "accuracy", "--engine", str(artifact), "--threads", "1", "--images", str(images),
               "--hints", COUNTS, "--json", str(tmp_path / "e.json"), "--no-progress", "--batch", "2"])
    assert rc == 0
    assert opened == {"path": str(artifact), "threads": 1}
    res = json.loads((tmp_path / "e.json").read_text())
    ref = json.loads((result / "acc.json").read_text())
    assert res["artifact"]["backend"] == "fake" and res["artifact"]["kind"] == "engine"
    for k in ("0", "2", "10"):
        assert res["psnr"][k] == pytest.approx(ref["psnr"][k], abs=1e-4)


def test_exclude_and_limit(images, tiny_model, tmp_path):
    ds = datasets.open_dataset("folder", images)
    (tmp_path / "gray.txt").write_text(f"some/dir/{ds.filenames[0]}\n")
    predict, desc = accuracy.model_predictor(str(tiny_model))
    res = accuracy.run(predict, desc, ds, [1], hint_cache=tmp_path / "h", limit=1, progress=False,
                       exclude=datasets.read_exclude_list(tmp_path / "gray.txt"),
                       csv_out=tmp_path / "x.csv")
    assert res["dataset"]["n_images"] == 1 and res["dataset"]["n_excluded"] == 1
    rows = list(csv.DictReader((tmp_path / "x.csv").read_text().splitlines()))
    assert [r["image"] for r in rows] == [ds.stems[1]]
