"""``tinct data``: fetch and verify the offline photo corpus (stdlib imports only at module level)."""

from __future__ import annotations

import argparse
import sys
import time

NAME = "data"
EXTRA = "runtime"  # the extra that installs what this command needs

FETCH_HELP = """\
Download the pinned Debian packages of the photo corpus, verify every file against
data/manifest.json, and build the cached splits.

=== Corpus ===
  train   ~190 colour photos (wallpapers, tuxpaint templates, opencv samples, GCompris
          categorization), decoded once to uint8 .npy, short side capped at 768
  val     72 colour photos (GCompris explore_* activities), 256 short side -> centre
          crop 224 PNG, plus evaluation hints h2-n{N}/<stem>.txt

=== Options ===
  --cache <dir>          Cache directory (default: $TINCT_DATA, else ~/.cache/tinct/data)
  --split <name>         Which split to build: train, val or all (default: all)
  --no-progress          Do not show progress bars

Needs apt-get and dpkg (Debian). Idempotent: present, verified splits are only re-verified.
Examples:
  tinct data fetch
  tinct data fetch --split val --cache /data/tinct
"""

VERIFY_HELP = """\
Check every cached source file and built split against the manifest hashes; exits 1 with a
one-line error on the first mismatch.

=== Options ===
  --cache <dir>          Cache directory (default: $TINCT_DATA, else ~/.cache/tinct/data)
  --split <name>         train, val or all (default: all)
"""


def _splits(name: str) -> tuple[str, ...]:
    return ("train", "val") if name == "all" else (name,)


def _run_fetch(args: argparse.Namespace) -> int:
    from tinct.data import corpus as data

    t0 = time.time()
    cache = data.fetch(args.cache, splits=_splits(args.split), progress=not args.no_progress)
    counts = data.verify(cache, _splits(args.split))
    summary = ", ".join(f"{k}: {v} photos" for k, v in counts.items())
    print(f"[I] corpus ready in {cache} ({summary}) in {time.time() - t0:.1f} s")
    print(f"[I] manifest sha256 {data.manifest_sha256()}")
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    from tinct.data import corpus as data

    counts = data.verify(args.cache, _splits(args.split))
    summary = ", ".join(f"{k}: {v} photos" for k, v in counts.items())
    print(f"[I] verified {data.cache_dir(args.cache)} ({summary}) &&&& PASSED")
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", metavar="DIR", default=None, help=argparse.SUPPRESS)
    p.add_argument("--split", choices=("train", "val", "all"), default="all", help=argparse.SUPPRESS)


def register(subparsers) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    data = subparsers.add_parser("data", help="fetch and verify the offline photo corpus",
                                 description="Manage the offline photo corpus (train and val splits).",
                                 formatter_class=fmt)
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    fetch = sub.add_parser("fetch", help="download, verify and build the corpus", description=FETCH_HELP,
                           formatter_class=fmt)
    _add_common(fetch)
    fetch.add_argument("--no-progress", action="store_true", help=argparse.SUPPRESS)
    fetch.set_defaults(func=_run_fetch)

    verify = sub.add_parser("verify", help="verify the cached corpus against the manifest",
                            description=VERIFY_HELP, formatter_class=fmt)
    _add_common(verify)
    verify.set_defaults(func=_run_verify)

    def _no_sub(args: argparse.Namespace) -> int:
        data.print_help(sys.stderr)
        return 2

    data.set_defaults(func=_no_sub)
