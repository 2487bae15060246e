"""The round-trip benchmark of the page (``python -m tinct.benchmarks.serve_rtt``, issue 30's before/after check)
still drives today's page. Its own module: it runs Playwright itself, which cannot share a process with a module
that holds a browser open."""

from __future__ import annotations

import json

import pytest
from test_browser import CHROMIUM, _require

pytestmark = pytest.mark.slow


def test_the_round_trip_benchmark_still_drives_the_page(tmp_path):
    """`python -m tinct.benchmarks.serve_rtt` (the issue's before/after measurement) runs against today's page:
    two clicks, four updates, both sides measured (its ratio is a measurement, not checked here)."""
    import importlib.util

    _require(importlib.util.find_spec("playwright") is not None, "Playwright is not installed")
    _require(CHROMIUM is not None, "no chromium on PATH")
    from tinct.benchmarks import serve_rtt

    out = tmp_path / "rtt.json"
    rc = serve_rtt.main(["--size", "640x360", "--clicks", "2", "--chromium", CHROMIUM, "--json", str(out)])
    doc = json.loads(out.read_text())
    assert rc == (0 if doc["ratio"] <= 1.5 else 1)
    assert doc["browser"]["runs"] >= 3 and doc["in_process"]["runs"] == 4 and doc["via"] == "websocket"
