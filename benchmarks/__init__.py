"""tinct benchmarks: accuracy (iColoriT protocol + extra metrics), reports, regression gates.

Light on purpose: ``tinct --help`` imports :mod:`benchmarks.cli`, which imports only the standard
library; numpy, skimage, matplotlib and torch are imported by the commands that need them.
"""
