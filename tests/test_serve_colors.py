"""A hint's colour, told truthfully (issue 30, step 1): ``GET /api/sessions/{id}/color`` gives the photo's lightness
at a point, the pick snapped into the sRGB gamut there (the colour the hint will show), colours the model suggests
around it, and the gamut panel at that lightness."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import skimage.color
from PIL import Image

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from tinct.runtime import color  # noqa: E402
from tinct.runtime.color import AB_NORM  # noqa: E402
from tinct.runtime.hints import HINT_SIZE, IMG_SIZE  # noqa: E402
from tinct.serve.app import create_app  # noqa: E402
from tinct.serve.engines import EngineSet  # noqa: E402
from tinct.serve.service import GAMUT_LIMIT, GAMUT_STEP  # noqa: E402

PHOTO = "data/samples/horses_herd.jpg"


@pytest.fixture(scope="module")
def client():
    e = EngineSet.build(["icolorit-tiny"], backends=["onnxruntime"], threads=1)
    yield TestClient(create_app(e), raise_server_exceptions=False, base_url="http://127.0.0.1")
    e.close()


def _gray_session(client) -> tuple[str, np.ndarray]:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    with Image.open(root / PHOTO) as im:
        gray = im.convert("L").convert("RGB").resize((448, 300))
    buf = io.BytesIO()
    gray.save(buf, "PNG")
    return client.post("/api/sessions", files={"image": ("g.png", buf.getvalue())}).json()["id"], np.asarray(gray)


def _at_lightness(hexes: list[str], light: float) -> None:
    for h in hexes:  # each exists at the point's lightness
        rgb = np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)], np.uint8)
        assert abs(float(color.rgb_to_lab(rgb)[0]) - light) < 1.0, (h, light)


def test_a_first_click_on_a_gray_photo_gets_the_model_s_colour_and_the_gamut(client):
    """Before any hint the model runs once and its colour at the point is offered (the shipped model predicts
    muted colours on a gray photo, chroma < 8: one or two suggestions there); the gamut panel at the point's L."""
    sid, gray = _gray_session(client)
    r = client.get(f"/api/sessions/{sid}/color", params={"x": 120, "y": 200})
    assert r.status_code == 200, r.text
    j = r.json()
    light = float(color.rgb_to_lab(gray[200, 120])[0])
    assert j["l"] == pytest.approx(light, abs=0.01) and j["color"] is None
    assert len(j["suggested"]) >= 1 and len(set(j["suggested"])) == len(j["suggested"])
    _at_lightness(j["suggested"], light)
    png = Image.open(io.BytesIO(base64.b64decode(j["gamut"]["png"].split(",", 1)[1])))
    n = int(round(2 * GAMUT_LIMIT / GAMUT_STEP)) + 1
    assert png.mode == "RGBA" and png.size == (n, n) and j["gamut"]["step"] == GAMUT_STEP
    alpha = np.asarray(png)[..., 3]
    assert alpha[n // 2, n // 2] == 255 and alpha[0, 0] == 0  # gray exists, a = -108, b = 108 does not
    assert (alpha == 255).sum() == len(color.gamut_ab(light, GAMUT_STEP, GAMUT_LIMIT))


def test_a_first_click_on_a_gray_photo_offers_the_model_s_hue_saturated(client):
    """Where the model's muted prediction has a hue (the horses: mean chroma ~5), a first click offers that hue at
    higher chroma after the predicted colour: >= 3 suggestions, all at the point's lightness and the model's hue.
    Where the mean is within 2 ab of gray (the sky) no hue is invented."""
    from tinct.runtime.session import HUE_MIN_CHROMA

    sid, gray = _gray_session(client)
    x, y = 170, 250  # the grass below the herd
    j = client.get(f"/api/sessions/{sid}/color", params={"x": x, "y": y}).json()
    assert len(j["suggested"]) >= 3, j["suggested"]
    light = float(color.rgb_to_lab(gray[y, x])[0])
    _at_lightness(j["suggested"], light)
    s = client.app.app.state.store.get(sid).session
    n = s.ab_model.shape[-1]
    cx, cy = int((x + 0.5) * n / 448), int((y + 0.5) * n / 300)
    mean = s.ab_model[0, :, cy - 7:cy + 8, cx - 7:cx + 8].reshape(2, -1).mean(axis=1) * AB_NORM
    assert np.hypot(*mean) >= HUE_MIN_CHROMA
    labs = color.rgb_to_lab(np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in j["suggested"]], np.uint8))
    hue = np.degrees(np.arctan2(mean[1], mean[0]))
    for lab in labs[1:]:
        if np.hypot(*lab[1:]) > 10:  # the saturated ones keep the model's hue (8-bit rounding aside)
            assert abs((np.degrees(np.arctan2(lab[2], lab[1])) - hue + 180) % 360 - 180) < 6, (lab, hue)
    assert max(np.hypot(*lab[1:]) for lab in labs) >= 19  # a colour, not a shade of gray
    sky = client.get(f"/api/sessions/{sid}/color", params={"x": 300, "y": 20}).json()
    sky_mean = s.ab_model[0, :, 0:8, 97:112].reshape(2, -1).mean(axis=1) * AB_NORM
    if np.hypot(*sky_mean) < HUE_MIN_CHROMA:
        assert all(np.hypot(*c[1:]) < 8 for c in color.rgb_to_lab(np.array(
            [[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in sky["suggested"]], np.uint8)))


def test_suggestions_are_the_distinct_colours_predicted_around_the_point(client):
    sid, gray = _gray_session(client)
    hints = [{"x": 100, "y": 200, "color": "#c03020"}, {"x": 300, "y": 60, "color": "#3070d0"}]
    client.put(f"/api/sessions/{sid}/hints?image=none", json={"hints": hints})
    j = client.get(f"/api/sessions/{sid}/color", params={"x": 110, "y": 200}).json()
    assert len(j["suggested"]) >= 3 and len(set(j["suggested"])) == len(j["suggested"])
    _at_lightness(j["suggested"], float(color.rgb_to_lab(gray[200, 110])[0]))
    labs = color.rgb_to_lab(np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in j["suggested"]], np.uint8))
    assert labs[0, 1] > 20 and labs[0, 2] > 10  # the most frequent near the red hint: a red
    d = np.hypot(*(labs[:, None, 1:] - labs[None, :, 1:]).transpose(2, 0, 1))
    assert d[~np.eye(len(labs), dtype=bool)].min() > 4  # distinct, not shades of one (12 apart before rounding)


def test_a_gamut_pick_is_what_the_hint_shows(client):
    """Pick a saturated colour the photo's lightness cannot hold: the answer is its snapped colour; a hint of that
    colour shows it at the hint's patch within CIEDE2000 5 (model's 224 space)."""
    sid, gray = _gray_session(client)
    x, y = 300, 60  # the sky
    r = client.get(f"/api/sessions/{sid}/color", params={"x": x, "y": y, "color": "#0000ff"}).json()
    assert r["in_gamut"] is False and r["color"] != "#0000ff"
    snapped = np.array([int(r["color"][i:i + 2], 16) for i in (1, 3, 5)], np.uint8)
    np.testing.assert_array_equal(snapped, color.snap_rgb(r["l"], np.array([0, 0, 255], np.uint8)))
    client.put(f"/api/sessions/{sid}/hints?image=none", json={"hints": [{"x": x, "y": y, "color": r["color"]}]})
    entry = client.app.app.state.store.get(sid)
    s = entry.session
    cy, cx = (int((y + 0.5) * IMG_SIZE / 300) // HINT_SIZE) * HINT_SIZE, (int((x + 0.5) * IMG_SIZE / 448) // 2) * 2
    patch_l = color.rgb_to_lab(s.small[cy:cy + 2, cx:cx + 2])[..., 0]
    shown = np.stack([patch_l, *(s.ab_model[0, :, cy:cy + 2, cx:cx + 2] * AB_NORM)], axis=-1)
    wanted = np.stack([patch_l, *np.broadcast_to(color.rgb_to_lab(snapped)[1:, None, None], (2, 2, 2))], axis=-1)
    de = skimage.color.deltaE_ciede2000(shown.astype(np.float64), wanted.astype(np.float64), channel_axis=-1)
    assert de.mean() <= 5.0, de


def test_bad_points_and_colours_are_one_line_4xx(client):
    sid, _ = _gray_session(client)
    for params in ({"x": 4000, "y": 1}, {"x": 1, "y": 1, "color": "blue"}, {"x": -1, "y": 0}):
        r = client.get(f"/api/sessions/{sid}/color", params=params)
        assert r.status_code == 400 and "\n" not in r.json()["error"], (params, r.text)
    assert client.get(f"/api/sessions/{sid}/color", params={"x": "a", "y": 1}).status_code == 422
    assert client.get("/api/sessions/nope/color", params={"x": 1, "y": 1}).status_code == 404
