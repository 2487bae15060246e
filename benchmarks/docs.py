"""Fill the generated tables of README.md and docs/*.md from the result files in docs/data
(``python -m tinct.benchmarks.docs``, ``tinct bench docs``).

A block is two marker lines, each a line of its own outside code fences::

    <!-- table: docs/data/NAME.json [docs/data/OTHER.json ...] [option=value ...] -->
    ...everything here is generated...
    <!-- /table -->

Between them goes one line per machine naming the CPU, the date and the command that made the files
(:func:`provenance`: what the file records, or the command rebuilt from the arguments it records; "CPU not
recorded in this file" when it has none), then the table the files' kind renders
(:mod:`tinct.benchmarks.docs_tables`; the options each kind takes are in its ``RENDERERS`` entry, e.g.
``pivot=threads models=icolorit-tiny`` for latency files). Several files in one block must be of one kind.

Without ``--check`` every file is rewritten in place, atomically, and only after every block of every file
rendered; with it nothing is written, and the blocks whose text differs from what their files render are
named (exit 1), so a number edited by hand fails CI. Bad input (a marker naming a missing file, an unknown
option, an unclosed marker) is one line and exit 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tinct.benchmarks.docs_tables import RENDERERS, Source, kind_of
from tinct.benchmarks.latency.common import DEFAULT_GATES
from tinct.runtime.artifact import atomic_path
from tinct.runtime.cpu import describe_cpu
from tinct.runtime.errors import InputError, TinctError

OPEN = re.compile(r"<!--\s*table:(.*?)-->")
CLOSE = re.compile(r"<!--\s*/table\s*-->")
FENCE = re.compile(r"^\s*(```|~~~)")
DATA_DIR = "docs/data/"
NO_CPU = "CPU not recorded in this file"


# ----------------------------------------------------------------------------- provenance

_FLAG_LADDER = (("amx_bf16", "AVX512_CORE_AMX"), ("avx512_bf16", "AVX512_CORE_BF16"),
                ("avx512_vnni", "AVX512_CORE_VNNI"), ("avx512f", "AVX512_CORE"), ("avx2", "AVX2"))


def cpu_line(doc: dict) -> str:
    """The CPU a file was measured on, from what the file records (``NO_CPU`` when it records nothing)."""
    env = doc.get("environment") if isinstance(doc.get("environment"), dict) else {}
    cpu = doc.get("cpu")
    if env.get("cpu_line"):
        line = env["cpu_line"]
    elif isinstance(env.get("isa"), dict):
        line = describe_cpu(env["isa"])
    elif isinstance(cpu, dict):
        line = describe_cpu(cpu)
    elif env.get("cpu") and isinstance(env.get("cpu_flags"), dict):
        isa = next((name for flag, name in _FLAG_LADDER if env["cpu_flags"].get(flag)), None)
        line = env["cpu"] + (f" [{isa}, from its recorded flags]" if isa else "")
    else:
        line = env.get("cpu") or (cpu if isinstance(cpu, str) else None) or NO_CPU
    n, aff = env.get("cpu_count"), env.get("affinity")
    if isinstance(n, int) and isinstance(aff, int) and aff < n:
        line += f", pinned to {aff} of its {n} CPUs"
    return line


def date_of(doc: dict) -> str | None:
    env = doc.get("environment") if isinstance(doc.get("environment"), dict) else {}
    t = env.get("time") or env.get("time_utc")
    return t[:10] if isinstance(t, str) and re.match(r"\d{4}-\d\d-\d\d", t) else None


def _arg(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _flags(values: dict, defaults: dict) -> list[str]:
    """``--key value`` for each key of ``defaults`` whose value is present and differs (None: always shown)."""
    out = []
    for key, default in defaults.items():
        v = values.get(key)
        if v is not None and (default is None or v != default):
            out.append(f"--{key.replace('_', '-')} {_arg(v)}")
    return out


def _env_prefix(doc: dict) -> str:
    env = doc.get("environment") if isinstance(doc.get("environment"), dict) else {}
    pre = [f"{k}={v}" for k, v in (env.get("env_vars") or {}).items()]
    cap = (env.get("isa") or {}).get("isa_cap") if isinstance(env.get("isa"), dict) else None
    if cap:
        pre.append(f"ONEDNN_MAX_CPU_ISA={cap}")
    return " ".join(pre) + " " if pre else ""


def _latency_command(doc: dict, path: str) -> str:
    c = doc.get("config") or {}
    flags = _flags(c, {"models": None, "backends": None, "precisions": None, "threads": None, "modes": None,
                       "gates": ",".join(DEFAULT_GATES), "gate_modes": "model", "rounds": 50, "warmup": 5,
                       "batch": 8, "order": "shuffle", "seed": 0, "gap_ms": 2.0, "burst": 1})
    flags += ["--profile"] if c.get("profile") else []
    return _env_prefix(doc) + " ".join(["tinct bench latency", *flags, f"--json {path}"])


def _accuracy_command(doc: dict, path: str) -> str:
    art, ds = doc.get("artifact") or {}, doc.get("dataset") or {}
    if art.get("kind") == "engine":
        what = [f"--engine {art.get('path') or art.get('artifact')}", f"--backend {art['backend']}"]
    else:
        what = [f"--model {art.get('model')}"]
    flags = [*what, f"--dataset {ds.get('name')}"]
    if art.get("threads"):
        flags.append(f"--threads {art['threads']}")
    counts = [str(k) for k in doc.get("counts") or []]
    if counts and counts != "0,1,2,5,10,20,50,100,200".split(","):
        flags.append(f"--hints {','.join(counts)}")
    nets = [{"lpips": "vgg", "lpips_alex": "alex"}[k] for k in (doc.get("lpips_config") or {})
            if k in ("lpips", "lpips_alex")]
    if nets:
        flags.append(f"--lpips {','.join(nets)}")
    if ds.get("limit"):
        flags.append(f"--limit {ds['limit']}")
    return " ".join(["tinct bench accuracy", *flags, f"--json {path}"])


def _soak_command(doc: dict, path: str) -> str:
    flags = _flags(doc.get("config") or {}, {
        "engine": None, "backends": None, "sharing": None, "threads": None, "updates": None, "warmup": 100,
        "window": 1000, "rss_every": 50, "max_rss_growth": 5.0, "max_drift": 5.0, "size": "1920x1080", "seed": 0})
    return " ".join(["tinct bench soak", *flags, f"--json {path}"])


def _load_command(doc: dict, path: str) -> str:
    r = (doc.get("results") or [{}])[0]
    server = dict(re.findall(r"--(model|threads|backends) (\S+)", r.get("server") or ""))
    values = {"model": server.get("model"), "backend": server.get("backends"), "threads": server.get("threads"),
              "sessions": r.get("sessions"), "updates": r.get("updates_per_session"),
              "size": "x".join(map(str, r.get("image_size") or [])) or None, "hints": r.get("hints")}
    flags = _flags(values, {"model": "icolorit-tiny", "backend": "onnxruntime", "threads": "1", "sessions": None,
                            "updates": None, "size": None, "hints": 10})
    return " ".join(["tinct bench load", *flags, f"--json {path}"])


def _serve_rtt_command(doc: dict, path: str) -> str:
    runs = (doc.get("in_process") or {}).get("runs")
    values = {"size": "x".join(map(str, doc.get("image_size") or [])) or None, "clicks": runs // 2 if runs else None,
              "model": doc.get("model"), "threads": doc.get("threads"), "wire": doc.get("wire")}
    flags = _flags(values, {"size": None, "clicks": None, "model": "icolorit-tiny", "threads": 1, "wire": "rgba"})
    return " ".join(["python -m tinct.benchmarks.serve_rtt", *flags, f"--json {path}"])


def _c2e_command(doc: dict, path: str) -> str:
    values = {"size": doc.get("size"), "threads": doc.get("threads"), "rounds": doc.get("rounds"),
              "full": "x".join(map(str, doc.get("full_resolution") or [])) or None, "model": doc.get("weights")}
    flags = _flags(values, {"size": None, "threads": None, "rounds": None, "full": "1920x1080",
                            "model": "color2embed-r18"})
    return " ".join(["python -m tinct.benchmarks.color2embed_latency", *flags, f"--json {path}"])


def _train_speed_command(doc: dict, path: str) -> str:
    values = {"model": doc.get("model"), "batch": doc.get("batch"), "threads": doc.get("threads"),
              "speed_rounds": doc.get("rounds")}
    flags = _flags(values, {"model": None, "batch": None, "threads": None, "speed_rounds": 8})
    return " ".join(["tinct train --speed", *flags, f"--json {path}"])


_COMMANDS = {"latency": _latency_command, "accuracy": _accuracy_command, "soak": _soak_command,
             "serve-load": _load_command, "serve-rtt": _serve_rtt_command, "color2embed-latency": _c2e_command,
             "train-speed": _train_speed_command}


def command_of(src: Source) -> str:
    """The command that made a file: its ``command`` field, else rebuilt from the arguments it records."""
    if isinstance(src.doc.get("command"), str):
        return src.doc["command"]
    rebuild = _COMMANDS.get(kind_of(src.doc))
    return rebuild(src.doc, src.path) if rebuild else "command not recorded in this file"


def provenance(sources: list[Source]) -> str:
    """One line per CPU: the machine, the date(s) and the command(s) that made the block's files."""
    groups: dict[str, list[Source]] = {}
    for s in sources:
        groups.setdefault(cpu_line(s.doc), []).append(s)
    lines = []
    for cpu, group in groups.items():
        dates = sorted({d for s in group if (d := date_of(s.doc))})
        when = " to ".join(dict.fromkeys([dates[0], dates[-1]])) if dates else "date not recorded"
        made = [command_of(s) for s in group]
        if len(group) > 1:  # the files are linked below: one command per way of running it
            made = [re.sub(r" --json \S+", "", c) for c in made]
        cmds = "; ".join(f"`{c}`" for c in dict.fromkeys(made))
        links = ", ".join(s.md_link for s in group)
        if cpu == NO_CPU:
            lines.append(f"{NO_CPU}; {when}; made with: {cmds} ({links}).")
        else:
            lines.append(f"Measured on {cpu}, {when}, with: {cmds} ({links}).")
    return "\n\n".join(lines)


# ----------------------------------------------------------------------------- blocks

@dataclass(frozen=True)
class Block:
    """A generated block of a Markdown file: its marker lines (0-based) and what the opening marker says."""

    md: Path
    open_line: int
    close_line: int
    files: tuple[str, ...]
    options: dict

    def where(self, root: Path) -> str:
        return f"{_rel(self.md, root)}:{self.open_line + 1}"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _parse_marker(spec: str, where: str) -> tuple[tuple[str, ...], dict]:
    files, options = [], {}
    for token in spec.split():
        if "=" in token:
            key, _, value = token.partition("=")
            if not key or not value or key in options:
                raise InputError(f"{where}: option {token!r}: write key=value, each key once")
            options[key] = value
        elif token.endswith(".json"):
            files.append(token)
        else:
            raise InputError(f"{where}: {token!r} is neither a docs/data/*.json file nor an option (key=value)")
    if not files:
        raise InputError(f"{where}: the table marker names no file (<!-- table: docs/data/NAME.json ... -->)")
    return tuple(files), options


def find_blocks(md: Path, text: str, root: Path) -> list[Block]:
    """The blocks of one Markdown text; an unclosed, nested or stray marker is an InputError."""
    blocks, current, fenced = [], None, False
    for i, line in enumerate(text.split("\n")):
        if FENCE.match(line):
            fenced = not fenced
        if fenced:
            continue
        where = f"{_rel(md, root)}:{i + 1}"
        stripped = line.strip()
        if (m := OPEN.fullmatch(stripped)) is not None:
            if current is not None:
                raise InputError(f"{where}: a table block opens inside the one opened at line {current[0] + 1}")
            current = (i, *_parse_marker(m.group(1), where))
        elif CLOSE.fullmatch(stripped):
            if current is None:
                raise InputError(f"{where}: <!-- /table --> closes no table block")
            blocks.append(Block(md, current[0], i, current[1], current[2]))
            current = None
    if current is not None:
        raise InputError(f"{_rel(md, root)}:{current[0] + 1}: the table block opened here has no <!-- /table -->")
    return blocks


def _load(name: str, block: Block, root: Path) -> Source:
    where = block.where(root)
    path = (root / name).resolve()
    if not name.startswith(DATA_DIR) or not path.is_relative_to((root / DATA_DIR).resolve()):
        raise InputError(f"{where}: {name}: tables are rendered from files under {DATA_DIR} only")
    if not path.is_file():
        raise InputError(f"{where}: {name}: no such file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}: {name}: not a JSON file ({str(exc).splitlines()[0]})") from None
    link = os.path.relpath(os.path.abspath(root / name), os.path.abspath(block.md.parent))
    return Source(name, doc, Path(link).as_posix())


def render_block(block: Block, root: Path) -> list[str]:
    """The lines that go between a block's markers."""
    where = block.where(root)
    sources = [_load(name, block, root) for name in block.files]
    kinds = {kind_of(s.doc) for s in sources}
    if None in kinds:
        bad = next(s.path for s in sources if kind_of(s.doc) is None)
        raise InputError(f"{where}: {bad}: not a kind of result file this command renders "
                         f"({', '.join(RENDERERS)})")
    if len(kinds) > 1:
        raise InputError(f"{where}: one block renders files of one kind, these are {', '.join(sorted(kinds))}")
    kind = kinds.pop()
    renderer, allowed = RENDERERS[kind]
    unknown = sorted(set(block.options) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown option {unknown[0]!r} for a {kind} table "
                         f"(options: {', '.join(sorted(allowed)) or 'none'})")
    try:
        table = renderer(sources, block.options)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError) as exc:
        raise InputError(f"{where}: {', '.join(block.files)}: cannot render it as a {kind} file "
                         f"({type(exc).__name__}: {exc})") from None
    return [*provenance(sources).split("\n"), "", *table.split("\n"), ""]


def generate(md: Path, root: Path) -> tuple[str, str, list[Block]]:
    """(the file's text, the text with every block rendered, the blocks whose text changes)."""
    try:
        text = md.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{md}: cannot read it ({exc})") from None
    lines = text.split("\n")
    out, pos, stale = [], 0, []
    for block in find_blocks(md, text, root):
        new = render_block(block, root)
        if lines[block.open_line + 1:block.close_line] != new:
            stale.append(block)
        out += lines[pos:block.open_line + 1] + new
        pos = block.close_line
    out += lines[pos:]
    return text, "\n".join(out), stale


def default_paths(root: Path) -> list[Path]:
    """README.md and docs/*.md (not the example report under docs/report/)."""
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if p.is_file()]


def update(paths: list[Path], root: Path, check: bool = False) -> list[str]:
    """Render every block of ``paths``; write the changed files unless ``check``. Returns the stale blocks'
    descriptions (file:line and data files). Nothing is written when any block fails to render."""
    results = [(md, *generate(md, root)) for md in paths]
    stale = [f"{b.where(root)} ({', '.join(b.files)})" for _md, _old, _new, blocks in results for b in blocks]
    if not check:
        for md, old, new, _blocks in results:
            if new != old:
                with atomic_path(md) as tmp:
                    tmp.write_text(new, encoding="utf-8")
    return stale


def run_command(args) -> int:
    """``tinct bench docs`` / ``python -m tinct.benchmarks.docs``: see the module doc."""
    root = Path(args.root)
    paths = [Path(p) for p in args.paths] or default_paths(root)
    if not paths:
        raise InputError(f"no README.md or docs/*.md under {root}")
    stale = update(paths, root, check=args.check)
    if args.check:
        for s in stale:
            print(f"docs: {s}: differs from what its data renders (run: tinct bench docs)", file=sys.stderr)
        print(f"docs: {len(stale)} of the tables differ" if stale else "docs: every table matches its data")
        return 1 if stale else 0
    print(f"docs: rewrote {len(stale)} table(s)" if stale else "docs: every table already matched its data")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinct.benchmarks.docs", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", metavar="FILE.md", help="Markdown files (default: README.md and docs/*.md)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 naming every table whose text differs from what its data renders")
    p.add_argument("--root", default=".", metavar="DIR",
                   help="the repository root the markers' paths are relative to (default: the current directory)")
    args = p.parse_args(argv)
    try:
        return run_command(args)
    except TinctError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)


if __name__ == "__main__":
    sys.exit(main())
