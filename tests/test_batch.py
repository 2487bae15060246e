"""`tinct batch`: plan, in-process run, resume, failures with reasons, CSV with PSNR; the Ray Data pipeline
on a local 2-CPU Ray gives the same pixels (skipped with the reason where the 'ray' extra is absent)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinct.cli.main import main
from tinct.runtime.errors import InputError
from tinct.serve import batch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PHOTOS = sorted((FIXTURES.parent.parent / "data" / "samples").glob("*.jpg"))
MODEL = Path(__file__).resolve().parent.parent / "weights" / "icolorit-tiny.onnx"


@pytest.fixture
def folder(tmp_path):
    """The four fixture photos, hints for three (their own colours at 5 points) and an empty list for one."""
    src, hints = tmp_path / "in", tmp_path / "hints"
    src.mkdir()
    hints.mkdir()
    for p in PHOTOS:
        shutil.copy(p, src / p.name)
    rng = np.random.default_rng(0)
    for p in PHOTOS[:3]:
        im = np.asarray(Image.open(p).convert("RGB"))  # real hints: the photo's own colours at 5 points
        pts = [(int(rng.integers(0, im.shape[1])), int(rng.integers(0, im.shape[0]))) for _ in range(5)]
        hints_json = [{"x": x, "y": y, "color": "#%02x%02x%02x" % tuple(int(v) for v in im[y, x])} for x, y in pts]
        (hints / f"{p.stem}.json").write_text(json.dumps(hints_json))
    (hints / f"{PHOTOS[3].stem}.json").write_text("[]")
    return tmp_path


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def test_plan_maps_hints_outputs_and_truth(folder):
    p = batch.plan(folder / "in", folder / "out", hints_dir=folder / "hints", ground_truth=folder / "in")
    assert [r["name"] for r in p.todo] == [x.name for x in PHOTOS] and not p.done
    r = p.todo[0]
    assert r["out"] == str(folder / "out" / f"{PHOTOS[0].stem}.png")
    assert r["hints"] == str(folder / "hints" / f"{PHOTOS[0].stem}.json") and r["truth"] == str(folder / "in" / PHOTOS[0].name)
    with pytest.raises(InputError, match="does not exist or is not a folder"):
        batch.plan(folder / "nope", folder / "out")
    with pytest.raises(InputError, match="must not be the input folder"):
        batch.plan(folder / "in", folder / "in")
    (folder / "empty").mkdir()
    with pytest.raises(InputError, match="no images in"):
        batch.plan(folder / "empty", folder / "out")
    shutil.copy(PHOTOS[0], folder / "in" / f"{PHOTOS[0].stem}.png")
    with pytest.raises(InputError, match="would both write"):
        batch.plan(folder / "in", folder / "out")


def test_in_process_run_equals_colorize_resumes_and_reports(folder, capsys):
    """Pixels equal `tinct colorize` (same engine, same hints); a second run skips everything and keeps the CSV
    complete; a corrupt image and a bad hints file fail with one line each while the others finish."""
    (folder / "in" / "broken.jpg").write_bytes(PHOTOS[0].read_bytes()[:1500])
    (folder / "hints" / "broken.json").write_text("[]")
    (folder / "hints" / f"{PHOTOS[2].stem}.json").write_text("{not json")
    args = ["batch", str(folder / "in"), "-o", str(folder / "out"), "--hints-dir", str(folder / "hints"),
            "--engine", str(MODEL), "--threads", "1", "--ground-truth", str(folder / "in"),
            "--csv", str(folder / "r.csv"), "--no-progress"]
    assert main(args) == 1  # some failed
    out = capsys.readouterr().out
    assert "3 colorized, 0 already done, 2 failed" in out
    assert "failed: broken.jpg: broken.jpg: corrupt or truncated image" in out
    assert f"failed: {PHOTOS[2].name}: " in out and "not valid JSON" in out
    rows = {r["name"]: r for r in csv.DictReader((folder / "r.csv").open())}
    assert rows["broken.jpg"]["status"] == "failed" and rows["broken.jpg"]["output"] == ""
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert len(ok) == 3
    from skimage.metrics import peak_signal_noise_ratio  # an independent PSNR

    for r in ok:
        out_px, gt = np.asarray(Image.open(r["output"])), np.asarray(Image.open(folder / "in" / r["name"]).convert("RGB"))
        assert float(r["psnr"]) == pytest.approx(peak_signal_noise_ratio(gt, out_px, data_range=255), abs=1e-3)
    for p in (PHOTOS[0], PHOTOS[3]):  # the CLI's one-shot pixels
        single = folder / f"single-{p.stem}.png"
        assert main(["colorize", str(p), "--hints", str(folder / "hints" / f"{p.stem}.json"), "--engine", str(MODEL),
                     "--threads", "1", "-o", str(single)]) == 0
        assert np.array_equal(np.asarray(Image.open(single)), np.asarray(Image.open(folder / "out" / f"{p.stem}.png")))
    before = {p.name: p.stat().st_mtime_ns for p in (folder / "out").glob("*.png")}
    capsys.readouterr()
    (folder / "hints" / f"{PHOTOS[2].stem}.json").write_text("[]")  # fixed: only it runs again
    assert main(args) == 1  # broken.jpg still fails
    out = capsys.readouterr().out
    assert "1 colorized, 3 already done, 1 failed" in out
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "out").glob("*.png") if p.name in before} == before
    rows = {r["name"]: r for r in csv.DictReader((folder / "r.csv").open())}
    assert [rows[p.name]["status"] for p in PHOTOS] == ["skipped", "skipped", "ok", "skipped"]
    assert all(rows[p.name]["psnr"] for p in PHOTOS)  # resumed rows measured too
    assert not [p for p in (folder / "out").iterdir() if p.name.startswith(".")]  # no temporary files


def test_cli_refuses_bad_arguments(folder, capsys):
    base = ["batch", str(folder / "in"), "-o", str(folder / "out"), "--engine", str(MODEL)]
    assert main(base + ["--limit", "0"]) == 2
    assert "--limit 0 must be at least 1" in capsys.readouterr().err
    assert main(base + ["--workers", "2"]) == 2
    assert "--workers applies to --ray" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--ray", "local", "--workers", "100000"])
    assert "out of range (1..256)" in capsys.readouterr().err
    assert main(base + ["--reference", str(folder / "nope.jpg")]) == 2
    assert "reference" in capsys.readouterr().err
    assert not (folder / "out").exists()  # nothing written before the arguments were checked
