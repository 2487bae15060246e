"""The `tinct` command line.

Subcommands are registered lazily: this module imports only the standard library, and each
command's own module (``register(subparsers)``) imports nothing heavy at module level. A command
whose dependencies are missing (torch for ``export``/``train``, nncf for ``quantize``...) is still
listed by ``tinct --help`` and, when run, names the extra to install.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from tinct.runtime import __version__
from tinct.runtime.errors import MissingExtraError, TinctError

# name -> (module with register(subparsers), extra that provides its heavy dependencies)
BUILTIN_COMMANDS: dict[str, tuple[str, str]] = {
    "colorize": ("tinct.runtime.commands.colorize", "runtime"),
    "batch": ("tinct.runtime.commands.batch", "runtime"),
    "info": ("tinct.runtime.commands.info", "runtime"),
    "build": ("tinct.runtime.commands.build", "openvino"),
    "doctor": ("tinct.runtime.commands.doctor", "tensorrt"),
    "export": ("tinct.export.cli", "export"),
    "data": ("tinct.data.cli", "runtime"),
    "train": ("tinct.training.cli_train", "train"),
    "ship": ("tinct.training.cli_ship", "train"),
    "quantize": ("tinct.quantization.cli", "quant"),
    "bench": ("tinct.benchmarks.cli", "bench"),
    "serve": ("tinct.serve.cli", "serve"),
    "deploy": ("tinct.export.cli_deploy", "triton"),
}

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


def _available_commands():
    """Yield (name, module_path, extra) for built-ins whose module exists, then plugins."""
    for name, (module, extra) in BUILTIN_COMMANDS.items():
        if importlib.util.find_spec(module.rsplit(".", 1)[0]) is None:
            continue
        try:
            if importlib.util.find_spec(module) is None:
                continue
        except ModuleNotFoundError:
            continue
        yield name, module, extra
    for ep in entry_points(group="tinct.commands"):
        if ep.name not in BUILTIN_COMMANDS:
            yield ep.name, ep.value, None


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
    for name, module, _extra in _available_commands():
        if ":" in module:  # plugin entry point "pkg.mod:register"
            mod_name, attr = module.split(":")
            register = getattr(importlib.import_module(mod_name), attr)
        else:
            register = importlib.import_module(module).register
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
        own = BUILTIN_COMMANDS.get(args.command, (None, None))[1]
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
