"""``tinct bench accuracy --ray``: the accuracy sweep sharded over a Ray cluster.

The images are cut into the same chunks of ``--batch`` images as in one process
(:func:`benchmarks.accuracy.chunks`); a pool of Ray actors, each with its own predictor (and LPIPS
networks), runs :func:`benchmarks.accuracy.evaluate_chunk` on them; the driver merges the rows with
:func:`benchmarks.accuracy.summarize`. Same chunks, same per-image values, same sums: the JSON equals the
in-process one but for the timing and environment fields (tested). The dataset and the hints travel once
through Ray's object store; every node must see the dataset's files at the same paths.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm

from tinct.benchmarks.accuracy import chunks, evaluate_chunk, summarize
from tinct.benchmarks.lpips import LPIPS
from tinct.runtime.errors import TinctError
from tinct.serve.ray_batch import cluster_cpus, init


def ray_evaluator(make_predictor: Callable, *, address: str, workers: int | None, threads: int = 1):
    """An ``evaluator(dataset, counts, coords, batch, progress, lpips) -> (rows, summary)`` for
    :func:`benchmarks.accuracy.run`. ``make_predictor()`` -> (predict, description) is called in each actor
    (a picklable factory: e.g. ``functools.partial(engine_predictor, path, threads=1)``); each actor builds its
    own copies of the driver's LPIPS metrics (same network, same input range)."""

    def evaluate(dataset, counts, coords, batch, progress=True, lpips=()):
        ray = init(address)
        n = workers or max(1, cluster_cpus(ray) // max(1, threads))
        if n * threads > cluster_cpus(ray):
            raise TinctError(f"--workers {n} x --threads {threads} needs {n * threads} CPUs; the Ray cluster has "
                             f"{cluster_cpus(ray)}")
        data_ref, coords_ref = ray.put(dataset), ray.put(coords)
        lpips_specs = [(m.net, m.inputs) for m in lpips or ()]

        @ray.remote(num_cpus=threads)
        class Shard:
            def __init__(self, data, hints):

                self.data, self.hints = data, hints
                self.predict, _ = make_predictor()
                self.lpips = [LPIPS(net, inputs=inputs, threads=threads) for net, inputs in lpips_specs]

            def run(self, start, stop):
                return start, evaluate_chunk(self.predict, self.data, start, stop, counts, self.hints, batch,
                                             self.lpips)

        parts = chunks(len(dataset), batch)
        pool = ray.util.ActorPool([Shard.remote(data_ref, coords_ref) for _ in range(min(n, len(parts)))])
        done = {}
        with tqdm(total=len(dataset) * len(counts), desc=f"accuracy (ray, {n} workers)", unit="img",
                  disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
            for start, (rows, gray) in pool.map_unordered(lambda a, se: a.run.remote(*se), parts):
                done[start] = (rows, gray)
                bar.update(len(rows))
        ordered = [done[s] for s, _ in parts]
        rows = [r for part, _ in ordered for r in part]
        return summarize(rows, dataset, counts, [g for _, g in ordered], lpips)

    evaluate.describe = {"runner": "ray", "address": address, "workers": workers, "threads": threads}
    return evaluate
