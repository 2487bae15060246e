"""Fuzz targets' settings (issue 15): a bounded number of examples in the suite, many in the long run.

Every fuzz target is a hypothesis test decorated with :func:`fuzz_target`. ``make fuzz`` runs them all
with ``TINCT_FUZZ_EXAMPLES=10000`` and hypothesis' statistics (cases per target, outcome events, time);
docs/reliability.md quotes its last figures.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

ENV = "TINCT_FUZZ_EXAMPLES"


def long_run_examples() -> int | None:
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 10_000_000:
        raise pytest.UsageError(f"{ENV}={text!r}: use a whole number 1..10000000")
    return int(text)


def fuzz_target(ci_examples: int):
    """Mark a ``@given`` test as a fuzz target: ``ci_examples`` cases in the suite, ``$TINCT_FUZZ_EXAMPLES``
    in the long run. No deadline (a model run is slow next to a parser); health checks about slow or
    large generated data are off, since the targets draw large inputs on purpose."""
    n = long_run_examples() or ci_examples

    def deco(test):
        test = settings(max_examples=n, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                               HealthCheck.filter_too_much, HealthCheck.large_base_example])(test)
        return pytest.mark.fuzz(test)

    return deco
