"""The sample photos that ship with tinct: four 224x224 colour photos from the validation split, with
their licences listed in ``README.md`` next to them (all Public Domain or CC0).

They are what the probes, the guards' fallback, the latency benchmark, ``--precision auto``'s
calibration fallback, the server's sample picker and ``make demo`` run on, in a checkout and in an
installed wheel alike (package data of ``tinct.data.samples``). ``horses_herd_hints.json`` holds the
demo's hints in the CLI's hint format.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
DEMO_PHOTO = SAMPLES_DIR / "horses_herd.jpg"
DEMO_HINTS = SAMPLES_DIR / "horses_herd_hints.json"


def sample_photos() -> list[Path]:
    """The sample photos, sorted by name."""
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
