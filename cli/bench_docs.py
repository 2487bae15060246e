"""`tinct bench docs`: the parser (the generator is :mod:`tinct.benchmarks.docs`)."""

from __future__ import annotations

NAME = "docs"


def register(sub) -> None:
    p = sub.add_parser(
        "docs", help="regenerate the tables of README.md and docs/*.md from docs/data/*.json",
        description="Fill every '<!-- table: docs/data/NAME.json [options] -->' ... '<!-- /table -->' block of the "
        "Markdown files with the table its JSON renders, under a line naming the machine and the command that "
        "made it. Files are rewritten atomically, and only when every block rendered. Exit 1 with --check when "
        "a table differs from its data, 2 on bad input (a missing file, an unknown option, an unclosed marker).")
    p.add_argument("paths", nargs="*", metavar="FILE.md", help="Markdown files (default: README.md and docs/*.md)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 naming every table whose text differs from what its data renders")
    p.add_argument("--root", default=".", metavar="DIR",
                   help="the repository root the markers' paths are relative to (default: the current directory)")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinct.benchmarks.docs import run_command  # deferred: the command's implementation (tinct.cli)

    return run_command(args)
