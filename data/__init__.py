"""The offline photo corpus and what reads it (numpy and Pillow only, no torch).

- :mod:`data.corpus`: ``tinct data fetch``: pinned Debian packages -> verified, decoded, cached splits;
- :mod:`data.photos`: the training photos, the validation split, random-resized crops (:class:`CropSampler`);
- :mod:`data.tps`: the thin-plate-spline warp behind Color2Embed's self-supervised references;
- :mod:`data.rcc`: a reader for the Qt resource bundles some photos come in;
- :mod:`data.cli`: the ``tinct data`` command.

Training, quantization (calibration, guard) and the benchmarks import this package; it imports only
the runtime core below it.
"""
