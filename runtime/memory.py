"""This process' memory, for soak tests and the server's health report."""

from __future__ import annotations

import os
import sys


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux ``/proc/self/statm``; elsewhere the peak RSS)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource  # deferred: a Unix module, only for systems without /proc

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)
