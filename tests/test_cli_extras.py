"""A runtime-only install (no torch): every command is listed, and torch commands name their extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK_TORCH = "import sys; sys.modules['torch'] = None\nfrom tinct.cli.main import main\n"


def run_cli(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    code = BLOCK_TORCH + f"raise SystemExit(main({args!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)


def test_help_lists_every_command_without_torch(tmp_path):
    r = run_cli(["--help"], tmp_path)
    assert r.returncode == 0, r.stderr
    for cmd in ("colorize", "info", "build", "doctor", "export", "data", "train", "ship", "quantize", "bench"):
        assert f"    {cmd}" in r.stdout, cmd


@pytest.mark.parametrize("args, extra", [
    (["export", "icolorit-tiny", "-o", "x.onnx"], "export"),
    (["train", "-o", "run"], "train"),
])
def test_torch_commands_name_their_extra(tmp_path, args, extra):
    r = run_cli(args, tmp_path)
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'tinct[{extra}]'" in lines[0], r.stderr
    assert not (tmp_path / "x.onnx").exists()
