"""The one comparator: a candidate's outputs against a reference's (numpy only).

:class:`OutputDiff` accumulates, over any number of batches, what every check in tinct asks of two
engines' normalized ab outputs (and, for A-ColViT, their gate decisions): the largest and mean
absolute difference, how many candidate values are not finite, and how many gate decisions agree.
Each caller applies its own tolerance: the export parity check (max |Δab_n| ≤ 1e-4, identical gates),
the accuracy guard and the benchmark's fidelity check (mean |Δab| in Lab units, finiteness, with ΔPSNR
computed on the images), ``tinct doctor``.
"""

from __future__ import annotations

import numpy as np


class OutputDiff:
    def __init__(self) -> None:
        self.max_abs = 0.0  # normalized ab; inf when any difference is not finite
        self.sum_abs = 0.0  # over the finite differences
        self.count = 0
        self.nonfinite = 0  # NaN/inf values in the candidate's outputs
        self.gates_compared = False
        self.gate_total = 0
        self.gate_agree = 0

    def add(self, reference, candidate, reference_gates=None, candidate_gates=None) -> OutputDiff:
        ref = np.asarray(reference, dtype=np.float64)
        out = np.asarray(candidate, dtype=np.float64)
        if ref.shape != out.shape:
            raise ValueError(f"output shape {out.shape} differs from the reference's {ref.shape}")
        self.nonfinite += int((~np.isfinite(out)).sum())
        d = np.abs(out - ref)
        finite = np.isfinite(d)
        self.max_abs = float("inf") if not finite.all() else max(self.max_abs, float(d.max(initial=0.0)))
        self.sum_abs += float(d[finite].sum())
        self.count += int(finite.sum())
        if reference_gates is not None and candidate_gates is not None:
            g_r, g_c = np.asarray(reference_gates, bool), np.asarray(candidate_gates, bool)
            self.gates_compared = True
            self.gate_total += g_r.size
            self.gate_agree += int((g_r == g_c).sum())
        return self

    @property
    def mean_abs(self) -> float:
        return self.sum_abs / max(self.count, 1)

    @property
    def gate_mismatches(self) -> int:
        return self.gate_total - self.gate_agree

    @property
    def gate_agreement(self) -> float | None:
        return self.gate_agree / self.gate_total if self.gate_total else None
