"""`tinct bench load`: the parser (the suite is :mod:`tinct.benchmarks.load`)."""

from __future__ import annotations

from tinct.benchmarks.limits import LOAD_MAX_SESSIONS as MAX_SESSIONS
from tinct.benchmarks.limits import LOAD_MAX_UPDATES as MAX_UPDATES
from tinct.runtime.errors import thread_count

NAME = "load"


def register(sub) -> None:
    p = sub.add_parser("load", help="concurrent sessions against tinct serve: latency percentiles, errors, RSS",
                       description="Load test of tinct serve over loopback HTTP: N clients, each with its own "
                       "session, make M hint updates at once. Exit 1 if any request failed.")
    p.add_argument("--url", default=None, help="a running server (default: start 'tinct serve' on a free port)")
    p.add_argument("--model", default="icolorit-tiny", help="the engine's model when starting a server")
    p.add_argument("--backend", default="onnxruntime", help="backend when starting a server (default onnxruntime)")
    p.add_argument("--threads", type=thread_count, default=1, help="intra-op threads of the started server's engine")
    p.add_argument("--sessions", type=int, default=8, help=f"concurrent clients, 1..{MAX_SESSIONS} (default 8)")
    p.add_argument("--updates", type=int, default=50, help=f"updates per client, 1..{MAX_UPDATES} (default 50)")
    p.add_argument("--size", default="1920x1080", metavar="WxH", help="photo size (default 1920x1080)")
    p.add_argument("--hints", type=int, default=10, help="hints per session (default 10)")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds (default 600)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", metavar="OUT.json", help="write the result here")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinct.benchmarks.load import run_command  # deferred: the command's implementation (tinct.cli)

    return run_command(args)
