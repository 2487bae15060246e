"""Published reference numbers, as data: their weights, their hardware.

Only numbers actually read in a source are recorded, each with the table it comes from. The
numbers below were read from the papers' tables:

- iColoriT (Yun et al., WACV 2023, arXiv 2207.06831): Table 1 (PSNR@10 on ImageNet ctest10k for
  T/S/B) and Table 2 (latency CPU/GPU and GMACs).
- A-ColViT (Lee et al., AAAI 2023 workshop on practical DL): Table 1 (ImageNet ctest10k
  PSNR@1/5/10/50 and GMACs) and Table 2 (images per second on one CPU thread).

Not recorded (could not be read here: the stored copies of both papers give only their opening
pages, and the A-ColViT repository's figure is a qualitative image grid): the rest of iColoriT
Table 1 (LPIPS, Oxford 102 Flowers and CUB-200 columns, other methods), iColoriT Tables 3-4
(ablations, B-PSNR/PEV), iColoriT Fig. 5 (PSNR vs number of hints, a plot), and the Flowers/CUB
columns of A-ColViT Table 1. Add them here, with their table, when a source is at hand.

The papers' "GFLOPs" are multiply-accumulates; they are recorded here as ``gmacs``.
"""

from __future__ import annotations

ICOLORIT = {
    "paper": "iColoriT (Yun, Lee, Park, Choo; WACV 2023; arXiv 2207.06831)",
    "hardware": {"cpu": "AMD Ryzen 5 PRO 4650G", "gpu": "NVIDIA RTX 3090"},  # Table 2
}
ACOLVIT = {
    "paper": "A-ColViT (Lee, Shin, Ko, Jung, Woo; AAAI 2023 workshop)",
    "hardware": {"cpu": "1 CPU thread (model not given in our notes)"},  # Table 2
}

# Accuracy: {model: {"dataset", "source", "psnr": {k: dB}}}
ACCURACY = [
    # iColoriT Table 1, ImageNet ctest10k, PSNR with 10 hints.
    {"paper": "iColoriT", "source": "iColoriT Table 1", "dataset": "ctest10k", "model": "icolorit-tiny",
     "label": "iColoriT-T", "psnr": {10: 28.86}},
    {"paper": "iColoriT", "source": "iColoriT Table 1", "dataset": "ctest10k", "model": "icolorit-small",
     "label": "iColoriT-S", "psnr": {10: 29.67}},
    {"paper": "iColoriT", "source": "iColoriT Table 1", "dataset": "ctest10k", "model": "icolorit-base",
     "label": "iColoriT-B", "psnr": {10: 30.63}},
    # A-ColViT Table 1, ImageNet ctest10k, PSNR@1/5/10/50 (their re-run of iColoriT-T included).
    {"paper": "A-ColViT", "source": "A-ColViT Table 1", "dataset": "ctest10k", "model": "icolorit-tiny",
     "label": "iColoriT-T (A-ColViT's run)", "psnr": {1: 25.69, 5: 27.79, 10: 28.82, 50: 31.08}, "gmacs": 1.43},
    {"paper": "A-ColViT", "source": "A-ColViT Table 1", "dataset": "ctest10k", "model": "acolvit-tiny-0.5",
     "label": "A-ColViT-T-0.5", "psnr": {1: 25.66, 5: 27.75, 10: 28.76, 50: 31.00}, "gmacs": 0.79},
    {"paper": "A-ColViT", "source": "A-ColViT Table 1", "dataset": "ctest10k", "model": "acolvit-tiny-0.3",
     "label": "A-ColViT-T-0.3", "psnr": {1: 25.34, 5: 27.42, 10: 28.43, 50: 30.67}, "gmacs": 0.46},
]

# Speed: latency in ms (batch 1, 224x224) or throughput in images/s, with the hardware it ran on.
SPEED = [
    {"paper": "iColoriT", "source": "iColoriT Table 2", "model": "icolorit-tiny", "label": "iColoriT-T",
     "cpu_ms": 177.0, "gpu_ms": 13.0, "gmacs": 1.43},
    {"paper": "iColoriT", "source": "iColoriT Table 2", "model": "icolorit-small", "label": "iColoriT-S",
     "cpu_ms": 253.0, "gpu_ms": 14.0, "gmacs": 4.95},
    {"paper": "iColoriT", "source": "iColoriT Table 2", "model": "icolorit-base", "label": "iColoriT-B",
     "cpu_ms": 540.0, "gpu_ms": 14.0, "gmacs": 18.22},
    {"paper": "A-ColViT", "source": "A-ColViT Table 2", "model": "icolorit-tiny", "label": "iColoriT-T",
     "cpu_1thread_img_per_s": 23.6},
    {"paper": "A-ColViT", "source": "A-ColViT Table 2", "model": "acolvit-tiny-0.5", "label": "A-ColViT-T-0.5",
     "cpu_1thread_img_per_s": 40.0},
    {"paper": "A-ColViT", "source": "A-ColViT Table 2", "model": "acolvit-tiny-0.3", "label": "A-ColViT-T-0.3",
     "cpu_1thread_img_per_s": 50.8},
]

HARDWARE = {"iColoriT": ICOLORIT["hardware"], "A-ColViT": ACOLVIT["hardware"]}
NOT_SOURCED = [
    "iColoriT Table 1: LPIPS, Oxford 102 Flowers and CUB-200 columns, other methods",
    "iColoriT Tables 3-4 (ablations, B-PSNR / PEV)",
    "iColoriT Fig. 5 (PSNR vs number of hints)",
    "A-ColViT Table 1: Oxford 102 Flowers and CUB-200 columns",
]


def accuracy_rows(dataset: str | None = None) -> list[dict]:
    return [r for r in ACCURACY if dataset is None or r["dataset"] == dataset]


def paper_psnr(model: str, k: int, dataset: str = "ctest10k") -> list[tuple[str, float]]:
    """(source, PSNR) pairs the papers report for a model at k hints."""
    return [(r["source"], r["psnr"][k]) for r in ACCURACY
            if r["model"] == model and r["dataset"] == dataset and k in r["psnr"]]
