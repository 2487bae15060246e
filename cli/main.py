"""The `tinct` command line: the commands are the modules of :mod:`tinct.cli`, listed in :data:`COMMANDS`.

Each command module imports only the standard library and the runtime core at module level (its ``run``
imports the implementation, which may need an extra: see :mod:`tinct.cli`), so ``tinct --help`` lists
every command in a runtime-only install, and a command whose dependencies are missing names the extra
to install.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from tinct.cli import (
    batch,
    bench,
    build,
    colorize,
    data,
    deploy,
    doctor,
    export,
    info,
    quantize,
    serve,
    ship,
    train,
)
from tinct.runtime import __version__
from tinct.runtime.errors import MissingExtraError, TinctError

# The built-in commands in --help's order; each module has NAME, EXTRA (what installs its dependencies),
# register(subparsers) and run(args).
COMMANDS = (colorize, batch, info, build, doctor, export, data, train, ship, quantize, bench, serve, deploy)

# Heavy modules and the extra that installs each one (the command's own extra wins when it also
# provides the module: torch comes with both 'export' and 'train').
TORCH_EXTRAS = {"export", "train"}
EXTRA_OF_MODULE = {
    "torch": "export",
    "onnx": "export",
    "onnxscript": "export",
    "safetensors": "export",
    "openvino": "openvino",
    "nncf": "quant",
    "tensorrt": "tensorrt",
    "cuda": "tensorrt",
    "pycuda": "tensorrt",
    "matplotlib": "bench",
    "pytest_benchmark": "bench",
    "skimage": "bench",
    "fastapi": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "python_multipart": "serve",
    "ray": "ray",
    "tritonclient": "triton",
}


def _extra_of(command: str | None) -> str | None:
    return next((c.EXTRA for c in COMMANDS if c.NAME == command), None)


def _plugins():
    """(name, register) of third-party commands (entry point group ``tinct.commands``, "pkg.mod:register")."""
    builtin = {c.NAME for c in COMMANDS}
    for ep in entry_points(group="tinct.commands"):
        if ep.name not in builtin:
            mod_name, attr = ep.value.split(":")
            yield ep.name, getattr(importlib.import_module(mod_name), attr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinct",
        description="tinct: export, quantize, compile and run interactive colorization models "
        "(iColoriT, A-ColViT, Color2Embed).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tinct {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    for _name, register in _plugins():
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except MissingExtraError as exc:
        print(f"tinct: error: {exc}", file=sys.stderr)
        return 3
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        extra = EXTRA_OF_MODULE.get(top)
        if extra is None:
            return _internal_error(exc, args)
        own = _extra_of(args.command)
        if extra in TORCH_EXTRAS and own in TORCH_EXTRAS:
            extra = own
        print(f"tinct: error: {MissingExtraError(args.command, top, extra)}", file=sys.stderr)
        return 3
    except TinctError as exc:
        print(f"tinct: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print("tinct: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `tinct info X | head`): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, the traceback only under --debug
        return _internal_error(exc, args)
    return int(rc or 0)


# Exit codes: 0 ok; 1 error in what was asked (bad artifact, guard refused, regression found); 2 usage or
# input that is not what the command reads; 3 a missing optional dependency; 70 a bug in tinct (EX_SOFTWARE).
INTERNAL_ERROR = 70


def _internal_error(exc: BaseException, args) -> int:
    if getattr(args, "debug", False):
        import traceback

        traceback.print_exception(exc)
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    print(f"tinct: internal error in 'tinct {args.command}': {type(exc).__name__}: {first} -- this is a bug in "
          "tinct; please report it with the output of the same command run with 'tinct --debug'", file=sys.stderr)
    return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
