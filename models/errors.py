"""The error of every checkpoint reader (official pickles, tinct safetensors, Color2Embed key maps)."""

from tinct.runtime.errors import TinctError


class CheckpointError(TinctError):
    """A checkpoint that cannot be read or does not match its architecture."""
