"""The tables of README.md and docs/*.md are generated from docs/data (``tinct bench docs``,
:mod:`tinct.benchmarks.docs`): every kind of result file renders, with the machine it was measured on; the
repository's pages match their data; a number edited by hand fails ``--check``; bad markers are one-line errors
and nothing is written."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from tinct.benchmarks import docs
from tinct.benchmarks.docs_tables import RENDERERS, Source, kind_of
from tinct.cli import bench_docs
from tinct.runtime.errors import InputError

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "docs" / "data"

# one file of every kind, and the CPU its line must name (None: the file records none)
KINDS = {
    "latency": ("latency-zen4.json", "AMD EPYC [AVX512_CORE_BF16"),
    "accuracy": ("accuracy-icolorit-tiny-v1.json", "AMD EPYC (family 25, model 1)"),
    "color2embed-latency": ("latency-color2embed.json", None),
    "bf16-patch-embedding": ("bf16-patch-embedding-zen4-1t.json", "AMD EPYC (family 25, model 17) [AVX512_CORE_BF16]"),
    "serve-rtt": ("serve-rtt-zen3-run2.json", "AMD EPYC (family 25, model 1) [AVX2]"),
    "serve-load": ("serve-load-zen3.json", "AMD EPYC (family 25, model 1) [AVX2]"),
    "soak": ("soak-zen3-run1.json", "AMD EPYC (family 25, model 1) [AVX2]"),
    "batch-scale": ("batch-scale-zen4.json", "AMD EPYC (family 25, model 17) [AVX512_CORE_BF16]"),
    "train-speed": ("train-speed-zen4-icolorit-tiny.json", "AMD EPYC (family 25, model 17) [AVX512_CORE_BF16]"),
    "if-overhead": ("if-overhead-zen4.json", "AMD EPYC (family 25, model 17) [AVX512_CORE_BF16]"),
    "browser-latency": ("browser-latency-zen4.json", "AMD EPYC (family 25, model 17) [AVX512_CORE_BF16]"),
    "browser-guard": ("browser-guard-icolorit-tiny-int8-zen4.json", "AMD EPYC (family 25, model 17) [AVX512_CORE_BF16]"),
}


def _block(tmp_path: Path, marker: str, name: str = "page.md") -> Path:
    """A repository in tmp_path: docs/data linked to the real one, and one page holding ``marker``."""
    (tmp_path / "docs").mkdir(exist_ok=True)
    if not (tmp_path / "docs" / "data").exists():
        (tmp_path / "docs" / "data").symlink_to(DATA)
    page = tmp_path / "docs" / name
    page.write_text(f"# page\n\n{marker}\nold text\n<!-- /table -->\n\ntail\n")
    return page


def _render(tmp_path: Path, marker: str) -> str:
    page = _block(tmp_path, marker)
    files = [t for t in marker.split()[2:-1] if t.endswith(".json")]
    assert docs.update([page], tmp_path) == [f"docs/page.md:3 ({', '.join(files)})"]
    return page.read_text()


def test_every_file_in_docs_data_has_a_renderer():
    kinds = {p.name: kind_of(json.loads(p.read_text())) for p in sorted(DATA.glob("*.json"))}
    assert not [n for n, k in kinds.items() if k is None], kinds
    assert set(kinds.values()) == set(RENDERERS) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_renders_a_table_under_its_machine_and_command(tmp_path, kind):
    name, cpu = KINDS[kind]
    text = _render(tmp_path, f"<!-- table: docs/data/{name} -->")
    body = text.split("-->\n", 1)[1].split("<!-- /table -->")[0]
    line = body.splitlines()[0]
    assert line.startswith("Measured on " + cpu) if cpu else line.startswith(docs.NO_CPU), line
    assert f"[{name}](data/{name})" in line and "`" in line  # the command, and a link to the file
    table = [ln for ln in body.splitlines() if ln.startswith("|")]
    assert len(table) >= 3 and len({ln.count("|") - ln.count(r"\|") for ln in table}) == 1, table
    assert "old text" not in text and text.endswith("<!-- /table -->\n\ntail\n")


def test_latency_pivot_threads_reproduces_the_runs_numbers(tmp_path):
    text = _render(tmp_path, "<!-- table: docs/data/latency-zen4.json pivot=threads models=icolorit-tiny -->")
    assert "`tinct bench latency --models icolorit-tiny,acolvit-tiny-0.5,acolvit-tiny-0.3 --backends " in text
    assert "--rounds 30 --burst 4 --json docs/data/latency-zen4.json`" in text and ", 2026-11-29, with:" in text
    assert ("| icolorit-tiny | OpenVINO INT8, bf16 float ops | 12.61 (0.19) | 7.61 (2.20) | 3.71× | 2.72× | 56 % "
            "| -0.002 |") in text
    assert "| icolorit-tiny | ONNX Runtime FP32 | 34.35 (1.46) | 20.99 (7.58) | 1.36× | 1.00× | 78 % | 0 (reference) |" in text
    assert "acolvit" not in text.split("-->\n", 1)[1].split("\n\n", 1)[1]  # the filter, below the command line


def test_capped_isa_and_pinned_runs_say_so(tmp_path):
    text = _render(tmp_path, "<!-- table: docs/data/latency-isa-AVX2.json pivot=threads skipped=yes -->")
    assert "`ONEDNN_MAX_CPU_ISA=AVX2 tinct bench latency" in text and "native AVX512_CORE_BF16" in text
    assert "Not run: OpenVINO BF16 1 t: this CPU cannot run bf16" in text
    text = _render(tmp_path, "<!-- table: docs/data/soak-zen3-run2-onnxruntime.json -->")
    assert "pinned to 1 of its 2 CPUs" in text


def test_several_files_one_table(tmp_path):
    text = _render(tmp_path, "<!-- table: docs/data/accuracy-icolorit-tiny-v1.json "
                             "docs/data/accuracy-lpips-acolvit-tiny-0.5-v2.json metrics=lpips hints=1,10 -->")
    assert text.count("Measured on") == 2  # two machines, one line each
    assert "| [accuracy-icolorit-tiny-v1.json](data/accuracy-icolorit-tiny-v1.json) | weights/icolorit-tiny" in text
    assert "| 0.1962 | 0.1388 |" in text and "| 0.2001 | 0.1378 |" in text


def test_the_repository_pages_match_their_data():
    paths = docs.default_paths(REPO)
    assert REPO / "README.md" in paths and len(paths) >= 10
    assert docs.update(paths, REPO, check=True) == []
    readme = (REPO / "README.md").read_text()
    assert "<!-- table: docs/data/latency-zen4.json" in readme and "Measured on AMD EPYC" in readme
    assert len(readme.encode()) <= 15_000


def test_a_number_edited_by_hand_fails_the_check(tmp_path, capsys):
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "data").symlink_to(DATA)
    readme = tmp_path / "README.md"
    args = argparse.Namespace(paths=[], check=True, root=str(tmp_path))
    assert docs.run_command(args) == 0
    text = readme.read_text()
    assert "| 12.61 (0.19) |" in text
    readme.write_text(text.replace("| 12.61 (0.19) |", "| 11.61 (0.19) |"))
    assert docs.run_command(args) == 1
    err = capsys.readouterr().err
    assert "README.md:" in err and "docs/data/latency-zen4.json" in err
    assert readme.read_text().count("11.61") == 1  # --check writes nothing
    assert docs.run_command(argparse.Namespace(paths=[], check=False, root=str(tmp_path))) == 0
    assert "| 12.61 (0.19) |" in readme.read_text() and docs.run_command(args) == 0


@pytest.mark.parametrize("marker, message", [
    ("<!-- table: docs/data/no-such.json -->", "docs/data/no-such.json: no such file"),
    ("<!-- table: docs/data/latency-zen4.json pivot=threads colour=red -->", "unknown option 'colour' for a latency"),
    ("<!-- table: docs/data/latency-zen4.json pivot=sideways -->", "pivot=sideways: use threads, gates, profile, skipping or none"),
    ("<!-- table: docs/data/soak-zen3-run1.json pivot=threads -->", "unknown option 'pivot' for a soak table"),
    ("<!-- table: docs/data/soak-zen3-run1.json docs/data/latency-zen4.json -->", "one block renders files of one kind"),
    ("<!-- table: ../README.md -->", "neither a docs/data/*.json file nor an option"),
    ("<!-- table: docs/data/../../README.json -->", "files under docs/data/ only"),
    ("<!-- table: pivot=threads -->", "names no file"),
    ("<!-- table: docs/data/fuzz-zen3.txt -->", "neither a docs/data/*.json file"),
])
def test_bad_markers_are_one_line_errors_and_nothing_is_written(tmp_path, marker, message):
    good = _block(tmp_path, "<!-- table: docs/data/serve-load-zen3.json -->", "a.md")
    bad = _block(tmp_path, marker, "b.md")
    before = (good.read_text(), bad.read_text())
    with pytest.raises(InputError) as err:
        docs.update([good, bad], tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value) and str(err.value).startswith("docs/b.md:3: ")
    assert (good.read_text(), bad.read_text()) == before  # the good file was not written either


@pytest.mark.parametrize("text, message", [
    ("<!-- table: docs/data/serve-load-zen3.json -->\nno end\n", "docs/p.md:1: the table block opened here has no"),
    ("x\n<!-- /table -->\n", "docs/p.md:2: <!-- /table --> closes no table block"),
    ("<!-- table: docs/data/serve-load-zen3.json -->\n<!-- table: docs/data/serve-load-zen3.json -->\n"
     "<!-- /table -->\n", "docs/p.md:2: a table block opens inside the one opened at line 1"),
])
def test_unbalanced_markers(tmp_path, text, message):
    page = _block(tmp_path, "", "p.md")
    page.write_text(text)
    with pytest.raises(InputError, match="^" + message.replace("(", r"\(")):
        docs.update([page], tmp_path)
    assert page.read_text() == text


def test_markers_in_code_fences_and_inline_code_are_left_alone(tmp_path):
    page = _block(tmp_path, "", "p.md")
    text = "```\n<!-- table: docs/data/nothing.json -->\n```\nSee `<!-- table: docs/data/x.json -->`.\n"
    page.write_text(text)
    assert docs.update([page], tmp_path) == [] and page.read_text() == text


def test_the_cli_command(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    bench_docs.register(parser.add_subparsers())
    page = _block(tmp_path, "<!-- table: docs/data/serve-load-zen3.json -->")
    args = parser.parse_args(["docs", "--check", "--root", str(tmp_path), str(page)])
    assert args.func(args) == 1 and "docs/page.md:3 (docs/data/serve-load-zen3.json)" in capsys.readouterr().err
    args = parser.parse_args(["docs", "--root", str(tmp_path), str(page)])
    assert args.func(args) == 0 and "| 8 x 50 | 1920x1080 | 10.5 |" in page.read_text()
    assert docs.main(["--check", "--root", str(tmp_path), str(page)]) == 0
    page.write_text("<!-- table: docs/data/nope.json -->\n<!-- /table -->\n")
    assert docs.main(["--root", str(tmp_path), str(page)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_a_file_without_a_cpu_says_so_and_invents_none():
    src = Source("docs/data/x.json", {"size": 256, "threads": 2, "rounds": 3, "int8_guard": {}, "results": {}}, "x")
    line = docs.provenance([src])
    assert line.startswith("CPU not recorded in this file; date not recorded; made with: `python -m "
                           "tinct.benchmarks.color2embed_latency --size 256 --threads 2 --rounds 3 --json docs/data/x.json`")


def test_skipping_and_if_overhead_tables():
    from tinct.benchmarks import if_overhead
    from tinct.benchmarks.latency import ratios

    results = [{"model": m, "model_name": m, "backend": "openvino", "precision": "int8", "threads": 1,
                "mode": "model", "batch": 1, "median_ms": ms, "iqr_ms": 0.1, "macs": macs, "kept_ratio": kept}
               for m, ms, macs, kept in (("icolorit-tiny", 16.0, 1.6e9, None), ("acolvit-tiny-0.5", 10.0, 0.8e9, 0.5))]
    results[1]["gate_specialization"] = {"hits": 29, "calls": 30}
    ratios.add_skipping(results)
    render, _ = RENDERERS["latency"]
    md = render([Source("docs/data/x.json", {"results": results}, "data/x.json")], {"pivot": "skipping"})
    assert "| acolvit-tiny-0.5 | model only, 224² |" in md and "| 1.60× | 2.00× | 0.80 | 29/30 |" in md
    with pytest.raises(InputError, match="no A-ColViT entry with its iColoriT"):
        render([Source("docs/data/x.json", {"results": results[:1]}, "data/x.json")], {"pivot": "skipping"})
    row = if_overhead._row("openvino", "gates off", 0.0, {"median_ms": 7.7, "iqr_ms": 0.1},
                           {"median_ms": 5.1, "iqr_ms": 0.1}, 24)
    doc = {"kind": if_overhead.KIND, "rows": [row]}
    assert kind_of(doc) == if_overhead.KIND
    render, opts = RENDERERS[if_overhead.KIND]
    assert opts == set() and "| openvino | gates off |" in render([Source("docs/data/y.json", doc, "data/y.json")], {})
