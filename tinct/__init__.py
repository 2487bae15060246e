"""tinct: the installed namespace. Every part of the project lives under it (``tinct.runtime``,
``tinct.export``, ``tinct.quantization``, ...), while the repository keeps its top-level folders
(``runtime/``, ``export/``, ...): pyproject.toml maps each ``tinct.<part>`` to its folder.
In a checkout without an install, the folders next to this one are found too (``__path__`` below)."""

from pathlib import Path as _Path

_root = _Path(__file__).resolve().parent.parent
if (_root / "cli" / "main.py").is_file() and str(_root) not in __path__:  # a source checkout
    __path__.append(str(_root))

from tinct.runtime import __version__  # noqa: E402

__all__ = ["__version__"]
