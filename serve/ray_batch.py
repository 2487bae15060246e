"""``tinct batch --ray``: the four stages of :mod:`runtime.batch` as a Ray Data pipeline.

read (tasks) -> decode (tasks) -> colorize (an actor pool: one engine per actor, ``workers`` actors
of ``threads`` CPUs each) -> write (tasks); the driver iterates the results for the progress bar and the
summary. The stage functions are the in-process ones, so the pixels are the same (tested).

Where it runs (``address``): ``local`` starts Ray in this process on this machine's CPUs; ``auto`` is
Ray's own meaning (the cluster named by ``RAY_ADDRESS`` or started here with ``ray start``); anything
else is a cluster address (``HOST:PORT`` or ``ray://HOST:10001``). Every node of a cluster needs tinct
installed and sees the input and output folders at the same paths (a shared file system).

Needs the ``ray`` extra (``pip install 'tinct[ray]'``).
"""

from __future__ import annotations

import logging
import math
import os
import time

from tqdm import tqdm

from tinct.runtime.errors import MissingExtraError, TinctError
from tinct.serve.batch import Colorize, EngineSpec, Plan, Summary, decode, measure_done, read, write


def _ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingExtraError("--ray", "ray[data]", "ray") from None
    return ray


def init(address: str, num_cpus: int | None = None):
    """Connect to (or start) Ray; returns the module. Quiet: no dashboard, worker logs not echoed."""
    ray = _ray()
    if ray.is_initialized():
        return ray

    opts = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR", "configure_logging": True}
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **opts)
        else:
            ray.init(address=address, **opts)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise TinctError(f"--ray {address}: cannot reach a Ray cluster ({str(exc).strip().splitlines()[0]})") from None
    return ray


def cluster_cpus(ray) -> int:
    return int(ray.cluster_resources().get("CPU", 1))


def run_ray(p: Plan, spec: EngineSpec, *, address: str = "local", workers: int | None = None, threads: int = 1,
            progress: bool = True) -> Summary:
    """Run the plan on Ray; ``workers`` actors (default: the cluster's CPUs // ``threads``)."""

    t_start = time.perf_counter()
    ray = init(address)
    cpus = cluster_cpus(ray)
    if workers is None:
        workers = max(1, cpus // max(1, threads))
    if workers * threads > cpus:
        raise TinctError(f"--workers {workers} x --threads {threads} needs {workers * threads} CPUs; the Ray cluster "
                         f"has {cpus}")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    rows = [measure_done(r) for r in p.done]
    t0 = time.perf_counter()
    if p.todo:
        ds = ray.data.from_items(p.todo, override_num_blocks=len(p.todo))
        # The actors own the CPUs (workers x threads); reading, decoding and writing are tasks that reserve
        # none (at most `workers` of each at once), or they would wait for CPUs the actors hold (a deadlock
        # when workers x threads is the whole cluster).
        light = {"num_cpus": 0, "compute": ray.data.TaskPoolStrategy(size=workers)}
        ds = ds.map(read, **light).map(decode, fn_kwargs={"max_pixels": spec.max_pixels}, **light)
        ds = ds.map(_engine_class(spec), compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads)
        ds = ds.map(write, **light)
        with tqdm(total=len(p.todo), desc="batch (ray)", unit="img", disable=not progress, dynamic_ncols=True) as bar:
            for row in ds.iter_rows():
                rows.append(_plain(row))
                bar.update(1)
    return Summary(rows=rows, seconds=time.perf_counter() - t0, workers=workers, runner=f"ray ({address})",
                   startup_s=t0 - t_start)


def _engine_class(spec: EngineSpec):
    """The colorize stage's actor class with ``spec`` built in (shipped with the class, not as constructor
    arguments in the object store, which Ray cannot restore when it restarts an actor)."""

    class Engine(Colorize):
        def __init__(self):
            super().__init__(spec)

    return Engine


def _plain(row) -> dict:
    """A result row as Python values (Ray may hand back numpy scalars or None-filled columns)."""
    out = {}
    for k, v in dict(row).items():
        if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            v = v.item()
        if isinstance(v, float) and math.isnan(v):  # NaN that Arrow used for a missing float
            v = None
        out[k] = v
    return out
