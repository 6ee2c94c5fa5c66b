"""The task file: every kind of broken file exits 2 with one line naming the file and the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distill.cli import main
from distill.errors import UserError
from distill.task import load_task

GOOD = """
name = "dates"
instruction = "Rewrite the date in the format MM/DD/YYYY."
[[demonstrations]]
input = "20.08.2010"
output = "08/20/2010"
"""


def write(tmp_path: Path, text: str | bytes, name: str = "task.toml") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_good_task_loads(tmp_path: Path) -> None:
    spec = load_task(write(tmp_path, GOOD + "[generate]\nnum_examples = 7\n"))
    assert spec.name == "dates"
    assert spec.instruction.startswith("Rewrite")
    assert [(d.input, d.output) for d in spec.demonstrations] == [("20.08.2010", "08/20/2010")]
    assert spec.table("generate") == {"num_examples": 7}


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHIPPED = sorted([*EXAMPLES.glob("*.toml"), *(EXAMPLES.parent / "benchmarks/tasks").glob("*.toml")])


def test_shipped_examples_are_collected() -> None:
    """An empty glob (wrong directory) would make the parametrised test below vacuous."""
    assert {p.name for p in SHIPPED} >= {"dates.toml", "sentiment.toml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_examples_load(path: Path) -> None:
    spec = load_task(path)
    assert len(spec.demonstrations) >= 3


BROKEN = {
    "unknown top-level key": (GOOD + 'colour = "blue"\n', "unknown key 'colour'"),
    "missing instruction": (
        GOOD.replace('instruction = "Rewrite the date in the format MM/DD/YYYY."\n', ""),
        "missing key 'instruction'",
    ),
    "empty instruction": (
        GOOD.replace("Rewrite the date in the format MM/DD/YYYY.", " "),
        "key 'instruction' is empty",
    ),
    "no demonstrations": ('name = "x"\ninstruction = "y"\n', "missing key 'demonstrations'"),
    "empty demo output": (
        GOOD.replace('output = "08/20/2010"', 'output = ""'),
        "demonstrations[1]: key 'output' is empty",
    ),
    "demo missing input": (
        GOOD.replace('input = "20.08.2010"\n', ""),
        "demonstrations[1]: missing key 'input'",
    ),
    "demo unknown key": (GOOD + 'label = "z"\n', "demonstrations[1]: unknown key 'label'"),
    "unknown generate key": (
        GOOD + "[generate]\nnum_exampels = 3\n",
        "[generate]: unknown key 'num_exampels'; did you mean 'num_examples'?",
    ),
    "wrong type in table": (
        GOOD + '[generate]\nnum_examples = "many"\n',
        "[generate]: key 'num_examples' must be int",
    ),
    "invalid value in table": (
        GOOD + "[generate]\nnum_examples = -3\n",
        "[generate]: key 'num_examples': must be > 0 (got -3)",
    ),
    "unknown train key": (GOOD + "[train]\nepoch = 3\n", "[train]: unknown key 'epoch'"),
    "name not a string": (
        GOOD.replace('name = "dates"', "name = 3"),
        "key 'name' must be a string",
    ),
    "invalid toml": ("name = \n", "invalid TOML"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_task_exit_2_one_line(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text, expected = BROKEN[case]
    path = write(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_task(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)
    # Through the CLI: exit 2, one line on stderr, no traceback.
    code = main(["run", "--task", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err


def test_non_utf8_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.encode("utf-8").replace(b"Rewrite", b"R\xe9write"))
    with pytest.raises(UserError, match=r"task\.toml: not UTF-8"):
        load_task(path)


def test_missing_file_subprocess(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "distill",
            "run",
            "--task",
            str(tmp_path / "nope.toml"),
            "--out",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"distill run: error: {tmp_path / 'nope.toml'}: task file not found"
    ]


def test_flag_overrides_file(tmp_path: Path) -> None:
    import argparse

    from distill.stages import stage_config

    spec = load_task(write(tmp_path, GOOD + "[generate]\nnum_examples = 7\nseed = 5\n"))
    cfg = stage_config("generate", spec, argparse.Namespace(num_examples=11))
    assert (cfg.num_examples, cfg.seed) == (11, 5)
    with pytest.raises(UserError, match=r"--num-examples: must be > 0 \(got 0\)"):
        stage_config("generate", spec, argparse.Namespace(num_examples=0))
