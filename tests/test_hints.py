"""The hint protocol (runtime/hints.py): encoding, simulators, hint files, user hints."""

from __future__ import annotations

import json
import math
import os
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinct.runtime import hints as H
from tinct.runtime.color import rgb_to_lab
from tinct.runtime.errors import TinctError

# ----------------------------------------------------------------------------- encoding

def _random_inputs(n=2, seed=0):
    rng = np.random.default_rng(seed)
    l_n = rng.uniform(-0.5, 0.5, (n, 224, 224)).astype(np.float32)
    ab = rng.uniform(-1, 1, (n, 112, 112, 2)).astype(np.float32)
    mask = rng.random((n, 112, 112)) < 0.1
    return l_n, ab, mask


def test_constants():
    assert (H.IMG_SIZE, H.HINT_SIZE, H.GRID) == (224, 2, 112)
    assert H.EVAL_HINT_COUNTS == (0, 1, 2, 5, 10, 20, 50, 100, 200)
    assert H.EVAL_SEED == 1234 and H.TRAIN_MAX_HINTS == 128
    assert issubclass(H.HintError, TinctError)


def test_encode_layout():
    l_n, ab, mask = _random_inputs()
    x = H.encode(l_n, ab, mask)
    assert x.shape == (2, 4, 224, 224) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 0], l_n)
    m = mask.astype(np.float32)
    up = np.ones((2, 2), dtype=np.float32)
    for i in range(2):
        # nearest upsampling written independently as a Kronecker product with a 2x2 block
        np.testing.assert_array_equal(x[i, 1], np.kron(ab[i, ..., 0] * m[i], up))
        np.testing.assert_array_equal(x[i, 2], np.kron(ab[i, ..., 1] * m[i], up))
        np.testing.assert_array_equal(x[i, 3], np.kron(m[i], up))
    # spot check one hinted cell pixel by pixel
    i, r, c = np.argwhere(mask)[0]
    for dr in (0, 1):
        for dc in (0, 1):
            assert x[i, 3, 2 * r + dr, 2 * c + dc] == 1.0
            assert x[i, 1, 2 * r + dr, 2 * c + dc] == ab[i, r, c, 0]
            assert x[i, 2, 2 * r + dr, 2 * c + dc] == ab[i, r, c, 1]
    # unhinted pixels carry no colour
    assert not x[:, 1:3][np.broadcast_to(x[:, 3:4] == 0, x[:, 1:3].shape)].any()


def test_encode_into_preallocated_out():
    l_n, ab, mask = _random_inputs(seed=1)
    out = np.full((2, 4, 224, 224), np.nan, dtype=np.float32)
    res = H.encode(l_n, ab, mask, out=out)
    assert res is out
    np.testing.assert_array_equal(out, H.encode(l_n, ab, mask))
    # reuse with different hints overwrites everything (no stale hints)
    l2, ab2, mask2 = _random_inputs(seed=2)
    H.encode(l2, ab2, mask2, out=out)
    np.testing.assert_array_equal(out, H.encode(l2, ab2, mask2))


def test_cell_colour_is_2x2_mean():
    rng = np.random.default_rng(3)
    lab_n = rng.uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    mask = np.zeros((2, 112, 112), dtype=bool)
    mask[0, 7, 100] = mask[1, 111, 0] = mask[1, 0, 111] = True
    x = H.encode_from_lab(lab_n, mask)
    for i, r, c in np.argwhere(mask):
        block = lab_n[i, 2 * r:2 * r + 2, 2 * c:2 * c + 2, 1:]
        mean = (block[0, 0] + block[0, 1] + block[1, 0] + block[1, 1]) / 4
        np.testing.assert_allclose(x[i, 1:3, 2 * r, 2 * c], mean, atol=1e-6)
        np.testing.assert_allclose(x[i, 1:3, 2 * r + 1, 2 * c + 1], mean, atol=1e-6)
    np.testing.assert_array_equal(x[:, 0], lab_n[..., 0])
    assert x[:, 3].sum() == 4 * mask.sum()
    cm = H.cell_mean_ab(lab_n[..., 1:])
    assert cm.shape == (2, 112, 112, 2)
    np.testing.assert_allclose(cm[0, 5, 6], lab_n[0, 10:12, 12:14, 1:].mean(axis=(0, 1)), atol=1e-6)


# ----------------------------------------------------------------------------- training simulator

def test_training_masks_counts_and_distinct_cells():
    rng = np.random.default_rng(0)
    masks = H.sample_training_masks(rng, 64)
    assert masks.shape == (64, 112, 112) and masks.dtype == bool
    counts = masks.sum(axis=(1, 2))
    assert counts.min() >= 0 and counts.max() <= 128
    # with a fixed count, exactly that many cells are set: the cells are distinct
    full = H.sample_training_masks(np.random.default_rng(1), 32, max_hints=128, min_hints=128)
    assert (full.sum(axis=(1, 2)) == 128).all()


def test_training_masks_both_ends_reachable():
    rng = np.random.default_rng(5)
    counts = np.concatenate([H.sample_training_masks(rng, 500).sum(axis=(1, 2)) for _ in range(6)])
    assert counts.min() == 0 and counts.max() == 128  # P(miss an end) ~ e^-23 each
    small = H.sample_training_masks(np.random.default_rng(6), 300, max_hints=3).sum(axis=(1, 2))
    assert set(small.tolist()) == {0, 1, 2, 3}


def test_training_masks_deterministic_for_seed():
    a = H.sample_training_masks(np.random.default_rng(42), 8)
    b = H.sample_training_masks(np.random.default_rng(42), 8)
    c = H.sample_training_masks(np.random.default_rng(43), 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ----------------------------------------------------------------------------- evaluation hints

FILES = ["zebra.png", "apple.JPEG", "b10.jpg", "b2.jpg", "Cat.png", "a.b.png"]


def _official_make_mask_restated(files, seed=1234, img_size=224, hint_size=2):
    """make_mask.py re-stated: module-level `random`, seeded once; files in sorted order."""
    saved = random.getstate()
    try:
        random.seed(seed)
        out = {}
        for num_hint in [0, 1, 2, 5, 10, 20, 50, 100, 200]:
            out[num_hint] = {}
            for f in sorted(files):
                lines = [f"{random.randint(0, img_size // hint_size - 1) * hint_size} "
                         f"{random.randint(0, img_size // hint_size - 1) * hint_size}\n"
                         for _ in range(num_hint)]
                out[num_hint][os.path.splitext(f)[0]] = "".join(lines)
        return out
    finally:
        random.setstate(saved)


def test_eval_hints_reproduce_official_algorithm():
    ours = H.make_eval_hints(FILES)
    ref = _official_make_mask_restated(FILES)
    assert sorted(ours) == sorted(ref)
    for n in ref:
        assert sorted(ours[n]) == sorted(ref[n])
        for stem, text in ref[n].items():
            coords = ours[n][stem]
            assert len(coords) == n
            assert "".join(f"{x} {y}\n" for x, y in coords) == text
    # values are even and inside the image
    allc = np.array([c for per in ours.values() for cs in per.values() for c in cs])
    assert allc.min() >= 0 and allc.max() <= 222 and (allc % 2 == 0).all()


def test_eval_hints_do_not_touch_global_random():
    random.seed(7)
    before = random.random()
    random.seed(7)
    H.make_eval_hints(FILES[:2])
    assert random.random() == before


def test_write_read_round_trip(tmp_path):
    hints = H.make_eval_hints(FILES, counts=(0, 1, 10, 200))
    H.write_eval_hints(hints, tmp_path)
    for n, per in hints.items():
        for stem, coords in per.items():
            p = tmp_path / f"h2-n{n}" / f"{stem}.txt"
            assert p.is_file()
            assert H.find_hint_file(tmp_path, n, stem) == p
            got = H.read_hint_file(p)
            assert got.shape == (n, 2) and got.dtype == np.int64
            assert got.tolist() == [list(c) for c in coords]


def test_official_seed_layout(tmp_path):
    # official make_mask.py writes <hint_dir>/<seed>/h2-n{N}/<stem>.txt
    ref = _official_make_mask_restated(FILES)
    for n in (0, 5):
        for stem, text in ref[n].items():
            d = tmp_path / "1234" / f"h2-n{n}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{stem}.txt").write_text(text)
    ours = H.make_eval_hints(FILES)
    for n in (0, 5):
        for stem in ref[n]:
            p = H.find_hint_file(tmp_path, n, stem)
            assert p == tmp_path / "1234" / f"h2-n{n}" / f"{stem}.txt"
            assert H.read_hint_file(p).tolist() == [list(c) for c in ours[n][stem]]
    with pytest.raises(H.HintError, match="no hint file"):
        H.find_hint_file(tmp_path, 10, "zebra")
    with pytest.raises(H.HintError, match="no hint file"):
        H.find_hint_file(tmp_path, 5, "zebra", seed=99)


def test_mask_from_coords_x_is_row():
    mask = H.mask_from_coords(np.array([[10, 200], [10, 200], [223, 0]]))
    assert mask.shape == (112, 112) and mask.dtype == bool
    assert mask[5, 100] and not mask[100, 5]
    assert mask[111, 0] and not mask[0, 111]
    assert mask.sum() == 2  # repeats collapse
    assert H.mask_from_coords(np.zeros((0, 2))).sum() == 0


@pytest.mark.parametrize("text", ["1 2 3\n", "a b\n", "7\n", "1.5 2\n", "-2 4\n", "224 0\n", "0 224\n",
                                  "4 4\n1,2\n"])
def test_malformed_hint_files(tmp_path, text):
    p = tmp_path / "x.txt"
    p.write_text(text)
    with pytest.raises(H.HintError, match="x.txt"):
        H.read_hint_file(p)


def test_hint_file_tolerates_blank_lines_and_spaces(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("4 6\n\n  10   12  \n")
    assert H.read_hint_file(p).tolist() == [[4, 6], [10, 12]]
    p.write_text("")
    assert H.read_hint_file(p).shape == (0, 2)


# ----------------------------------------------------------------------------- user hints

def test_user_hints_valid():
    text = json.dumps([{"x": 0, "y": 0, "color": "#ff0000"}, {"x": 639, "y": 479, "color": [0, 128, 255]},
                       {"x": 3.0, "y": 2, "color": "#A0b0C0"}])
    got = H.parse_user_hints(text, (640, 480))
    assert got == [H.UserHint(0, 0, (255, 0, 0)), H.UserHint(639, 479, (0, 128, 255)),
                   H.UserHint(3, 2, (160, 176, 192))]
    assert H.parse_user_hints(text.encode(), (640, 480)) == got
    assert H.parse_user_hints({"hints": json.loads(text)}, (640, 480)) == got
    assert H.parse_user_hints("[]", (1, 1)) == []
    assert got[1].to_json() == {"x": 639, "y": 479, "color": "#0080ff"}


def test_load_user_hints(tmp_path):
    p = tmp_path / "h.json"
    p.write_text('[{"x": 1, "y": 2, "color": "#010203"}]')
    assert H.load_user_hints(p, (4, 4)) == [H.UserHint(1, 2, (1, 2, 3))]
    with pytest.raises(H.HintError, match="cannot read"):
        H.load_user_hints(tmp_path / "missing.json", (4, 4))


def _hint(**kw):
    return {"x": 1, "y": 1, "color": "#102030", **kw}


BAD = [
    ([_hint(x=640)], "outside the image"),
    ([_hint(y=480)], "outside the image"),
    ([_hint(x=-1)], "outside the image"),
    ([_hint(color="#ff00")], "#rrggbb"),
    ([_hint(color="red")], "#rrggbb"),
    ([_hint(color="#gg0000")], "#rrggbb"),
    ([_hint(color=[1, 2])], "3 components"),
    ([_hint(color=[1, 2, 256])], "0..255"),
    ([_hint(color=[1, 2, 3.5])], "0..255"),
    ([_hint(color=[1, "2", 3])], "not a number"),
    ([_hint(color=[1, True, 3])], "not a number"),
    ([_hint(color=17)], "colour must be"),
    ([_hint(color=[float("nan"), 0, 0])], "not finite"),
    ([_hint(color=[0, float("inf"), 0])], "not finite"),
    ([_hint(x=float("nan"))], "not finite"),
    ([_hint(y=float("-inf"))], "not finite"),
    ([_hint(x=1.5)], "whole pixel"),
    ([_hint(x="3")], "must be a number"),
    ([_hint(x=True)], "must be a number"),
    ([_hint(x=None)], "must be a number"),
    ([_hint(), _hint(color="#000000")], "duplicate"),
    ([_hint(x=i) for i in range(5)], "too many"),
    ([{"x": 1, "y": 1}], "missing color"),
    ([{"color": "#000000"}], "missing x, y"),
    ([_hint(z=3)], "unknown field"),
    ([_hint(size=0)], "outside 1..16"),
    ([_hint(size=17)], "outside 1..16"),
    ([_hint(size=2.5)], "whole number of cells"),
    ([_hint(size="3")], "whole number of cells"),
    ([_hint(size=True)], "whole number of cells"),
    ([_hint(size=float("nan"))], "whole number of cells"),
    ([[1, 1, "#000000"]], "expected an object"),
    ({"x": 1, "y": 1, "color": "#000000"}, "must be a JSON list"),
    ("not json", "not valid JSON"),
    ('[{"x": 1, "y": 1, "color": "#000000"}', "not valid JSON"),
    (b"\xff\xfe\x00", "not valid JSON"),
    ('[{"x": NaN, "y": 1, "color": "#000000"}]', "not finite"),
    ('[{"x": 1, "y": Infinity, "color": "#000000"}]', "not finite"),
    ("42", "must be a JSON list"),
]


@pytest.mark.parametrize("data,message", BAD, ids=[m + f"-{i}" for i, (_, m) in enumerate(BAD)])
def test_user_hint_problems_are_named(data, message):
    with pytest.raises(H.HintError, match=message):
        H.parse_user_hints(data, (640, 480), max_hints=4)


def test_deeply_nested_json_is_a_hint_error():
    # json.loads raises RecursionError on deep nesting; it must still be a HintError
    with pytest.raises(H.HintError, match="not valid JSON"):
        H.parse_user_hints("[" * 100_000 + "]" * 100_000, (8, 8))


def test_non_string_keys_in_decoded_object():
    with pytest.raises(H.HintError, match="unknown field"):
        H.parse_user_hints([{"x": 1, "y": 1, "color": "#000000", 1: 2, "a": 3}], (8, 8))


def test_user_hint_error_names_the_index():
    with pytest.raises(H.HintError, match="hint 2"):
        H.parse_user_hints([_hint(x=0), _hint(x=1), _hint(x=2, color="#zz0000")], (8, 8))


@st.composite
def _valid_hints(draw):
    w = draw(st.integers(1, 4000))
    h = draw(st.integers(1, 4000))
    pos = draw(st.lists(st.tuples(st.integers(0, w - 1), st.integers(0, h - 1)), unique=True, max_size=20))
    cols = draw(st.lists(st.tuples(*[st.integers(0, 255)] * 3), min_size=len(pos), max_size=len(pos)))
    as_list = draw(st.lists(st.booleans(), min_size=len(pos), max_size=len(pos)))
    sizes = draw(st.lists(st.integers(1, H.MAX_HINT_SIZE), min_size=len(pos), max_size=len(pos)))
    return (w, h), [H.UserHint(x, y, c, s) for (x, y), c, s in zip(pos, cols, sizes)], as_list


@settings(max_examples=200, deadline=None)
@given(_valid_hints())
def test_valid_hints_round_trip(case):
    size, hints, as_list = case
    items = []
    for h, lst in zip(hints, as_list):
        j = h.to_json()
        if lst:
            j["color"] = list(h.rgb)
        items.append(j)
    assert H.parse_user_hints(json.dumps(items), size) == hints


def test_user_hints_to_cells_non_square():
    w, h = 640, 480
    red, blue = (255, 0, 0), (0, 0, 255)
    hints = [H.UserHint(0, 0, red), H.UserHint(1, 0, blue),  # same cell (0, 0)
             H.UserHint(w - 1, 0, (0, 255, 0)),  # top-right: row 0, last column
             H.UserHint(0, h - 1, (255, 255, 0)),  # bottom-left: last row, column 0
             H.UserHint(w - 1, h - 1, (0, 255, 255))]
    ab, mask = H.user_hints_to_cells(hints, (w, h))
    assert ab.shape == (112, 112, 2) and ab.dtype == np.float32
    assert mask.shape == (112, 112) and mask.dtype == bool
    assert mask.sum() == 4
    assert mask[0, 0] and mask[0, 111] and mask[111, 0] and mask[111, 111]

    def ab_of(rgb):
        return rgb_to_lab(np.array(rgb, dtype=np.uint8))[1:] / 110.0

    np.testing.assert_allclose(ab[0, 0], (ab_of(red) + ab_of(blue)) / 2, atol=1e-6)
    np.testing.assert_allclose(ab[0, 111], ab_of((0, 255, 0)), atol=1e-6)
    np.testing.assert_allclose(ab[111, 0], ab_of((255, 255, 0)), atol=1e-6)
    np.testing.assert_allclose(ab[111, 111], ab_of((0, 255, 255)), atol=1e-6)
    assert not ab[~mask].any()
    # middle of the image -> middle cells; x is the column
    _, m2 = H.user_hints_to_cells([H.UserHint(w // 4, h // 2, red)], (w, h))
    (r, c), = np.argwhere(m2)
    assert r == 56 and c == 28
    e_ab, e_mask = H.user_hints_to_cells([], (w, h))
    assert not e_mask.any() and not e_ab.any()
    assert not math.isnan(float(ab.sum()))


def test_hint_size_default_is_the_one_cell_hint_and_stays_out_of_the_file():
    got = H.parse_user_hints([{"x": 5, "y": 6, "color": "#102030", "size": 1}, {"x": 7, "y": 6, "color": "#102030"},
                              {"x": 9, "y": 6, "color": "#102030", "size": 3.0}], (64, 64))
    assert [h.size for h in got] == [1, 1, 3]
    assert got[0].to_json() == {"x": 5, "y": 6, "color": "#102030"}  # files without brushes read and write as before
    assert got[2].to_json() == {"x": 9, "y": 6, "color": "#102030", "size": 3}


def _patch_reference(hints, w, h):
    """Independent statement of the brush: for every cell of the grid, the hints whose square covers it."""
    ab = np.zeros((112, 112, 2), np.float64)
    n = np.zeros((112, 112))
    for hint in hints:
        r = min(int((hint.y + 0.5) * 224 / h) // 2, 111)
        c = min(int((hint.x + 0.5) * 224 / w) // 2, 111)
        lo, hi = -((hint.size - 1) // 2), hint.size // 2
        v = rgb_to_lab(np.array(hint.rgb, dtype=np.uint8))[1:] / 110.0
        for dr in range(lo, hi + 1):
            for dc in range(lo, hi + 1):
                if 0 <= r + dr < 112 and 0 <= c + dc < 112:
                    ab[r + dr, c + dc] += v
                    n[r + dr, c + dc] += 1
    mask = n > 0
    ab[mask] /= n[mask][:, None]
    return ab, mask


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 16])
def test_hint_size_paints_a_square_of_cells(size):
    w, h = 900, 600
    hints = [H.UserHint(450, 300, (200, 40, 40), size),  # centre
             H.UserHint(0, 0, (40, 40, 200), size),  # clipped at the top-left corner
             H.UserHint(899, 599, (40, 200, 40), size),  # clipped at the bottom-right
             H.UserHint(455, 304, (240, 220, 40), 1)]  # overlaps the first: averaged where both cover
    ab, mask = H.user_hints_to_cells(hints, (w, h))
    ref_ab, ref_mask = _patch_reference(hints, w, h)
    assert (mask == ref_mask).all()
    assert np.abs(ab - ref_ab).max() < 1e-6
    centre = hints[0]
    r, c = int((centre.y + 0.5) * 224 / h) // 2, int((centre.x + 0.5) * 224 / w) // 2
    assert mask[r - (size - 1) // 2: r + size // 2 + 1, c - (size - 1) // 2: c + size // 2 + 1].all()
    assert mask.sum() == ref_mask.sum() and (size == 1 or mask.sum() > 4)


def test_hint_size_one_equals_the_unsized_encoding():
    rng = np.random.default_rng(3)
    hints = [H.UserHint(int(x), int(y), tuple(int(v) for v in rng.integers(0, 256, 3)))
             for x, y in zip(rng.integers(0, 1000, 50), rng.integers(0, 700, 50))]
    a = H.user_hints_to_cells(hints, (1000, 700))
    b = H.user_hints_to_cells([H.UserHint(hh.x, hh.y, hh.rgb, 1) for hh in hints] + [], (1000, 700))
    sized = hints[:-1] + [H.UserHint(hints[-1].x, hints[-1].y, hints[-1].rgb, 2)]  # forces the per-hint path
    c = H.user_hints_to_cells(sized, (1000, 700))
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    ref = _patch_reference(sized, 1000, 700)
    assert (c[1] == ref[1]).all() and np.abs(c[0] - ref[0]).max() < 1e-6
