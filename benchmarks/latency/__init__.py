"""Latency measurement engine: ``tinct bench latency`` and ``pytest benchmarks/`` both use it.

A run measures a list of **cases** (model x backend x precision x threads x mode [x gate pattern])
against each other in one process:

- ``model``: the network alone, batch 1, ``x [1,4,224,224]`` from a real photo with 10 hints.
- ``e2e``: pre + infer + post of a 224x224 photo through :class:`runtime.colorizer.Colorizer`
  (hint encoding, model, ab upsample, Lab->RGB merge).
- ``session``: one full-resolution interactive update: a 1920x1080 photo (a fixture photo,
  upscaled) loaded once in a :class:`runtime.colorizer.Session`; every timed call moves one hint
  and calls ``colorize()`` (the per-stage times of :attr:`Session.timings` are reported too).
- ``throughput``: a batch of ``batch`` different inputs per call, single thread; images/s is
  comparable to A-ColViT Table 2 (images per second on one CPU thread).

**Noisy-neighbour guard.** Every case is set up first (artifacts built, sessions created), then
warmed up, then timed round-robin: each round makes exactly one timed call of every case, in a
shuffled order (seeded), so a neighbour's burst of load spreads over all cases instead of
penalizing whichever case happened to run then. The report gives median, IQR, min, mean, p90
and the number of samples, and **ratios measured in the same run**: speedup vs the PyTorch eager
FP32 reference of the same model (always included when torch is importable; when it is not, the
ratio is ``null`` and the run says why), vs ONNX Runtime FP32, and, for A-ColViT, vs the same
engine with every sub-layer kept.

**A-ColViT gate patterns** (``--gates``): ``own`` = the model's own per-input decisions (dynamic
export with ONNX ``If`` nodes; PyTorch with its decisions); ``all`` = every sub-layer kept;
a ratio such as ``0.5``/``0.3`` = that fraction of the 2*depth sub-layers forced on (attention and
MLP sub-layers in equal shares, evenly spread over the blocks; static exports without ``If``;
PyTorch via ``forced_gates``); or an explicit string of 2*depth 0/1 (attention, MLP per block).
``kept_ratio`` is the fraction of sub-layers that ran.

**GPU** (when CUDA is present): PyTorch eager, a CUDA-graph reference (``torch.cuda.graphs``; the
graph cannot capture data-dependent ``If``, so A-ColViT uses a static mask there) and TensorRT
when installed; otherwise skipped with the reason.

Output: a latency result in the schema of :mod:`benchmarks.report` (``results`` entries
``model, backend, precision, threads, median_ms, iqr_ms, ..., kept_ratio``; ``model`` carries
the gate pattern and mode when they are not the defaults, so the entries stay unique for
``tinct bench compare``), plus :func:`markdown_table`.

Models: the shipped weights ``weights/<name>.safetensors`` when present; otherwise a randomly
initialised model of the same architecture (seeded), flagged "random weights (latency only)".

The package: :mod:`.common` (constants), :mod:`.ratios` (same-run ratios, efficiency), :mod:`.output`,
:mod:`.patterns` (gate patterns), :mod:`.inputs`, :mod:`.artifacts` (models, exports, quantized artifacts),
:mod:`.engines`, :mod:`.plan`; the scheduler is :mod:`tinct.runtime.timing`, the command :mod:`tinct.cli.bench_latency`.
"""
