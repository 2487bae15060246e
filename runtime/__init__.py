"""tinct runtime: torch-free colour/hint protocol, inference backends and the `tinct` CLI."""

__version__ = "0.1.0"
