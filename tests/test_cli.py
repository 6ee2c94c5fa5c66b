"""The CLI surface: every subcommand has --help with defaults; bad flags exit 2 in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from distill.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_subcommand_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    assert f"usage: distill {name}" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["generate", "train", "export", "run"])
def test_help_shows_defaults(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([name, "--help"])
    assert "(default:" in capsys.readouterr().out


def test_unknown_flag_is_one_line_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "distill", "train", "--data", "d", "--out", "m", "--epochz", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--epochz" in lines[0]


def test_help_does_not_import_torch() -> None:
    code = "import sys; from distill.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


INTERRUPTED_TASK = """
import asyncio, sys
from distill import cli
import distill.commands.report as command

async def interrupted():
    raise cli.Terminated  # what the SIGTERM handler raises, here inside a running task

async def main():
    asyncio.ensure_future(interrupted())
    await asyncio.sleep(0.05)

command.run = lambda args: asyncio.run(main())
sys.exit(cli.main(["report", "."]))
"""


def test_an_interrupt_inside_an_asyncio_task_prints_the_hint_and_no_traceback() -> None:
    """A SIGTERM landing while an asyncio task runs (generate under load did this): exit 143,
    the resume hint, and no "Task exception was never retrieved" traceback after it."""
    proc = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_TASK], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip() == (
        "distill report: interrupted; run the same command again to resume"
    )
