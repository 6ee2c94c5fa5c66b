"""Every task file the project shows a user must load: README and docs TOML blocks, examples/;
and every `distill` command the docs show must parse with the real command line.

Paths are resolved from this file, so the tests collect the same files from any working
directory (a relative glob silently collects nothing when pytest runs elsewhere).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from distill.cli import build_parser
from distill.task import load_task

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```toml\n(.*?)^```", re.DOTALL | re.MULTILINE)
SHELL_FENCE = re.compile(r"^```(?:bash|sh|console)\n(.*?)^```", re.DOTALL | re.MULTILINE)
ENV_ASSIGNMENT = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+")


def toml_blocks() -> list[tuple[str, str]]:
    """(where, text) of every fenced TOML block in README.md and docs/*.md."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append((f"{doc.relative_to(ROOT)}:{line}", m.group(1)))
    return found


def test_the_readme_shows_a_task_file() -> None:
    """Guards the collection itself: an empty parametrisation would pass silently."""
    assert any(where.startswith("README.md") for where, _ in toml_blocks())


@pytest.mark.parametrize(("where", "text"), toml_blocks(), ids=lambda v: str(v)[:40])
def test_documented_task_files_load(where: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "task.toml"
    path.write_text(text, encoding="utf-8")
    spec = load_task(path)  # raises UserError naming the key on any problem
    assert spec.demonstrations, where


def distill_commands() -> list[tuple[str, str]]:
    """(where, command line) of every `distill ...` line in the shell blocks of docs/*.md
    (continuations joined, `# comments` and leading `VAR=value` assignments dropped).

    README.md is left out: its overview abbreviates flags with `...` on purpose.
    """
    found = []
    for doc in DOCS[1:]:
        text = doc.read_text(encoding="utf-8")
        for m in SHELL_FENCE.finditer(text):
            first = text.count("\n", 0, m.start()) + 2  # the block's first line, 1-based
            lines = m.group(1).splitlines()
            k = 0
            while k < len(lines):
                start, line = k, lines[k]
                while line.endswith("\\") and k + 1 < len(lines):  # a continued command
                    k += 1
                    line = line[:-1] + " " + lines[k]
                k += 1
                line = ENV_ASSIGNMENT.sub("", line.split(" #")[0].strip())
                if line.startswith("distill "):
                    found.append((f"{doc.relative_to(ROOT)}:{first + start}", line))
    return found


def test_the_docs_show_distill_commands() -> None:
    """Guards the collection: `distill report` is documented in docs/eval.md."""
    assert any(line.startswith("distill report ") for _, line in distill_commands())


@pytest.mark.parametrize(("where", "line"), distill_commands(), ids=lambda v: str(v)[:40])
def test_documented_commands_parse(where: str, line: str) -> None:
    """Each command names a real subcommand with real flags and every required argument."""
    args = build_parser().parse_args(shlex.split(line)[1:])  # exits 2 on a bad flag
    assert args.command == line.split()[1], where


def test_readme_student_vs_teacher_table_is_the_benchmark_summary() -> None:
    """The README's student-vs-teacher table is benchmarks/summary.py's output, byte for byte:
    a figure edited by hand, or a rerun not copied into the README, fails here."""
    table = (ROOT / "benchmarks" / "results" / "student_vs_teacher_summary.md").read_text()
    assert table.startswith("| task | metric |") and table.count("\n") >= 4
    assert table in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "task",
    [
        "sentiment-b100",
        "questions-b100",
        "temporal-b100",
        "sentiment-b300",
        "questions-b300",
        "temporal-b300",
    ],
)
def test_readme_levers_tables_are_the_benchmark_output(task: str) -> None:
    """Each levers table in the README is benchmarks/levers.py's Markdown for that task and
    budget, byte for byte (its title line aside): a hand-edited figure fails here."""
    md = (ROOT / "benchmarks" / "results" / f"levers_{task}.md").read_text(encoding="utf-8")
    table = md.split("\n", 2)[2]  # after the "### task: ..." title and its blank line
    assert table.startswith("| arm | teacher calls |") and table.count("\n") >= 4
    assert table in (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_label_decoding_table_is_the_benchmark_output() -> None:
    """The README's free-vs-label-set decoding table is benchmarks/label_decoding.py's
    Markdown, byte for byte."""
    table = (ROOT / "benchmarks" / "results" / "label_decoding.md").read_text(encoding="utf-8")
    assert table.startswith("| run | int8/fp32 |") and table.count("\n") >= 3
    assert table in (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_copy_decoding_table_is_the_benchmark_output() -> None:
    """The README's free / token-span / word-span table is benchmarks/copy_decoding.py's
    Markdown for that run, byte for byte, its title line aside, and its command is shown."""
    md = (ROOT / "benchmarks" / "results" / "copy_decoding_address-t300-span-v.md").read_text(
        encoding="utf-8"
    )
    body = md.split("\n", 2)[2].rstrip("\n")
    assert body.startswith("| decoding | EM [95% CI] |") and body.count("\n") == 4
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert body in readme
    assert "python benchmarks/copy_decoding.py --run benchmarks/runs/address-t300-span-v" in readme


def test_readme_int8_scales_table_is_the_benchmark_output() -> None:
    """The README's per-tensor vs per-channel table is benchmarks/int8_scales.py's Markdown,
    byte for byte, its title line aside."""
    md = (ROOT / "benchmarks" / "results" / "int8_scales_address.md").read_text(encoding="utf-8")
    body = md.split("\n", 2)[2].rstrip("\n")
    assert body.startswith("| run | metric | test n | fp32 |") and body.count("\n") == 4
    assert body in (ROOT / "README.md").read_text(encoding="utf-8")


BENCH_SPAN = re.compile(r"`((?:nice )?python benchmarks/[^`]+)`")
ANY_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def benchmark_commands() -> list[tuple[str, str]]:
    """(where, command) of every `python benchmarks/X.py ...` the README and docs show, in a
    fenced block (continuations joined, `# comments` dropped) or an inline code span (which
    may wrap lines). `nice` is dropped; `[--flag value]` (optional parts) is kept as given."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        spans = [(m.start(), m.group(1)) for m in BENCH_SPAN.finditer(text)]
        for m in ANY_FENCE.finditer(text):
            block = m.group(1).replace("\\\n", " ")
            offset = m.start(1)
            for line in block.splitlines():
                spans.append((offset, line.split(" #")[0]))
                offset += len(line) + 1
        for pos, cmd in spans:
            cmd = " ".join(cmd.replace("[", " ").replace("]", " ").split())
            cmd = cmd.removeprefix("nice ")
            if cmd.startswith("python benchmarks/"):
                where = f"{doc.relative_to(ROOT)}:{text.count(chr(10), 0, pos) + 1}"
                found.append((where, cmd))
    return found


class _Parsed(Exception):
    """Raised instead of running the benchmark once its arguments have parsed."""


def test_the_docs_show_benchmark_commands() -> None:
    """Guards the collection: the README's student-vs-teacher block and inline spans."""
    cmds = [c for w, c in benchmark_commands() if w.startswith("README.md")]
    assert "python benchmarks/summary.py" in cmds
    assert any(c.startswith("python benchmarks/serve_throughput.py --model") for c in cmds)


@pytest.mark.parametrize(("where", "line"), benchmark_commands(), ids=lambda v: str(v)[:50])
def test_documented_benchmark_commands_parse(
    where: str, line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each benchmark command names a script that exists and flags its own argument parser
    accepts (argparse exits 2 on an unknown flag or a bad choice); nothing is run: the parser
    stops the script as soon as the arguments have parsed."""
    import argparse
    import runpy

    argv = shlex.split(line)[1:]
    script = ROOT / argv[0]
    assert script.is_file(), where
    if "argparse" not in script.read_text(encoding="utf-8"):  # a script that takes no flags
        assert argv == [argv[0]], where
        return
    real = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(real(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr("sys.argv", [str(script), *argv[1:]])
    monkeypatch.syspath_prepend(str(script.parent))
    with pytest.raises(_Parsed):
        runpy.run_path(str(script), run_name="__main__")


def test_readme_run_time_table_is_the_benchmark_output() -> None:
    """The README's stage-time table of the default `distill run` is benchmarks/run_time.py's
    Markdown, byte for byte, its title line aside."""
    md = (ROOT / "benchmarks" / "results" / "run_time_sentiment-n300.md").read_text("utf-8")
    body = md.split("\n", 2)[2].rstrip("\n")
    assert "| **total** |" in body
    assert body in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("task", ["sentiment", "intent"])
def test_readme_label_quality_table_is_the_benchmark_output(task: str) -> None:
    """The README's teacher-label-quality tables are benchmarks/label_quality.py's Markdown,
    byte for byte, its title line aside."""
    md = (ROOT / "benchmarks" / "results" / f"label_quality_{task}.md").read_text("utf-8")
    body = md.split("\n", 2)[2].rstrip("\n")
    assert "| strategy | inputs kept |" in body and "| content-free |" in body
    assert "| gold | " in body
    assert body in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("task", ["sentiment", "questions"])
def test_readme_data_ablation_table_is_the_benchmark_output(task: str) -> None:
    """The README's data-ablation tables (and the teacher line above each) are
    benchmarks/data_ablation.py's Markdown, byte for byte, its title line aside."""
    md = (ROOT / "benchmarks" / "results" / f"data_ablation_{task}.md").read_text("utf-8")
    body = md.split("\n", 2)[2]  # after the "# Data ablation: ..." title and its blank line
    assert "| arm | changed | requests |" in body and body.count("\n") >= 5
    assert body in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("label_calibration", "intent"),
        ("temporal_own_limit", "temporal"),
        ("temporal_all_labels", "temporal"),
        ("temporal_vs_teacher", "temporal"),
    ],
)
def test_readme_paired_tables_are_the_benchmark_output(name: str, task: str) -> None:
    """The README's paired student tables (label calibration; temporal's length limit, its
    labels and its teacher) are benchmarks/paired_runs.py's Markdown, byte for byte, their
    title line aside."""
    md = (ROOT / "benchmarks" / "results" / f"paired_{name}.md").read_text("utf-8")
    body = md.split("\n", 2)[2].rstrip("\n")
    assert "| baseline run | run |" in body and f"Mean difference on {task}" in body
    assert body in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name",
    ["ema-quickstart", "ema-temporal", "address-steps", "address-written", "address-epochs"],
)
def test_readme_train_seeds_tables_are_the_benchmark_output(name: str) -> None:
    """The README's arms-by-seeds tables are benchmarks/train_seeds.py's Markdown, byte for
    byte (title line included), and its command is in the README."""
    md = (ROOT / "benchmarks" / "results" / f"train_seeds_{name}.md").read_text("utf-8")
    assert "| arm | per seed | mean |" in md and "| default | " in md
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert md in readme
    cmds = [c for w, c in benchmark_commands() if w.startswith("README.md")]
    assert any(c.startswith(f"python benchmarks/train_seeds.py --name {name} ") for c in cmds)
