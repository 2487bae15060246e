"""Input a hostile or careless user gives (issue 15): bounded resources, one line and a non-zero exit,
never a traceback, never a silently wrong image. The shipped icolorit-tiny runs where a model is needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tinct.runtime.cli import main
from tinct.runtime.errors import MAX_THREADS

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "tests" / "fixtures" / "photos" / "horses_herd.jpg"
HINTS = ROOT / "tests" / "fixtures" / "demo_hints.json"


def _one_line_error(capsys, rc: int, want: str, code=(1, 2)) -> str:
    err = capsys.readouterr().err.strip()
    assert rc in code, err
    assert want in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("threads", ["-1", "100000", str(MAX_THREADS + 1), "two"])
def test_thread_counts_are_bounded(tmp_path, capsys, threads):
    with pytest.raises(SystemExit) as e:  # argparse: exit 2 before anything runs
        main(["colorize", str(PHOTO), "--hints", str(HINTS), "-o", str(tmp_path / "o.png"), "--threads", threads])
    _one_line_error(capsys, e.value.code, "--threads", code=(2,))
    assert not list(tmp_path.iterdir())


def test_bench_thread_list_is_bounded(capsys):
    rc = main(["bench", "latency", "--models", "icolorit-tiny", "--threads", "1,99999", "--rounds", "1"])
    _one_line_error(capsys, rc, "--threads 99999")


@pytest.mark.parametrize("content, want", [
    (b"\xff\xfe[{", "not UTF-8"),
    (("[{\"x\": 1" + "0" * 5000 + ", \"y\": 1, \"color\": \"#ffffff\"}]").encode(), "not valid JSON"),
    (b"[" * 100000, "not valid JSON"),
    (b" " * ((1 << 20) + 1), "larger than"),
])
def test_bad_hint_files(tmp_path, capsys, content, want):
    f = tmp_path / "h.json"
    f.write_bytes(content)
    rc = main(["colorize", str(PHOTO), "--hints", str(f), "-o", str(tmp_path / "o.png")])
    _one_line_error(capsys, rc, want)
    assert not (tmp_path / "o.png").exists()


def test_hints_from_a_device_are_refused(tmp_path, capsys):
    rc = main(["colorize", str(PHOTO), "--hints", "/dev/zero", "-o", str(tmp_path / "o.png")])
    _one_line_error(capsys, rc, "not a regular file")


def test_exemplar_model_without_reference(tmp_path, capsys):
    rc = main(["colorize", str(PHOTO), "--model", "color2embed-r18", "-o", str(tmp_path / "o.png")])
    _one_line_error(capsys, rc, "--reference")


def test_sixteen_bit_images_are_scaled_as_sixteen_bit(tmp_path, capsys):
    """A dark 16-bit photo stays dark (it came out ~257x too bright when its maximum was below 256)."""
    dark = tmp_path / "dark16.png"
    Image.fromarray(np.full((48, 64), 200, np.uint16)).save(dark)
    from tinct.runtime.image import load_image

    assert load_image(dark).max() <= 1
    rc = main(["colorize", str(dark), "-o", str(tmp_path / "o.png")])
    assert rc == 0, capsys.readouterr().err
    assert np.asarray(Image.open(tmp_path / "o.png")).max() <= 8


@pytest.mark.parametrize("mode, array", [("F", np.full((16, 16), 0.5, np.float32)),
                                         ("I", np.full((16, 16), 60000, np.int32))])
def test_thirty_two_bit_samples_are_refused_not_guessed(tmp_path, capsys, mode, array):
    f = tmp_path / "x.tif"
    Image.fromarray(array).save(f)
    assert Image.open(f).mode == mode
    rc = main(["colorize", str(f), "-o", str(tmp_path / "o.png")])
    _one_line_error(capsys, rc, "32-bit")
    assert not (tmp_path / "o.png").exists()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_hint_parser_fuzz(data):
    """Any bytes: a list of hints or a HintError, nothing else."""
    from tinct.runtime.hints import HintError, parse_user_hints

    try:
        hints = parse_user_hints(data, (640, 480))
    except HintError:
        return
    assert all(0 <= h.x < 640 and 0 <= h.y < 480 for h in hints)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                    max_leaves=20))
def test_hint_parser_fuzz_decoded_json(value):
    from tinct.runtime.hints import HintError, parse_user_hints

    try:
        parse_user_hints(value, (640, 480))
    except HintError:
        pass
