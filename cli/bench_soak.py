"""`tinct bench soak`: the parser (the suite is :mod:`tinct.benchmarks.soak`)."""

from __future__ import annotations

from tinct.benchmarks.limits import SOAK_MAX_SHARING as MAX_SHARING
from tinct.runtime.errors import thread_count

NAME = "soak"


def register(sub) -> None:
    p = sub.add_parser(
        "soak", help="memory growth and latency drift over many full-resolution session updates",
        description="Soak test: N threads share one backend, each drags hints on its own 1920x1080 session; "
        "reports RSS growth after warm-up and the drift of the median update (first vs last window). "
        "Exit 1 when a bound is exceeded, 2 on bad input.")
    p.add_argument("--engine", metavar="ARTIFACT", help="artifact to run (.onnx or .xml; default: the shipped "
                   "icolorit-tiny ONNX)")
    p.add_argument("--backends", default="onnxruntime,openvino", metavar="A,B",
                   help="CPU backends to soak one after the other (default onnxruntime,openvino)")
    p.add_argument("--sharing", default="1,4", metavar="N,M",
                   help=f"threads sharing one backend, each with its own session (1..{MAX_SHARING}; default 1,4)")
    p.add_argument("--threads", type=thread_count, default=1,
                   help="intra-op threads of the backend and of post-processing (default 1)")
    p.add_argument("--updates", type=int, default=10_000, help="timed updates per case, all threads together "
                   "(default 10000)")
    p.add_argument("--warmup", type=int, default=100, help="untimed updates per thread first (default 100)")
    p.add_argument("--window", type=int, default=1000, help="updates in the first/last windows (default 1000)")
    p.add_argument("--rss-every", type=int, default=50, metavar="N", help="sample RSS every N updates (default 50)")
    p.add_argument("--max-rss-growth", type=float, default=5.0, metavar="MB", help="gate (default 5)")
    p.add_argument("--max-drift", type=float, default=5.0, metavar="PCT",
                   help="gate on |last/first - 1| of the window medians, in %% (default 5)")
    p.add_argument("--size", default="1920x1080", metavar="WxH", help="session photo size (default 1920x1080)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", metavar="OUT.json", help="write the result here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinct.benchmarks.soak import run_command  # deferred: the command's implementation (tinct.cli)

    return run_command(args)
