"""Errors that the CLI turns into one clear line and a non-zero exit code."""


class TinctError(Exception):
    """A user-facing error: bad input, wrong artifact, missing dependency. One line, no traceback."""


class MissingExtraError(TinctError):
    """A command needs an optional dependency that is not installed."""

    def __init__(self, command: str, module: str, extra: str):
        super().__init__(
            f"'tinct {command}' needs the Python package '{module}', which is not installed; "
            f"install the '{extra}' extra: pip install 'tinct[{extra}]'"
        )
