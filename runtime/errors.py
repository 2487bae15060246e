"""Errors that the CLI turns into one clear line and a non-zero exit code."""
import argparse
import os


class TinctError(Exception):
    """A user-facing error: bad input, wrong artifact, missing dependency. One line, no traceback."""


class InputError(TinctError):
    """Input that is not what the command reads (exit 2), e.g. where exit 1 means "a regression was found"."""

    exit_code = 2


class TooLargeError(InputError):
    """Input over a size limit (pixels, bytes, memory): exit 2 from the CLI, HTTP 413 from the server."""


class MissingExtraError(TinctError):
    """A command needs an optional dependency that is not installed."""

    def __init__(self, command: str, module: str, extra: str):
        super().__init__(
            f"'tinct {command}' needs the Python package '{module}', which is not installed; "
            f"install the '{extra}' extra: pip install 'tinct[{extra}]'"
        )


# Resource bounds for user-given numbers: a `--threads 100000` once started 25k threads and took 16 GB.
MAX_THREADS = 256


def bounded(lo: float, hi: float, kind=int):
    """argparse type: a number of ``kind`` in ``lo..hi`` (resource arguments are always bounded)."""

    def parse(text: str):
        try:
            v = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is out of range ({lo:g}..{hi:g})")
        return v

    return parse


def thread_count(text: str) -> int:
    """argparse type for ``--threads``: 0 (the library's default) or 1..:data:`MAX_THREADS`."""

    try:
        n = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= n <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"{n} is out of range: use 0 (the library's default) or 1..{MAX_THREADS} "
                                         f"(this machine has {os.cpu_count()} logical cores)")
    return n
