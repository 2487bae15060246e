"""Verification: does an artifact still do what its reference does? One home for every such check.

- :mod:`verify.probes`: the real photos with real hints checks run on (never noise);
- :mod:`verify.compare`: the one comparator (:class:`~tinct.verify.compare.OutputDiff`);
- :mod:`verify.budgets`: the accuracy budget of each precision;
- :mod:`verify.predictors`: an artifact as a predictor, always through :func:`tinct.runtime.backends.open_backend`;
- :mod:`verify.parity`: candidate vs reference on the probes (export parity, BF16 self-check);
- :mod:`verify.guard`: ΔPSNR@k and |Δab| against an FP32 parent on the validation split (``tinct quantize``);
- :mod:`verify.color2embed`: the same guard for Color2Embed's colorizer (self-supervised references);
- :mod:`verify.fidelity`: the check before any engine is timed (``tinct bench latency``, ``--precision auto``);
- :mod:`verify.recheck`: ``tinct doctor``'s re-verification on the machine at hand.

Numpy, Pillow and the runtime core only: no torch, no onnx (a reference that needs torch, such as an
export's PyTorch model, is passed in as a predictor).
"""
