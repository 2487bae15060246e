"""`tinct bench soak` and `tinct bench load`: small runs that check the records and the gates (docs/reliability.md's
figures come from the full-size runs: 10,000 updates per backend; 8 sessions x 50 updates)."""

from __future__ import annotations

import json

import pytest

from tinct.cli.main import main


def test_soak_records_rss_and_drift_per_backend_and_sharing(tmp_path, capsys):
    out = tmp_path / "soak.json"
    rc = main(["bench", "soak", "--backends", "onnxruntime", "--sharing", "1,2", "--updates", "40", "--warmup", "3",
               "--window", "10", "--rss-every", "5", "--size", "320x240", "--max-drift", "1000",
               "--max-rss-growth", "1000", "--no-progress", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["kind"] == "soak" and doc["environment"]["cpu"]
    r1, r2 = doc["results"]
    assert (r1["sharing"], r2["sharing"]) == (1, 2) and r1["updates"] == r2["updates"] == 40
    for r in (r1, r2):
        assert r["backend"] == "onnxruntime" and r["gate"] == "pass" and r["image_size"] == [320, 240]
        assert r["latency"]["median_ms"] > 0 and r["first_window_median_ms"] > 0 and r["window"] == 10
        assert r["rss_baseline_mb"] > 50 and len(r["rss_samples"]) >= 8
    assert "| onnxruntime fp32 | 2 | 40 |" in capsys.readouterr().out


def test_soak_gate_fails_with_exit_1_and_bad_input_with_exit_2(tmp_path, capsys):
    rc = main(["bench", "soak", "--backends", "onnxruntime", "--sharing", "1", "--updates", "10", "--warmup", "1",
               "--window", "3", "--size", "64x48", "--max-rss-growth", "-1", "--no-progress"])
    assert rc == 1 and "RSS grew" in capsys.readouterr().err
    for bad, want in ((["--sharing", "0"], "--sharing 0"), (["--updates", "0"], "--updates 0"),
                      (["--size", "10x10"], "16..8192"), (["--backends", "cuda"], "cuda"),
                      (["--engine", str(tmp_path / "none.onnx")], "no such file")):
        rc = main(["bench", "soak", "--no-progress", *bad])
        err = capsys.readouterr().err
        assert rc == 2 and want in err and err.count("\n") == 1, (bad, err)


def test_load_runs_concurrent_sessions_against_a_real_server(tmp_path, capsys):
    pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
    pytest.importorskip("httpx", reason="the 'bench' extra is not installed")
    out = tmp_path / "load.json"
    rc = main(["bench", "load", "--sessions", "3", "--updates", "4", "--size", "320x240", "--json", str(out),
               "--timeout", "240"])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out.read_text())["results"][0]
    assert r["errors"] == 0 and r["updates_ok"] == 12 and r["sessions_left"] == 0
    assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["max_ms"] and r["rss_before_mb"] > 0 and r["rss_after_mb"] > 0
    assert main(["bench", "load", "--sessions", "65"]) == 2
    assert "--sessions 65" in capsys.readouterr().err


